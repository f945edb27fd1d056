"""Keeping citations honest: every [n] in a model's text must name a real, numbered source.

Models write ``[3]``, ``[2, 5]``, ``[1-3]`` or ``[1][4]``. Each is normalized to ``[n]`` markers; a
number that names no source the run actually read is removed from the text and reported, so an
invented citation is never shown as real.
"""

from __future__ import annotations

import re

_GROUP = re.compile(r"\[(\s*\d+\s*(?:(?:[,;]|-|–)\s*\d+\s*)*)\]")


def _numbers(group: str) -> list[int]:
    out: list[int] = []
    for part in re.split(r"[,;]", group):
        part = part.strip()
        bounds = re.split(r"\s*[-–]\s*", part)
        if len(bounds) == 2 and bounds[0].isdigit() and bounds[1].isdigit():
            lo, hi = int(bounds[0]), int(bounds[1])
            if 0 < hi - lo <= 20:
                out.extend(range(lo, hi + 1))
                continue
        if part.isdigit():
            out.append(int(part))
    return out


def verify(text: str, valid: set[int]) -> tuple[str, list[int]]:
    """``text`` with citations normalized and invalid ones removed, and the invalid numbers found."""
    invalid: list[int] = []

    def fix(match: re.Match) -> str:
        nums = _numbers(match.group(1))
        kept = [n for n in nums if n in valid]
        invalid.extend(n for n in nums if n not in valid and n not in invalid)
        return "".join(f"[{n}]" for n in kept)

    fixed = _GROUP.sub(fix, text)
    fixed = re.sub(r"[ \t]+([.,;:])", r"\1", fixed)
    return fixed, sorted(invalid)


def cited(text: str) -> set[int]:
    """Every source number cited in ``text``."""
    return {n for m in _GROUP.finditer(text) for n in _numbers(m.group(1))}


def agreement(analyses: list[dict[str, str]]) -> str:
    """A section comparing which sources each model's analysis relied on, for a synthesis that lacks one."""
    lines = ["## Where the models agreed and disagreed", ""]
    if len(analyses) < 2:
        lines.append("Only one model analysed the sources, so there is nothing to compare.")
        return "\n".join(lines)
    sets = [cited(a["text"]) for a in analyses]
    common = set.intersection(*sets)
    lines.append("All models drew on " + (", ".join(f"[{n}]" for n in sorted(common)) if common else "no common source") + ".")
    for i, (analysis, ids) in enumerate(zip(analyses, sets)):
        others = set().union(*(other for j, other in enumerate(sets) if j != i))
        if ids - others:
            lines.append(f"Only {analysis['model']} relied on " + ", ".join(f"[{n}]" for n in sorted(ids - others)) + ".")
    return "\n".join(lines)


def neutralize(text: str) -> str:
    """Source text with its own bracketed numbers (a page's footnote markers ``[1]``, ``[2, 5]``) made
    plain, ``(1)``, so they can never pass for the report's citations of other sources."""
    return _GROUP.sub(lambda m: f"({m.group(1).strip()})", text)


#: Phrases that address an AI model rather than a human reader: a page carrying them may be trying to
#: steer the models that read it (prompt injection).
_AIMED_AT_MODELS = re.compile(
    r"\b(?:ignore|disregard|forget)\s+(?:all\s+|any\s+)?(?:the\s+)?(?:previous|prior|above|earlier)\s+instructions?\b"
    r"|\b(?:system\s+(?:notice|prompt|message)\s*:)"
    r"|\bnote\s+to\s+(?:ai|llm|language\s+model)s?\b"
    r"|\b(?:if\s+you\s+are\s+an?\s+)(?:ai|llm|language\s+model|assistant)\b"
    r"|\b(?:ai|llm)\s+(?:assistants?|models?|agents?)\s*(?:must|should|are\s+instructed)\b",
    re.I,
)


def aimed_at_models(text: str) -> bool:
    """Whether ``text`` holds instructions aimed at AI models (ignore previous instructions, ...)."""
    return bool(_AIMED_AT_MODELS.search(text))
