"""``local:extractive``: the offline default model. Not a language model.

It answers by extracting and citing sentences from the structured inputs a request carries in its
``context`` (see :mod:`agent.extractive`), deterministically, with no key and no network, through the
same durable steps as a hosted model. It knows no pipeline: each prompt template names, in its
``offline`` block, which of these generic operations answers it:

- ``extract``: the sentences of ``context.source.text`` most relevant to ``context.question``;
- ``findings``: Markdown bullets of the best sentences across ``context.summaries`` (each with ``id``
  and ``text``), each cited ``[id]``;
- ``answer``: an ``## Answer`` section of the best sentences across ``context.summaries``, cited;
- ``queries``: JSON ``{"queries": [...]}``, ``context.breadth`` of them, from the summaries' keywords;
- ``compare``: which of ``context.current`` (findings, strings) are new against ``context.previous``,
  and which previous ones are no longer among them, as Markdown bullets.

A request without an operation gets the sentences of its prompt most relevant to its system text.
``RESEARCH_LOCAL_LATENCY`` (seconds) makes each call wait that long, to rehearse a slow provider in
demos, benchmarks and crash drills.
"""

from __future__ import annotations

import asyncio
import json
import re

from agent import extractive
from agent.config import env_number
from agent.errors import UsageError
from agent.llm import Completion, CompletionRequest, Usage
from agent.providers.base import Provider

MODELS = ("extractive",)
#: Part of every local step key: bump it when the extractor's output changes, so old answers are not replayed.
ENGINE_VERSION = 3


def _bullets(question: str, items: list[dict], limit: int) -> list[tuple[int, str]]:
    """Best sentences across ``items`` (each with ``id`` and ``text``), best first, as (id, sentence)."""
    pool = [(item["id"], s) for item in items for s in extractive.sentences(item.get("text", ""))]
    scores = extractive.rank(question, [s for _, s in pool])
    order = sorted(range(len(pool)), key=lambda i: (-scores[i], i))
    seen: set[str] = set()
    out = []
    for i in order:
        sid, sent = pool[i]
        if sent not in seen:
            seen.add(sent)
            out.append((sid, sent))
        if len(out) == limit:
            break
    return out


def cite(sentence: str, sid: int) -> str:
    """``sentence`` with ``[sid]`` placed before its closing punctuation."""
    if sentence[-1:] in ".!?":
        return f"{sentence[:-1]} [{sid}]{sentence[-1]}"
    return f"{sentence} [{sid}]"


def extract(ctx: dict) -> str:
    source = ctx.get("source") or {}
    picked = extractive.top_sentences(ctx.get("question", ""), source.get("text", ""), int(ctx.get("sentences", 4)))
    return " ".join(picked) if picked else "The source has no prose relevant to the question."


def findings(ctx: dict) -> str:
    lines = [f"- {cite(sent, sid)}" for sid, sent in _bullets(ctx.get("question", ""), ctx.get("summaries", []), 6)]
    return "\n".join(lines) if lines else "- The sources say nothing relevant to the question."


def answer(ctx: dict) -> str:
    best = _bullets(ctx.get("question", ""), ctx.get("summaries", []), 5)
    text = " ".join(cite(sent, sid) for sid, sent in best) or "The sources do not answer the question."
    return "\n".join(["## Answer", "", text])


def queries(ctx: dict) -> str:
    text = " ".join(s.get("text", "") for s in ctx.get("summaries", []))
    breadth = int(ctx.get("breadth", 2))
    question = ctx.get("question", "")
    terms = extractive.keywords(text, breadth * 2, exclude=question)
    out = [f"{question} {' '.join(terms[i * 2:i * 2 + 2])}".strip() for i in range(breadth) if terms[i * 2:i * 2 + 2]]
    return json.dumps({"queries": out})


def _words(text: str) -> frozenset[str]:
    return frozenset(re.findall(r"[a-z0-9]+", re.sub(r"\[\d+\]", " ", text.lower())))


def _same(a: frozenset[str], b: frozenset[str]) -> bool:
    """Two findings say the same thing when their words overlap almost entirely."""
    return bool(a or b) and len(a & b) / max(len(a | b), 1) >= 0.8


def compare(ctx: dict) -> str:
    previous = [str(f) for f in ctx.get("previous", [])]
    current = [str(f) for f in ctx.get("current", [])]
    old_words = [_words(f) for f in previous]
    new_words = [_words(f) for f in current]
    added = [f for f, w in zip(current, new_words) if not any(_same(w, o) for o in old_words)]
    dropped = [f for f, w in zip(previous, old_words) if not any(_same(w, n) for n in new_words)]
    lines = [f"- New: {f}" for f in added] + [f"- No longer supported: {f}" for f in dropped]
    return "\n".join(lines) if lines else "- The findings are the same as in the last report."


OPERATIONS = {"extract": extract, "findings": findings, "answer": answer, "queries": queries, "compare": compare}


class LocalProvider(Provider):
    name = "local"
    reads_offline_hint = True
    # Small on purpose: long sources go through the same map-reduce path offline as with hosted models.
    context_window = 8_000

    def __init__(self, model: str, **kwargs) -> None:
        if model not in MODELS:
            raise UsageError(f"unknown local model {model!r}", hint=f"use one of: {', '.join('local:' + m for m in MODELS)}")
        super().__init__(model, **kwargs)

    @property
    def endpoint(self) -> str:
        return f"local://{self.model}/v{ENGINE_VERSION}"

    async def complete(self, request: CompletionRequest) -> Completion:
        latency = env_number("RESEARCH_LOCAL_LATENCY", float, default=0.0, minimum=0)
        if latency > 0:
            await asyncio.sleep(latency)
        ctx = request.context or {}
        operation = OPERATIONS.get(request.offline or "")
        if request.offline and operation is None:
            raise UsageError(f"the offline model has no operation {request.offline!r}",
                             hint=f"name one of {', '.join(OPERATIONS)} in the template's offline block")
        if operation is not None:
            text = operation(ctx)
        else:
            text = " ".join(extractive.top_sentences(request.system, request.prompt, 5))
        return Completion(
            text=text,
            usage=Usage(input_tokens=len((request.system + " " + request.prompt).split()), output_tokens=len(text.split())),
            model=self.model,
            finish_reason="stop",
        )
