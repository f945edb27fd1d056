"""JSON text the standard library's way, faster where texts are long.

``json`` escapes a string at about 5 ns a character: a step whose request holds a 10 KB part of a
source twice spends most of its replay there. orjson escapes strings exactly as ``json`` does with
``ensure_ascii=False`` (``tests/test_jsontext.py`` checks every code point) at a tenth of the cost, so
long strings are escaped by orjson and everything else is still the standard library's C encoder:
the same sorting, separators, numbers, errors and refusals, and so the same bytes, the same keys.
Reading, :func:`loads` takes orjson's parse unless it could differ from json's (orjson reads an
integer past 64 bits as a float).
Without orjson (a platform it has no wheel for) everything is the standard library's.
"""

from __future__ import annotations

import json
from json.encoder import encode_basestring as _std_escape
from typing import Any

try:
    import orjson as _orjson
except ImportError:  # pragma: no cover - orjson has wheels for every platform the project supports
    _orjson = None

try:
    from _json import make_encoder as _make_encoder
except ImportError:  # pragma: no cover - CPython always has it
    _make_encoder = None

#: Strings shorter than this are escaped by the standard library: a call into orjson costs more.
LONG = 64


def escape(text: str) -> str:
    """``json.dumps(text, ensure_ascii=False)``: the JSON string literal of ``text``."""
    if len(text) < LONG or _orjson is None:
        return _std_escape(text)
    try:
        return _orjson.dumps(text).decode("utf-8")
    except TypeError:  # a lone surrogate, which orjson refuses and json writes as it is
        return _std_escape(text)


def _refuse(value: Any) -> Any:
    raise TypeError(f"Object of type {value.__class__.__name__} is not JSON serializable")


_STD_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)

if _make_encoder is not None and _orjson is not None:
    def canonical(value: Any) -> str:
        """``json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)``."""
        if type(value) is str:
            return escape(value)
        # The C encoder json.dumps uses, given orjson's escaping for its strings; made for each call
        # (under a microsecond) so that each has its own record of the containers it is inside, as
        # json's check for a value that holds itself needs.
        return "".join(_make_encoder({}, _refuse, escape, None, ":", ",", True, False, False)(value, 0))
    _SAMPLE = {"b": ["\u00e9\"\n" * 40, 1, 2.5, None, True], "a": {"x": "y" * 100}, "3": 1e16}
    try:  # the C encoder's arguments are CPython's own: a release that changed them gets json's encoder
        _ok = canonical(_SAMPLE) == _STD_CANONICAL.encode(_SAMPLE)
    except Exception:  # pragma: no cover
        _ok = False
    if not _ok:  # pragma: no cover
        canonical = _STD_CANONICAL.encode
else:  # pragma: no cover
    canonical = _STD_CANONICAL.encode


def _past_64_bits(value: Any) -> bool:
    """Whether ``value`` holds a float as large as an integer past 64 bits that orjson read as a float."""
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is float:
            if not -9.2e18 < item < 9.2e18:
                return True
        elif kind is dict:
            stack.extend(item.values())
        elif kind is list:
            stack.extend(item)
    return False


def loads(raw: bytes) -> Any:
    """``json.loads(raw.decode("utf-8"))``, the same value, parsed by orjson where that is the same.

    Anything orjson refuses (NaN, numbers past a float's range, lone surrogates, nesting past 1,024)
    and any value holding a float of 2**63 or more (which may have been a larger integer) is parsed by
    ``json``, which also raises its own ``ValueError`` for what is not JSON."""
    if _orjson is not None:
        try:
            value = _orjson.loads(raw)
        except _orjson.JSONDecodeError:
            pass
        else:
            if not _past_64_bits(value):
                return value
    return json.loads(raw.decode("utf-8"))
