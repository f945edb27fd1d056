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


def _std_canonical_bytes(value: Any) -> bytes:
    return _STD_CANONICAL.encode(value).encode("utf-8")


def _plain(value: Any) -> bool:
    """Whether orjson writes ``value`` (sorting its keys) exactly as the canonical form does: it holds
    nothing but dicts with string keys, lists, tuples, strings, booleans, None, integers within 64 bits
    and floats written without an exponent (zero, or from 1e-4 up to 1e16, where both write the
    shortest digits the same way; ``tests/test_jsontext.py`` compares them). Exact types only, so a
    subclass with a ``__repr__`` of its own, or a dataclass orjson would accept, goes to json."""
    kind = type(value)
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str or not _plain(item):
                return False
        return True
    if kind is list or kind is tuple:
        for item in value:
            if not _plain(item):
                return False
        return True
    if kind is str or kind is bool or value is None:
        return True
    if kind is int:
        return -(1 << 63) <= value < 1 << 64
    if kind is float:
        return value == 0.0 or 1e-4 <= abs(value) < 1e16
    return False


if _make_encoder is not None and _orjson is not None:
    _SORTED = _orjson.OPT_SORT_KEYS

    def canonical_bytes(value: Any) -> bytes:
        """:func:`canonical` encoded as UTF-8 (what keys and digests hash)."""
        try:
            if _plain(value):
                return _orjson.dumps(value, option=_SORTED)
        except (_orjson.JSONEncodeError, RecursionError):
            pass  # a lone surrogate, nesting orjson will not follow: json's encoder says what it does
        return canonical(value).encode("utf-8")

    def canonical(value: Any) -> str:
        """``json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)``."""
        if type(value) is str:
            return escape(value)
        # The C encoder json.dumps uses, given orjson's escaping for its strings; made for each call
        # (under a microsecond) so that each has its own record of the containers it is inside, as
        # json's check for a value that holds itself needs.
        return "".join(_make_encoder({}, _refuse, escape, None, ":", ",", True, False, False)(value, 0))
    _SAMPLE = {"b": ["\u00e9\"\n\x7f\x1f" * 40, 1, 2.5, None, True, 1e-4, -0.0], "a": {"x": "y" * 100, "\U0001f600": [],
                                                                                   "\uffff": 2 ** 63}, "3": 1e15}
    try:  # the C encoder's arguments are CPython's own: a release that changed them gets json's encoder
        _ok = (canonical(_SAMPLE) == _STD_CANONICAL.encode(_SAMPLE)
               and canonical_bytes(_SAMPLE) == _STD_CANONICAL.encode(_SAMPLE).encode("utf-8"))
    except Exception:  # pragma: no cover
        _ok = False
    if not _ok:  # pragma: no cover
        canonical = _STD_CANONICAL.encode
        canonical_bytes = _std_canonical_bytes
else:  # pragma: no cover
    canonical = _STD_CANONICAL.encode
    canonical_bytes = _std_canonical_bytes


def _past_64_bits(value: Any) -> bool:
    """Whether ``value`` holds a float as large as an integer past 64 bits that orjson read as a float."""
    kind = type(value)
    if kind is float:
        return not -9.2e18 < value < 9.2e18
    if kind is dict:
        items: Any = value.values()
    elif kind is list:
        items = value
    else:
        return False
    for item in items:
        kind = type(item)
        if kind is float:
            if not -9.2e18 < item < 9.2e18:
                return True
        elif (kind is dict or kind is list) and _past_64_bits(item):
            return True
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
            try:
                if not _past_64_bits(value):
                    return value
            except RecursionError:  # nested deeper than the check goes: json decides, as it would alone
                pass
    return json.loads(raw.decode("utf-8"))
