"""JSON documents written a piece at a time: one list of a document streamed from an iterator.

``json.dumps(document, indent=2)`` needs the whole document in memory; a report's sources (their full
texts) or a run's steps (many thousands) need not be. :func:`dump` writes the same bytes, with the list
under ``key`` taken from ``items`` one item at a time.
"""

from __future__ import annotations

import json
import uuid
from typing import IO, Any, Callable, Iterable

from agent.jsontext import escape

_MARK = "\x00streamed\x00"
#: An item's strings at least this long are escaped by :func:`agent.jsontext.escape` (a source's full
#: text: json's indenting encoder escapes it at about 5 ns a character).
LONG = 4096
_LONG_MARK = f"\x00long {uuid.uuid4().hex} %d\x00"


def _item(item: Any, default: Callable[[Any], Any] | None) -> str:
    """``json.dumps(item, indent=2, ensure_ascii=False)``, its long top-level strings escaped fast: each
    is written as a marker (no text can hold: NULs and a random token), then put in the marker's place."""
    long = {}
    if type(item) is dict:
        for name, value in item.items():
            if type(value) is str and len(value) >= LONG:
                long[name] = value
    if not long:
        return json.dumps(item, indent=2, ensure_ascii=False, default=default)
    marks = {name: _LONG_MARK % i for i, name in enumerate(long)}
    text = json.dumps({**item, **marks}, indent=2, ensure_ascii=False, default=default)
    for name, mark in marks.items():
        text = text.replace(json.dumps(mark), escape(long[name]), 1)
    return text


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
            out.write(("[\n" if first else ",\n") + "    " + _item(item, default).replace("\n", "\n    "))
            first = False
        out.write("[]" if first else "\n  ]")
    for name, mark in later.items():  # a top-level value: its inner lines sit two spaces in
        value = json.dumps((after or {})[name](), indent=2, ensure_ascii=False, default=default)
        tail = tail.replace(json.dumps(mark), value.replace("\n", "\n  "), 1)
    out.write(tail + "\n")
