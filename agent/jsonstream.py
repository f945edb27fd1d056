"""JSON documents written a piece at a time: one list of a document streamed from an iterator.

``json.dumps(document, indent=2)`` needs the whole document in memory; a report's sources (their full
texts) or a run's steps (many thousands) need not be. :func:`dump` writes the same bytes, with the list
under ``key`` taken from ``items`` one item at a time.
"""

from __future__ import annotations

import json
from typing import IO, Any, Callable, Iterable

_MARK = "\x00streamed\x00"


def dump(document: dict[str, Any], key: str, items: Iterable[Any], out: IO[str], *,
         default: Callable[[Any], Any] | None = None, after: dict[str, Callable[[], Any]] | None = None) -> None:
    """Write ``document`` to ``out`` as ``json.dumps(..., indent=2, ensure_ascii=False)`` would, with
    ``document[key]`` being the list of ``items`` (the document's own value under ``key`` is ignored).

    ``after`` gives top-level keys after ``key`` whose values are known only once ``items`` are all
    written (totals of what was streamed): each is called then, and its value written in its place."""
    later = {name: f"\x00after {name}\x00" for name in after or {}}
    head, marker, tail = json.dumps({**document, **later, key: _MARK}, indent=2, ensure_ascii=False,
                                    default=default).partition(json.dumps(_MARK))
    out.write(head)
    if marker:
        first = True
        for item in items:
            out.write(("[\n" if first else ",\n") + "    " + json.dumps(item, indent=2, ensure_ascii=False,
                                                                         default=default).replace("\n", "\n    "))
            first = False
        out.write("[]" if first else "\n  ]")
    for name, mark in later.items():  # a top-level value: its inner lines sit two spaces in
        value = json.dumps((after or {})[name](), indent=2, ensure_ascii=False, default=default)
        tail = tail.replace(json.dumps(mark), value.replace("\n", "\n  "), 1)
    out.write(tail + "\n")
