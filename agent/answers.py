"""Cleaning what a model wrote before anyone reads it: loops and bare citation lists come out, and say so.

Real models, small ones above all, repeat a paragraph until they hit their limit, or end an answer with
a line of nothing but ``[1] [2] [3] ... [9]``. Such text is trimmed here, and each trim comes back as a
plain-words note for the report, so a reader knows the answer was repaired and how.
"""

from __future__ import annotations

import re

_BARE_CITATIONS = re.compile(r"^\s*(?:[-*]\s*)?(?:\[\d+(?:\s*[,;–-]\s*\d+)*\]\s*[,;.]?\s*){2,}$")
#: A line this long (in words) that appears again is a repetition, not a coincidence.
REPEAT_WORDS = 5


def _norm(line: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", line.lower()).split())


def tidy(text: str) -> tuple[str, list[str]]:
    """``text`` without repeated lines and lines of bare citations, and what was removed, in words."""
    lines = text.splitlines()
    if len(lines) == 1 and not _BARE_CITATIONS.match(lines[0]):
        return lines[0].strip(), []  # one line repeats nothing: as the loop below would leave it
    kept: list[str] = []
    seen: set[str] = set()
    repeated = bare = 0
    for line in lines:
        if _BARE_CITATIONS.match(line):
            bare += 1
            continue
        norm = _norm(line)
        if len(norm.split()) >= REPEAT_WORDS:
            if norm in seen:
                repeated += 1
                continue
            seen.add(norm)
        kept.append(line)
    out = re.sub(r"\n{3,}", "\n\n", "\n".join(kept)).strip()
    notes = []
    if repeated:
        notes.append(f"it repeated itself; {repeated} repeated line{'s were' if repeated != 1 else ' was'} removed")
    if bare:
        notes.append(f"{bare} line{'s' if bare != 1 else ''} of bare citation numbers {'were' if bare != 1 else 'was'} removed")
    return out, notes
