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


def _std_bytes(value):
    text = STD(value)
    return text.encode("utf-8")


@pytest.mark.parametrize("value", VALUES, ids=range(len(VALUES)))
def test_the_bytes_keys_hash_are_the_standard_librarys(value):
    def outcome(write):
        try:
            return write(value)
        except Exception as exc:  # a lone surrogate cannot be UTF-8: the same error either way
            return type(exc)
    assert outcome(jsontext.canonical_bytes) == outcome(_std_bytes)


def _random_value(rng, depth=0):
    pick = rng.random()
    if depth < 4 and pick < 0.25:
        return {_random_text(rng, 6): _random_value(rng, depth + 1) for _ in range(rng.randint(0, 6))}
    if depth < 4 and pick < 0.4:
        items = [_random_value(rng, depth + 1) for _ in range(rng.randint(0, 5))]
        return tuple(items) if rng.random() < 0.2 else items
    if pick < 0.6:
        return _random_text(rng, rng.choice([3, 40, 200]))
    if pick < 0.75:
        return rng.choice([rng.randint(-1000, 1000), rng.randint(-(1 << 70), 1 << 70), (1 << 64) - 1, 1 << 64,
                           -(1 << 63), -(1 << 63) - 1])
    if pick < 0.9:
        return rng.choice([0.0, -0.0, 1e-4, 9.999999999999998e15, 1e16, 1e-5]
                          + [rng.random() * 10 ** rng.uniform(-8, 22) * rng.choice([1, -1]) for _ in range(4)])
    return rng.choice([True, False, None])


def _random_text(rng, size):
    alphabet = "ab \"\\/\n\t\x00\x1f\x7f\x80é€\u2028\u2029\ufeff\uffff\U0001f600\U0010ffff"
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, size)))


def test_random_values_have_the_standard_librarys_bytes():
    import random

    rng = random.Random(20261208)
    for _ in range(3000):
        value = _random_value(rng)
        assert jsontext.canonical_bytes(value) == _std_bytes(value), value


def test_floats_and_integers_are_written_as_json_writes_them():
    import random
    import struct

    rng = random.Random(7)
    floats = [struct.unpack("d", rng.getrandbits(64).to_bytes(8, "little"))[0] for _ in range(20000)]
    floats += [rng.random() * 10 ** rng.uniform(-6, 18) for _ in range(50000)]
    floats += [1e-4, 1e-4 * (1 - 2 ** -52), 1e16, 1e16 * (1 - 2 ** -53), 0.1, 0.2, 1 / 3, 5e-324, 1.7976931348623157e308]
    for f in floats:
        if f == f and abs(f) != float("inf"):
            assert jsontext.canonical_bytes([f, {"f": f}]) == _std_bytes([f, {"f": f}]), f
    for i in [0, 1, -1, (1 << 63) - 1, -(1 << 63), (1 << 64) - 1, 1 << 64, -(1 << 63) - 1, 10 ** 30]:
        assert jsontext.canonical_bytes({"i": i}) == _std_bytes({"i": i})


def test_keys_sort_by_code_point_as_json_sorts_them():
    keys = ["b", "a", "B", "é", "\uffff", "\U00010000", "\ue000", "\u00ff", "ab", "a\x00", "", "\U0010ffff", "\u0800"]
    value = {k: i for i, k in enumerate(keys)}
    assert jsontext.canonical_bytes(value) == _std_bytes(value)


def test_subclasses_and_objects_orjson_would_take_go_to_json():
    import dataclasses
    import enum

    class Level(enum.IntEnum):
        HIGH = 3

    class Name(str):
        pass

    @dataclasses.dataclass
    class Point:
        x: int

    for value in [{"level": Level.HIGH}, [Name("x")], {Name("k"): 1}]:
        assert jsontext.canonical_bytes(value) == _std_bytes(value)
    with pytest.raises(TypeError, match="Point is not JSON serializable"):
        jsontext.canonical_bytes({"p": Point(1)})
    deep: list = []
    inner = deep
    for _ in range(300):  # deeper than orjson writes
        inner.append([])
        inner = inner[0]
    assert jsontext.canonical_bytes(deep) == _std_bytes(deep)


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
    with pytest.raises(Exception) as as_bytes:
        jsontext.canonical_bytes(value)
    assert (type(ours.value), str(ours.value)) == (type(std.value), str(std.value))
    assert (type(as_bytes.value), str(as_bytes.value)) == (type(std.value), str(std.value))


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
    b'[' * 500 + b']' * 500, b'{"a": ' * 950 + b'1' + b'}' * 950,
], ids=["record", "big ints", "big floats", "nan", "surrogate", "escapes", "duplicate key", "deep", "deeper"])
def test_loads_reads_what_json_reads(raw):
    def outcome(read):
        try:
            return repr(read())
        except RecursionError:  # json's own limit on nesting, where the interpreter's stack ends
            return "RecursionError"
    assert outcome(lambda: jsontext.loads(raw)) == outcome(lambda: json.loads(raw.decode("utf-8")))


@pytest.mark.parametrize("raw", [b'{"a": }', b'\xff\xfe', b'[1, 2', b''])
def test_loads_refuses_what_json_refuses(raw):
    with pytest.raises(ValueError):
        jsontext.loads(raw)


def test_this_interpreter_gets_the_fast_encoder():
    # The C encoder's arguments passed the import-time check; otherwise keys would still be right, but slow.
    assert jsontext._ok and jsontext.canonical.__module__ == "agent.jsontext"
