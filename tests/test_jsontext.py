"""agent.jsontext writes json's own bytes (so step keys never move) and agent.jsonstream's fast path for
long texts writes what json.dumps writes."""

from __future__ import annotations

import io
import json

import pytest

from agent import jsonstream, jsontext
from agent.keys import canonical_json

STD = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode


def _all_code_points(size: int):
    """Every code point but the surrogates, ``size`` to a string."""
    points = [c for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]
    for start in range(0, len(points), size):
        yield "".join(map(chr, points[start:start + size]))


@pytest.mark.parametrize("size", [1, 5000])  # short strings take json's escape, long ones orjson's
def test_every_code_point_is_escaped_as_json_escapes_it(size):
    for text in _all_code_points(size):
        assert jsontext.escape(text) == json.dumps(text, ensure_ascii=False), text[:20]


def test_lone_surrogates_are_written_as_json_writes_them():
    for text in ["\ud800", "a\udfff" * 100, "\ud83d" + "x" * 200]:
        assert jsontext.escape(text) == json.dumps(text, ensure_ascii=False)


TEXT = ("Quotes \" and \\ backslashes, tabs\t, newlines\n, a bell \x07, DEL \x7f, é, “curly”, 😀, \u2028. " * 80)
VALUES = [
    {"prompt": TEXT, "system": "short", "max_tokens": 600, "temperature": 0.0,
     "context": {"task": "summarize", "title": "t", "text": TEXT}},
    TEXT, "", "x", 0, -1, 10**40, 1.5, 1e16, 1e-7, -0.0, True, False, None,
    [TEXT, [TEXT, {"b": 1, "a": TEXT}]], (1, "two", TEXT), {1: "one", 2: TEXT}, {2.5: 1, 1: 2}, {None: 1}, {True: 1},
    {"\ud800" * 70: "\udfff" * 80},
]


@pytest.mark.parametrize("value", VALUES, ids=range(len(VALUES)))
def test_canonical_json_is_the_standard_librarys(value):
    assert canonical_json(value) == STD(value)


class Unknown:
    pass


def _circular():
    value: list = []
    value.append(value)
    return value


@pytest.mark.parametrize("value", [float("nan"), [float("inf")], {"a": Unknown()}, {(1,): 2}, {"z": 1, 3: 4},
                                   _circular()], ids=["nan", "inf", "unknown", "tuple key", "mixed keys", "circular"])
def test_canonical_json_refuses_what_json_refuses_with_its_error(value):
    with pytest.raises(Exception) as ours:
        canonical_json(value)
    with pytest.raises(Exception) as std:
        STD(value)
    assert (type(ours.value), str(ours.value)) == (type(std.value), str(std.value))


def test_a_streamed_document_with_long_texts_has_json_dumps_bytes():
    sources = [{"id": i, "title": f"source {i}", "text": TEXT * (i + 1), "short": "é\n\"", "nested": {"text": TEXT}}
               for i in range(4)]
    document = {"question": "q", "sources": [], "markdown": TEXT, "after": None}
    out = io.StringIO()
    jsonstream.dump(document, "sources", iter(sources), out, after={"after": lambda: {"count": len(sources)}})
    expected = json.dumps({**document, "sources": sources, "after": {"count": 4}}, indent=2, ensure_ascii=False)
    assert out.getvalue() == expected + "\n"
    assert json.loads(out.getvalue())["sources"][3]["text"] == TEXT * 4


@pytest.mark.parametrize("raw", [
    b'{"value": {"text": "x", "n": 3, "f": 0.1, "z": -0.0}, "cost_usd": 1.5e-05}',
    b'{"big": 123456789012345678901234567890, "neg": -9223372036854775809}',  # orjson would read floats
    b'{"f": 1e300, "g": -2e19}', b'[NaN, Infinity]', b'{"s": "\\ud800"}', b'"\\u00e9\\n"', b'{"a": 1, "a": 2}',
    b'[' * 500 + b']' * 500,
], ids=["record", "big ints", "big floats", "nan", "surrogate", "escapes", "duplicate key", "deep"])
def test_loads_reads_what_json_reads(raw):
    assert repr(jsontext.loads(raw)) == repr(json.loads(raw.decode("utf-8")))


@pytest.mark.parametrize("raw", [b'{"a": }', b'\xff\xfe', b'[1, 2', b''])
def test_loads_refuses_what_json_refuses(raw):
    with pytest.raises(ValueError):
        jsontext.loads(raw)


def test_this_interpreter_gets_the_fast_encoder():
    # The C encoder's arguments passed the import-time check; otherwise keys would still be right, but slow.
    assert jsontext._ok and jsontext.canonical.__module__ == "agent.jsontext"
