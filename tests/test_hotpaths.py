"""The fast paths of a cache hit keep the meaning of the slow ones: the same keys, the same store, the
same records, and a library import that stays light."""

import json
import os
import subprocess
import sys
import time

import diskcache
import pytest

from agent import UsageError, durable
from agent.keys import KeyMaker, canonical_json, step_key
from agent.store import Store, decode_record


@durable(name="golden.classify")
def classify(title, labels, depth=2, **extra):
    return {"title": title, "depth": depth}


@durable(name="golden.versioned", version="2024-06")
def versioned(x):
    return x


@durable(name="golden.counted", version=3)
def counted(*items):
    return len(items)


#: Keys as the release before the fast paths made them: stored results must keep replaying.
GOLDEN = [
    (classify, ("Harbour traffic", ["economy", "sport"]), {},
     "v1:fn:5f5134471edb24c4a065052536cd0dd93de046847f269b2e092e788b6446f9e8"),
    (classify, ("Harbour traffic",), {"labels": ("economy", "sport"), "depth": 2},
     "v1:fn:5f5134471edb24c4a065052536cd0dd93de046847f269b2e092e788b6446f9e8"),
    (classify, ("Grüße, ✓", []), {"note": {"b": 1, "a": [None, True, 1.5]}},
     "v1:fn:d5adb624383d793abfe4683c2b1f5cdd94c1e962db9801eda266926502a3afe9"),
    (classify, ("int keys", {10: "x", 9: "y"}), {},
     "v1:fn:8db4b818c88e88c68fa895b0a02018cb110335e6cc31812b228873542c4036d0"),
    (classify, ("bool key", {True: 1, 2: 3}), {},
     "v1:fn:a1b54cdc81eb0b4c36f41f897ab03826f00750753d52631a2b03e0b235018ac7"),
    (classify, ("brace in text {", ["{}"]), {},
     "v1:fn:579f3145548884b93cd9f22c1eb9eef6613893b42247e6b9ed6f27899555ab73"),
    (versioned, ({"nested": {"z": 1, "a": {"k": []}}},), {},
     "v1:fn:bb0e2fc34bb38271d6c9f0ba6512530437b7e2fb50674aa2b0d76fed7ec3bde6"),
    (counted, (1, 2.0, "3"), {},
     "v1:fn:38811b737af7af777ccde62dc6dc2a256a83efea8178cc6da7f1f236c943f0f6"),
]


@pytest.mark.parametrize("fn, args, kwargs, key", GOLDEN)
def test_durable_keys_are_the_golden_ones(fn, args, kwargs, key):
    assert fn.step_key(*args, **kwargs) == key
    assert fn.step_key(*args, **kwargs) == key  # remembered, the same


def test_keys_stay_right_past_what_a_function_remembers():
    @durable(name="hot.many")
    def many(i, text):
        return i

    expected = {i: step_key("fn", provider="python", model="hot.many",
                            request={"args": {"i": i, "text": "x" * (i % 3) * 600}, "version": None})
                for i in range(2500)}
    for _ in range(2):
        assert all(many.step_key(i, "x" * (i % 3) * 600) == key for i, key in expected.items())


def test_key_maker_makes_the_keys_step_key_makes():
    requests = [None, {"args": {"a": [1, 2]}, "version": None}, {"prompt": "é ✓", "max_tokens": 5}, [1, "x"]]
    for fields in [dict(provider="python", model="m.f"), dict(provider="openai", endpoint="https://api.example/v1",
                                                              model="gpt"), {}]:
        for schema_version in (1, 7):
            maker = KeyMaker("llm", schema_version=schema_version, **fields)
            for request in requests:
                assert maker.key(canonical_json(request)) == step_key("llm", request=request,
                                                                      schema_version=schema_version, **fields)


def test_a_missing_or_unknown_argument_is_the_functions_own_type_error():
    with pytest.raises(TypeError, match="labels"):
        classify("only a title")
    with pytest.raises(TypeError, match="x"):
        versioned()
    with pytest.raises(TypeError):
        versioned(1, 2)


def test_a_value_the_arguments_hold_unreadable_as_json_is_a_usage_error():
    for bad in [float("nan"), {1: "a", "b": 2}, object()]:
        with pytest.raises(UsageError) as info:
            classify("t", [bad])
        assert "an argument of golden.classify is not JSON-serializable" in info.value.one_line()


def test_the_default_store_follows_the_variables_and_the_working_directory(tmp_path, monkeypatch):
    @durable(name="hot.where")
    def where(x):
        calls.append(x)
        return x

    calls: list[int] = []
    monkeypatch.setenv("RESEARCH_CACHE_DIR", str(tmp_path / "one"))
    where(1), where(1)
    monkeypatch.setenv("RESEARCH_CACHE_DIR", str(tmp_path / "two"))
    where(1)
    monkeypatch.setenv("RESEARCH_CACHE_DIR", "relative")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    monkeypatch.chdir(tmp_path / "a")
    where(1), where(1)
    monkeypatch.chdir(tmp_path / "b")
    where(1)
    monkeypatch.setenv("RESEARCH_STORE", str(tmp_path / "one"))  # the first store again, by another name
    where(1)
    assert calls == [1, 1, 1, 1]
    assert (tmp_path / "a" / "relative").is_dir() and (tmp_path / "b" / "relative").is_dir()


def test_records_in_any_json_encoding_read_as_before(tmp_path):
    record = {"value": {"text": "Grüße"}, "digest": "d", "kind": "fn"}
    text = json.dumps(record, ensure_ascii=False)
    for raw in [text.encode("utf-8"), text, b"\xef\xbb\xbf" + text.encode("utf-8"), text.encode("utf-16"),
                text.encode("utf-32-le")]:
        assert decode_record(raw) == record
    for raw in [b"\xff\xfe\xfa", b"[1, 2]", b'{"no": "value"}', b"", "{", None, 42]:
        assert decode_record(raw) is None


def test_a_row_in_the_database_and_a_large_one_in_a_file_both_read(tmp_path):
    with Store(tmp_path / "cache") as store:
        small = store.put("v1:fn:small", {"x": 1}, kind="fn")
        large = store.put("v1:fn:large", {"x": "y" * 100_000}, kind="fn")
        assert store.get("v1:fn:small") == small
        assert store.get("v1:fn:large") == large
        assert store.get("v1:fn:absent") is None


def test_import_agent_does_not_import_asyncio():
    code = ("import sys, agent\n"
            "print(sorted(m for m in ('asyncio', 'concurrent.futures') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_command_line_imports_neither_steps_nor_asyncio_to_print_its_help():
    # The package loads durable and Research when first used: `research --help` needs neither.
    code = ("import sys\nfrom typer.testing import CliRunner\nfrom agent.cli import app\n"
            "assert CliRunner().invoke(app, ['--help']).exit_code == 0\n"
            "print(sorted(m for m in ('asyncio', 'agent.steps', 'agent.durable_steps', 'agent.research', 'hashlib')"
            " if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_lazy_names_are_the_public_ones():
    code = ("import agent\n"
            "from agent import durable, Research, ResearchReport\n"
            "import agent.durable_steps\n"  # importing the module does not put it in the decorator's place
            "print(callable(agent.durable) and agent.durable is durable, Research.__name__, ResearchReport.__name__,"
            " 'durable' in dir(agent))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["True", "Research", "ResearchReport", "True"]


def test_a_sync_durable_hit_imports_no_asyncio(tmp_path):
    code = ("import sys\n"
            "from agent import durable\n"
            "@durable(name='hot.square')\n"
            "def square(x):\n"
            "    return x * x\n"
            "print(square(7), square(7), 'asyncio' in sys.modules)\n")
    env = {**os.environ, "RESEARCH_CACHE_DIR": str(tmp_path / "cache")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env).stdout
    assert out.split() == ["49", "49", "False"]


def test_an_expired_row_is_a_miss_as_diskcache_reads_it(tmp_path):
    directory = tmp_path / "c"
    with Store(directory) as store:
        store.put("k", {"ok": 1}, kind="llm")
    planted = diskcache.Cache(str(directory))
    planted.set("k-old", b'{"value": 1, "kind": "llm"}', expire=-1)
    planted.set("k-new", b'{"value": 2, "kind": "llm"}', expire=3600)
    planted.close()
    with Store(directory) as store:
        assert store.get("k-old") is None
        assert store.get("k-new")["value"] == 2
        assert store.get("k")["value"] == {"ok": 1}
        with pytest.raises(TypeError):
            store.get(("a", "tuple"))


def test_max_age_holds_in_the_process_that_paid():
    calls: list[int] = []

    @durable(name="hot.fresh", max_age=0.01)
    def fresh(x):
        calls.append(x)
        return x

    fresh(1)
    time.sleep(0.05)  # older than max_age now
    fresh(1)
    assert calls == [1, 1]
