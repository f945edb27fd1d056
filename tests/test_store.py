"""The store: JSON records only; pickles planted in the cache directory never execute."""

import os
import sqlite3
import time

import diskcache
import pytest

from agent.errors import StoreError
from agent.store import Store

MARKER_ENV = "DR_PICKLE_MARKER"


class Boom:
    """Unpickling this writes a marker file: proof that code ran."""

    def __reduce__(self):
        return (open, (os.environ[MARKER_ENV], "w"))


def test_put_get_roundtrip(tmp_path):
    with Store(tmp_path / "c") as store:
        record = store.put("k1", {"text": "hi", "n": [1, 2]}, kind="llm", meta={"cost_usd": 0.5})
        got = store.get("k1")
    assert got["value"] == {"text": "hi", "n": [1, 2]}
    assert got["cost_usd"] == 0.5
    assert got["digest"] == record["digest"]


def test_values_are_stored_as_json_bytes(tmp_path):
    with Store(tmp_path / "c") as store:
        store.put("k1", {"a": 1}, kind="llm")
    conn = sqlite3.connect(tmp_path / "c" / "cache.db")
    mode, value = conn.execute("SELECT mode, value FROM Cache WHERE key = 'k1'").fetchone()
    conn.close()
    assert mode == 1  # raw bytes, not pickle (4)
    assert bytes(value).startswith(b"{")


def test_large_values_go_to_files_and_come_back(tmp_path):
    text = "x" * 200_000
    with Store(tmp_path / "c") as store:
        store.put("big", {"text": text}, kind="scrape")
        assert store.get("big")["value"]["text"] == text


@pytest.mark.parametrize("large", [False, True])
def test_planted_pickle_is_never_executed(tmp_path, monkeypatch, large):
    marker = tmp_path / "pwned"
    monkeypatch.setenv(MARKER_ENV, str(marker))
    directory = tmp_path / "c"
    with Store(directory) as store:
        store.put("k-good", {"ok": True}, kind="llm")
    # An attacker with write access plants pickled rows with stock diskcache.
    attacker = diskcache.Cache(str(directory), disk_min_file_size=0 if large else 2**20)
    attacker.set("k-evil", Boom())
    attacker.set(("tuple", "key"), "x")  # a pickled key
    attacker.close()
    with Store(directory) as store:
        assert store.get("k-evil") is None
        assert store.get("k-good")["value"] == {"ok": True}
        assert list(store.get_many(["k-evil", "k-good"])) == ["k-good"]
        store.stats()
    assert not marker.exists()


def test_many_records_read_together_as_each_reads_alone(tmp_path):
    directory = tmp_path / "c"
    keys = [f"k{i}" for i in range(1200)]  # past what one SQLite statement takes
    with Store(directory) as store:
        for i, key in enumerate(keys):
            store.put(key, {"i": i}, kind="llm")
        store.put("big", {"text": "y" * 200_000}, kind="scrape")  # a record in a file of its own
    raw = diskcache.Cache(str(directory))
    raw.set("k7", b"{not json")
    raw.set("k8", b"x", expire=-1)  # expired: diskcache's get misses it too
    raw.close()
    with Store(directory) as store:
        many = store.get_many(keys + ["big", "absent"])
        assert set(many) == set(keys) - {"k7", "k8"} | {"big"}
        assert all(many[key] == store.get(key) for key in many)
        assert store.get_many([]) == {}
        with pytest.raises(TypeError):
            store.get_many([("tuple", "key")])


def test_invalid_json_row_is_a_miss(tmp_path):
    directory = tmp_path / "c"
    with Store(directory) as store:
        store.put("k", {"ok": 1}, kind="llm")
    raw = diskcache.Cache(str(directory))
    raw.set("k", b"{not json")
    raw.set("k2", b'"a string, not a record"')
    raw.close()
    with Store(directory) as store:
        assert store.get("k") is None
        assert store.get("k2") is None


def test_non_json_value_is_refused(tmp_path):
    with Store(tmp_path / "c") as store, pytest.raises(ValueError):
        store.put("k", {"x": float("nan")}, kind="llm")


def test_max_age_makes_old_records_a_miss(tmp_path, monkeypatch):
    with Store(tmp_path / "c") as store:
        store.put("k", "v", kind="scrape")
        assert store.get("k", max_age=60) is not None
        later = time.time() + 120
        monkeypatch.setattr("agent.store._now", lambda: later)
        assert store.get("k", max_age=60) is None
        assert store.get("k") is not None


def test_replaced_value_stays_reachable_by_digest(tmp_path):
    with Store(tmp_path / "c") as store:
        first = store.put("page", {"text": "old"}, kind="scrape")
        second = store.put("page", {"text": "new"}, kind="scrape")
        assert store.get("page")["value"] == {"text": "new"}
        assert store.get_pinned("page", first["digest"])["value"] == {"text": "old"}
        assert store.get_pinned("page", second["digest"])["value"] == {"text": "new"}


def test_stats_and_clear_by_kind(tmp_path):
    with Store(tmp_path / "c") as store:
        store.put("a", 1, kind="llm")
        store.put("b", 2, kind="llm")
        store.put("c", 3, kind="scrape")
        stats = store.stats()
        assert stats["entries"] == 3
        assert stats["kinds"]["llm"]["entries"] == 2
        assert store.clear("llm") == 2
        assert store.get("a") is None and store.get("c") is not None
        assert store.clear() == 1


def test_unusable_cache_dir_is_a_store_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(StoreError) as info:
        Store(blocker / "cache")
    assert "--cache-dir" in info.value.one_line()


def test_two_processes_writing_one_cache_do_not_corrupt_it(tmp_path):
    import subprocess
    import sys

    code = (
        "import sys; from agent.store import Store\n"
        "s = Store(sys.argv[1]); w = sys.argv[2]\n"
        "for i in range(200): s.put(f'{w}-{i}', {'i': i, 'w': w}, kind='fn'); s.put('shared', {'w': w}, kind='fn')\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "c"), w]) for w in ("a", "b")]
    assert [p.wait(timeout=60) for p in procs] == [0, 0]
    with Store(tmp_path / "c") as store:
        for w in ("a", "b"):
            for i in range(200):
                assert store.get(f"{w}-{i}")["value"] == {"i": i, "w": w}
        assert store.get("shared")["value"]["w"] in ("a", "b")
    conn = sqlite3.connect(tmp_path / "c" / "cache.db")
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
