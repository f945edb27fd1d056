"""Deterministic extractive summaries: sentences ranked by relevance to a question.

The engine behind the offline ``local:extractive`` model. It is not a language model: it picks
sentences from the sources, scoring each with BM25 against the question's terms plus a small bonus for
coming early in its document, and keeps them in their original order. Same input, same output, always.
"""

from __future__ import annotations

import math
import re
from collections import Counter

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])")
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
STOPWORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before being below
    between both but by can could did do does doing down during each few for from further had has have
    having he her here hers him his how i if in into is it its itself just me more most my no nor not now
    of off on once only or other our out over own same she should so some such than that the their them
    then there these they this those through to too under until up very was we were what when where which
    while who whom why will with would you your yours also may might must shall one two new use used using
    many much per via vs""".split()
)


def words(text: str) -> list[str]:
    """Lower-cased content words of ``text`` with a light plural fold."""
    out = []
    for w in _WORD.findall(text.lower()):
        if w in STOPWORDS or len(w) < 2:
            continue
        if len(w) > 4 and w.endswith("s") and not w.endswith("ss"):
            w = w[:-1]
        out.append(w)
    return out


def sentences(text: str) -> list[str]:
    """Sentences of prose, skipping headings, code fences and list markers."""
    out: list[str] = []
    in_code = False
    for block in re.split(r"\n\s*\n", text):
        stripped = block.strip()
        if stripped.startswith("```"):
            in_code = not in_code if stripped.count("```") == 1 else in_code
            continue
        if in_code or not stripped or stripped.startswith("#") or stripped.startswith("|"):
            continue
        lines = [re.sub(r"^\s*(?:[-*+]|\d+[.)])\s+", "", ln).strip() for ln in stripped.splitlines()]
        if len(lines) == 1 and not lines[0].endswith((".", "!", "?", ":")) and len(lines[0].split()) < 15:
            continue  # a title or caption, not a sentence
        joined = " ".join(ln for ln in lines if ln and not ln.startswith("#"))
        for sent in _SENTENCE_END.split(joined):
            sent = sent.strip()
            if len(words(sent)) >= 4:
                out.append(sent)
    return out


def rank(query: str, candidates: list[str], *, k1: float = 1.4, b: float = 0.75) -> list[float]:
    """BM25 score of each candidate sentence against ``query``, plus a small bonus for early position."""
    docs = [words(c) for c in candidates]
    if not docs:
        return []
    terms = set(words(query))
    n = len(docs)
    avg = sum(len(d) for d in docs) / n or 1.0
    df = Counter(t for d in docs for t in set(d))
    scores = []
    for i, doc in enumerate(docs):
        tf = Counter(doc)
        score = 0.0
        for t in terms:
            if t in tf:
                idf = math.log(1 + (n - df[t] + 0.5) / (df[t] + 0.5))
                score += idf * tf[t] * (k1 + 1) / (tf[t] + k1 * (1 - b + b * len(doc) / avg))
        scores.append(score + 0.1 / (1 + i))
    return scores


def top_sentences(query: str, text: str, limit: int) -> list[str]:
    """The ``limit`` sentences of ``text`` most relevant to ``query``, in document order."""
    sents = sentences(text)
    scores = rank(query, sents)
    best = sorted(range(len(sents)), key=lambda i: (-scores[i], i))[:limit]
    return [sents[i] for i in sorted(best)]


def keywords(text: str, limit: int, exclude: str = "") -> list[str]:
    """The most frequent content words of ``text`` not in ``exclude``, ties broken alphabetically."""
    skip = set(words(exclude))
    counts = Counter(w for w in words(text) if w not in skip and not w.isdigit())
    return [w for w, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]]
