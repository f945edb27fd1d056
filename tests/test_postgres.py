"""The PostgreSQL backend, against a real server this suite starts itself.

A session-scoped fixture runs ``initdb`` into a temp dir and starts ``postgres`` on a unix socket there
and on 127.0.0.1 (password auth), as an unprivileged user when the suite runs as root; each test gets a
database of its own. Without PostgreSQL's binaries, or when the server cannot start, these tests are
skipped with the reason.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest


# -- a throwaway server -------------------------------------------------------------------------------
def find_pg_bin() -> Path | None:
    """The directory holding ``initdb`` and ``pg_ctl``: Debian's ``/usr/lib/postgresql/N/bin`` (newest
    first), else ``PATH``."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2])
                        if p.split("/")[-2].isdigit() else 0, reverse=True)
    for directory in candidates:
        if all(os.access(os.path.join(directory, tool), os.X_OK) for tool in ("initdb", "pg_ctl", "postgres")):
            return Path(directory)
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(os.path.realpath(found)).parent
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _unprivileged_user() -> tuple[int, int, str]:
    """The uid, gid and name to run PostgreSQL as when we are root (it refuses to run as root)."""
    import pwd

    for name in ("research-pg", None):
        if name is None:
            break
        try:
            entry = pwd.getpwnam(name)
            return entry.pw_uid, entry.pw_gid, name
        except KeyError:
            made = subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
                                  capture_output=True, text=True)
            if made.returncode == 0:
                entry = pwd.getpwnam(name)
                return entry.pw_uid, entry.pw_gid, name
    entry = pwd.getpwnam("nobody")
    return entry.pw_uid, entry.pw_gid, "nobody"


class PostgresServer:
    """A PostgreSQL cluster in a temp dir: superuser ``research`` with a random password over TCP
    (scram-sha-256), trusted over the unix socket in the same dir. ``durable=False`` turns fsync off
    (tests); the benchmark keeps the server's defaults."""

    USER = "research"

    def __init__(self, *, durable: bool = False) -> None:
        self.durable = durable
        self.bin = find_pg_bin()
        self.password = secrets.token_hex(12)
        self.port = 0
        self.base: Path | None = None
        self._as: tuple[int, int] | None = None

    def _run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        preexec = None
        if self._as is not None:
            uid, gid = self._as

            def preexec() -> None:
                os.setgroups([])
                os.setgid(gid)
                os.setuid(uid)

        return subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, preexec_fn=preexec,
                              cwd=str(self.base), env={**os.environ, "LC_ALL": "C", "LANG": "C"})

    def start(self) -> str | None:
        """Start the server; ``None`` when it runs, else why it could not start."""
        if self.bin is None:
            return "PostgreSQL is not installed (no initdb/pg_ctl in /usr/lib/postgresql/*/bin or on PATH)"
        self.base = Path(tempfile.mkdtemp(prefix="research-pg-"))
        if os.geteuid() == 0:
            uid, gid, _ = _unprivileged_user()
            self._as = (uid, gid)
            os.chown(self.base, uid, gid)
        pwfile = self.base / "pw"
        pwfile.write_text(self.password + "\n")
        if self._as is not None:
            os.chown(pwfile, *self._as)
        made = self._run(str(self.bin / "initdb"), "-D", str(self.base / "data"), "-U", self.USER, "-E", "UTF8",
                         "--auth-local=trust", "--auth-host=scram-sha-256", f"--pwfile={pwfile}", "--no-sync")
        if made.returncode != 0:
            return f"initdb failed: {(made.stderr or made.stdout).strip()[-400:]}"
        self.port = _free_port()
        options = [f"-k {self.base}", "-h 127.0.0.1", f"-p {self.port}", "-c max_connections=300",
                   "-c shared_buffers=64MB"]
        if not self.durable:
            options += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
        started = self._run(str(self.bin / "pg_ctl"), "-D", str(self.base / "data"), "-l", str(self.base / "log"),
                            "-w", "-t", "60", "-o", " ".join(options), "start")
        if started.returncode != 0:
            log = (self.base / "log").read_text(errors="replace") if (self.base / "log").exists() else ""
            return f"pg_ctl start failed: {(started.stderr or started.stdout).strip()[-300:]} {log.strip()[-300:]}"
        return None

    def url(self, database: str = "postgres", *, password: bool = True) -> str:
        """A TCP URL (with the password unless told otherwise)."""
        auth = f"{self.USER}:{self.password}" if password else self.USER
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{database}"

    def socket_url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.USER}@/{database}?host={self.base}&port={self.port}"

    def admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(self.socket_url(), autocommit=True) as conn:
            conn.execute(sql)

    def create_database(self, name: str) -> str:
        self.admin(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        with contextlib.suppress(Exception):
            self.admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        if self.base is None:
            return
        if (self.base / "data" / "postmaster.pid").exists():
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.base / "data"), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.base, ignore_errors=True)
        self.base = None


# -- fixtures -------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def pg_server():
    try:
        import psycopg  # noqa: F401
        import psycopg_pool  # noqa: F401
    except ImportError as exc:
        pytest.skip(f"psycopg is not installed ({exc}): pip install -e '.[test]'")
    server = PostgresServer()
    why = server.start()
    if why is not None:
        server.stop()
        pytest.skip(f"PostgreSQL could not start: {why}")
    yield server
    from agent.backends import postgres

    postgres.close_all()
    server.stop()


@pytest.fixture
def pg_url(pg_server):
    """A fresh database on the session's server, as a TCP URL with the password."""
    name = f"t_{secrets.token_hex(5)}"
    url = pg_server.create_database(name)
    yield url
    from agent.backends import postgres

    postgres.close_all()
    pg_server.drop_database(name)


def pg(url: str, sql: str, params: tuple = ()) -> list[tuple]:
    """Rows from the store's database, read by the test itself (0 rows while it has no tables yet)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        try:
            return conn.execute(sql, params).fetchall()
        except psycopg.errors.UndefinedTable:
            return []


def completed(url: str) -> int:
    return pg(url, "SELECT COUNT(*) FROM events WHERE status = 'completed'")[0][0] if pg(
        url, "SELECT 1 FROM pg_tables WHERE tablename = 'events'") else 0


def paid_per_key(url: str) -> Counter:
    return Counter(k for (k,) in pg(url, "SELECT key FROM events WHERE status = 'completed' AND replayed = 0"))


def events_of(url: str, run_id: str) -> list[tuple]:
    return pg(url, "SELECT attempt, key, status, replayed FROM events WHERE run_id = %s ORDER BY id", (run_id,))


def wait_for_events(url: str, n: int, proc, deadline: float = 60.0) -> None:
    end = time.monotonic() + deadline
    while completed(url) < n:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < end, "the run made no progress"
        time.sleep(0.05)


def every_text(url: str) -> str:
    """Every value of every table of the store, as text: what must never hold a password."""
    tables = [t for (t,) in pg(url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
    return "\n".join(str(row) for table in tables for row in pg(url, f'SELECT * FROM "{table}"'))


from collections import Counter  # noqa: E402

from tests.conftest import subprocess_env  # noqa: E402
from tests.helpers import CORPUS, QUESTION, cli, cli_json, research_proc, research_run  # noqa: E402


# -- the seam -------------------------------------------------------------------------------------------
def test_the_location_picks_the_backend(monkeypatch, tmp_path):
    from agent.errors import UsageError
    from agent.storage import locate

    assert locate(None).backend == "local" and locate(None).target == str(tmp_path / "cache")
    assert locate("some/dir").backend == "local"
    where = locate("postgresql://team:s3cret@db.example:5433/research")
    assert where.backend == "postgresql" and str(where) == "postgresql://team@db.example:5433/research"
    monkeypatch.setenv("RESEARCH_STORE", "postgres://team:s3cret@db.example/research?sslmode=require")
    assert locate(None).backend == "postgresql" and "s3cret" not in str(locate(None))
    assert locate("elsewhere").backend == "local"  # an explicit --cache-dir wins over the environment
    monkeypatch.setenv("RESEARCH_STORE", "mysql://x@y/z")
    with pytest.raises(UsageError, match="postgresql://"):
        locate(None)
    both = cli("runs", "--store", "postgresql://a@b/c", "--cache-dir", "d")
    assert both.exit_code == 2 and "two different stores" in both.stderr


def test_no_module_but_the_factory_makes_a_backend():
    """``Store(``/``Journal(``/the PostgreSQL classes are constructed in agent/storage.py alone."""
    root = Path(__file__).resolve().parent.parent
    offenders = []
    for path in list((root / "agent").rglob("*.py")) + list((root / "pipelines").rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        if rel in ("agent/storage.py", "agent/backends/postgres.py", "agent/store.py", "agent/journal.py"):
            continue
        text = path.read_text()
        for made in ("Store(", "Journal(", "PostgresStore(", "PostgresJournal(", "open_postgres("):
            if f" {made}" in text or f"={made}" in text or f"({made}" in text:
                offenders.append((rel, made))
    assert offenders == []


# -- the same semantics as the local backend -----------------------------------------------------------
_VOLATILE = {"started_at", "updated_at", "finished_at", "at", "since", "until", "decided_at", "lease_expires",
             "duration_s", "holder", "pid", "host", "id"}


def _stable(value):
    if isinstance(value, dict):
        return {k: _stable(v) for k, v in value.items() if k not in _VOLATILE}
    if isinstance(value, list):
        return [_stable(v) for v in value]
    return value


def journal_scenario(location) -> dict:
    """One of everything the runtime, the runs layer and the pipelines ask of a backend."""
    import asyncio

    from agent.errors import ProviderError, UsageError
    from agent.journal import EFFECT_SECONDS, RunBusy, holder_id, totals
    from agent.runs import Workspace
    from agent.steps import Paid, StepSpec

    def spec(n, **kw):
        return StepSpec(kind="llm", name=f"step {n}", provider="p", model="m", request={"n": n}, **kw)

    def paid(value, cost):
        async def work():
            return Paid(value, input_tokens=3, output_tokens=4, cost_usd=cost, detail={"finish_reason": "stop"})
        return work

    async def failing():
        raise ProviderError("rate limited", provider="p", status=429, retryable=True)

    out: dict = {}
    ws = Workspace.open(location)
    try:
        async def first():
            rt = ws.start("r1", question="q", inputs={"a": 1}, config={"c": 1})
            await rt.step(spec(1), paid({"v": 1}, 0.25))
            await rt.step(spec(1), paid({"v": "never"}, 9.0))
            with pytest.raises(ProviderError):
                await rt.step(spec(2), failing)
            return rt.attempt

        out["first_attempt"] = asyncio.run(first())
        with pytest.raises(RunBusy):
            ws.start("r1", question="q", inputs={"a": 1}, config={})
        with pytest.raises(UsageError, match="different inputs"):
            ws.start("r1", question="q", inputs={"a": 2}, config={})
        out["live"] = ws.journal.get_run("r1")["status"]
        ws.leases.pop("r1").release()
        ws.journal.finish_run("r1", "interrupted", error="killed")

        async def second():
            rt = ws.start("r1", question="q", inputs={"a": 1}, config={"c": 2})
            out["pins"] = dict(rt.pins)
            await rt.step(spec(2), paid({"v": 2}, 0.5))
            await rt.step(spec(1), paid({"v": "never"}, 9.0))
            return rt.attempt

        out["second_attempt"] = asyncio.run(second())
        ws.journal.flush()
        out["attempt_counts"] = [ws.journal.attempt_counts("r1", a) for a in (1, 2)]
        out["r1_steps"] = ws.journal.steps("r1")
        out["r1_events"] = ws.journal.events("r1")
        ws.leases.pop("r1").release()
        ws.journal.finish_run("r1", "completed", report_path="reports/r1.md", outcome={"sources": [1]})

        async def other():
            rt = ws.start("r2", question="q2", inputs={"b": 1}, config={})
            for n in (1, 2):
                await rt.step(spec(n), paid("never", 1.0))

        asyncio.run(other())
        ws.leases.pop("r2").release()
        ws.journal.finish_run("r2", "completed")
        out["r2_totals"] = totals(ws.journal.steps("r2"))
        out["summary"] = ws.summary("r1")

        # scheduled reports: latest slot first, a run without a slot last
        for run_id, slot in (("rep@1", 1.0), ("rep@3", 3.0), ("rep@none", None), ("rep@2", 2.0)):
            ws.start(run_id, question="r", inputs={"r": run_id}, config={}, pipeline="report", report="rep", slot=slot)
            ws.leases.pop(run_id).release()
            ws.journal.finish_run(run_id, "completed")
        out["report_runs"] = [r["run_id"] for r in ws.journal.report_runs("rep")]

        # waits for people
        ws.start("w", question="w", inputs={}, config={})
        ws.leases.pop("w").release()
        out["wait"] = ws.journal.wait_for("w", "report", timeout_s=3600)
        out["wait_again"] = ws.journal.wait_for("w", "report")
        ws.journal.finish_run("w", "waiting")
        out["waiting_run"] = ws.journal.get_run("w")
        out["approved"] = ws.journal.decide("w", "approved", "go on")
        with pytest.raises(UsageError) as twice:
            ws.journal.decide("w", "approved")
        out["decide_twice"] = twice.value.one_line()
        ws.start("x", question="x", inputs={}, config={})
        ws.leases.pop("x").release()
        ws.journal.wait_for("x", "analyze", timeout_s=0)
        ws.journal.finish_run("x", "waiting")
        with pytest.raises(UsageError) as late:
            ws.journal.decide("x", "approved")
        out["late"] = late.value.one_line().split(" expired ")[0]
        out["x_status"] = ws.journal.get_run("x")["status"]

        # side effects
        out["effect_first"] = ws.journal.begin_effect("r1", "webhook:completed")
        out["effect_while_sending"] = ws.journal.begin_effect("r1", "webhook:completed")
        ws.journal.end_effect("r1", "webhook:completed", "sent", {"http_status": 204})
        out["effect_after_sent"] = ws.journal.begin_effect("r1", "webhook:completed")
        out["effect_failed"] = ws.journal.begin_effect("r1", "webhook:failed:1")
        ws.journal.end_effect("r1", "webhook:failed:1", "failed", {"error": "HTTP 500"})
        out["effects"] = ws.journal.effects("r1")
        out["effect_seconds"] = EFFECT_SECONDS

        # step claims
        me, other_me = f"{holder_id()}:aaa", f"{holder_id()}:bbb"
        out["claim"] = ws.journal.claim("k1", me, "r1")
        out["claim_other"] = ws.journal.claim("k1", other_me, "r2") == me
        out["claim_holder"] = ws.journal.claim_holder("k1") == me
        ws.journal.renew_claims(me)
        ws.journal.release_claim("k1", other_me)  # not its claim: nothing happens
        out["still_held"] = ws.journal.claim_holder("k1") == me
        ws.journal.release_claim("k1", me)
        out["released"] = ws.journal.claim_holder("k1")
        dead = "thishost-not:1:x"
        out["dead_claim"] = ws.journal.claim("k2", f"{socket.gethostname()}:999999999:x") is None
        out["dead_taken"] = ws.journal.claim("k2", me) is None
        out["elsewhere"] = ws.journal.claim("k3", dead) is None and ws.journal.claim("k3", me) == dead

        j = ws.journal  # batches: an intent, then the vendor's id; found by key until collected
        j.batch_intent("b1", run_id="r1", stage="summaries", provider="openai:m", endpoint="http://e", keys=["ka", "kb"])
        out["batch_open_intent"] = j.open_batches_of(["kb", "kz"])["kb"]["status"]
        j.batch_update("b1", "submitted", vendor_id="vend-1", detail={"done": 1})
        b1 = j.batch("b1")
        out["batch_submitted"] = (b1["status"], b1["vendor_id"], b1["keys"], b1["count"], b1["detail"],
                                  b1["submitted_at"] is not None)
        out["batch_adopted"] = sorted(j.adopted("http://e"))
        j.batch_update("b1", "collected")
        out["batch_after"] = (j.open_batches_of(["ka"]).get("ka"), [b["status"] for b in j.batches("r1")])
        many = [f"m{i}" for i in range(2 * j.KEYS_AT_ONCE + 3)]  # asked about in three statements
        j.batch_intent("b2", run_id="r1", stage="analysis", provider="openai:m", endpoint="http://e", keys=many)
        found = j.open_batches_of(["nope", *many])
        out["batch_many"] = (len(found), {b["id"] for b in found.values()}, "nope" in found)
        out["runs"] = [(r["run_id"], r["status"]) for r in ws.journal.list_runs()]
        with pytest.raises(UsageError) as unknown:
            ws.journal.get_run("nope")
        out["unknown"] = unknown.value.one_line().split(" in ")[0]
        out["find_none"] = ws.journal.find_run("nope")
    finally:
        ws.close()
    return out


def test_the_postgresql_journal_decides_as_the_local_one(pg_url, tmp_path):
    local = journal_scenario(tmp_path / "local-cache")
    shared = journal_scenario(pg_url)
    assert _stable(shared) == _stable(local)
    assert local["second_attempt"] == 2 and local["r2_totals"]["replayed"] == 2
    assert local["report_runs"] == ["rep@3", "rep@2", "rep@1", "rep@none"]
    assert [s["paid_times"] for s in shared["r1_steps"]] == [1, 1]
    assert local["batch_submitted"][:3] == ("submitted", "vend-1", ["ka", "kb"])
    assert local["batch_after"] == (None, ["collected"])
    assert local["batch_many"] == (2 * 500 + 3, {"b2"}, False)


def test_results_replay_pin_and_go_stale_as_in_the_local_store(pg_url, monkeypatch):
    import asyncio

    from agent.runs import Workspace
    from agent.steps import Paid, Runtime, StepSpec
    from agent.storage import open_storage

    store, journal = open_storage(pg_url, journal=False)
    assert journal is None
    record = store.put("k", {"text": "hi", "n": [1, 2]}, kind="llm", meta={"cost_usd": 0.5})
    got = store.get("k")
    assert got["value"] == {"text": "hi", "n": [1, 2]} and got["cost_usd"] == 0.5 and got["digest"] == record["digest"]
    # JSON text, nothing pickled: the column reads back as the JSON the record is
    ((text,),) = pg(pg_url, "SELECT record FROM results WHERE key = 'k'")
    assert json.loads(text) == got
    with pytest.raises(ValueError):
        store.put("nan", {"x": float("nan")}, kind="llm")
    big = "x" * 300_000 + "\x00 and a NUL"
    store.put("big", {"text": big}, kind="scrape")
    assert store.get("big")["value"]["text"] == big
    # freshness is a lookup policy
    assert store.get("k", max_age=60) is not None
    later = time.time() + 120
    with monkeypatch.context() as patched:
        patched.setattr("agent.store._now", lambda: later)
        assert store.get("k", max_age=60) is None and store.get("k") is not None
    # a replaced value stays reachable by its digest
    first = store.put("page", {"text": "old"}, kind="scrape")
    second = store.put("page", {"text": "new"}, kind="scrape")
    assert store.get("page")["value"] == {"text": "new"}
    assert store.get_pinned("page", first["digest"])["value"] == {"text": "old"}
    assert store.get_pinned("page", second["digest"])["value"] == {"text": "new"}
    assert pg(pg_url, "SELECT key FROM results WHERE key LIKE 'page@%%'") == [(f"page@{first['digest']}",)]
    # several records in one read, as the replay of a recorded summary reads its steps
    many = store.get_many(["page", "k", "absent", "big"])
    assert set(many) == {"page", "k", "big"} and many["page"]["value"] == {"text": "new"} and many["k"] == store.get("k")
    stats = store.stats()
    assert stats["entries"] == 4 and stats["kinds"]["scrape"]["entries"] == 3 and stats["kinds"]["llm"]["entries"] == 1
    assert store.clear("llm") == 1 and store.get("k") is None and store.clear() == 3

    # The runtime on it: pays once, replays in another runtime, a resumed run replays its pinned result.
    calls = []

    async def work():
        calls.append(1)
        return Paid({"answer": 42}, cost_usd=0.25)

    async def both():
        a = await Runtime(store).step(StepSpec(kind="llm", name="s", request=1), work)
        b = await Runtime(store).step(StepSpec(kind="llm", name="s", request=1), work)
        return a, b

    a, b = asyncio.run(both())
    assert calls == [1] and not a.replayed and b.replayed and b.cost_usd == 0.25

    ws = Workspace.open(pg_url)
    page = StepSpec(kind="scrape", name="page", request={"url": "u"}, max_age=60)

    def fetcher(text):
        async def fetch():
            return Paid({"text": text})
        return fetch

    async def resumed():
        old = await ws.start("r1", question="q", inputs={}, config={}).step(page, fetcher("old"))
        later = time.time() + 3600
        monkeypatch.setattr("agent.store._now", lambda: later)
        new = await ws.start("r2", question="q", inputs={"x": 1}, config={}).step(page, fetcher("new"))
        ws.leases.pop("r1").release()
        ws.journal.finish_run("r1", "interrupted")
        again = await ws.start("r1", question="q", inputs={}, config={}).step(page, fetcher("newest"))
        return old, new, again

    old, new, again = asyncio.run(resumed())
    ws.close()
    assert old.value == {"text": "old"} and new.value == {"text": "new"} and not new.replayed
    assert again.value == {"text": "old"} and again.replayed


def test_durable_functions_use_the_shared_store(pg_url, monkeypatch):
    from agent import durable

    monkeypatch.setenv("RESEARCH_STORE", pg_url)
    calls = []

    @durable(name="tests.pg.double")
    def double(x: int) -> int:
        calls.append(x)
        return 2 * x

    assert double(21) == 42 and double(21) == 42 and calls == [21]
    assert pg(pg_url, "SELECT kind FROM results") == [("fn",)]


def test_two_processes_meeting_an_empty_database_create_it_once(pg_url, tmp_path):
    import sys

    code = "import sys; from agent.storage import open_storage; s, j = open_storage(sys.argv[1]); print(j.schema_version)"
    procs = [subprocess.Popen([sys.executable, "-c", code, pg_url], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=subprocess_env(), cwd=tmp_path) for _ in range(4)]
    outs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, outs
    from agent.backends.postgres import SCHEMA_VERSION

    assert {out.strip() for out, _ in outs} == {str(SCHEMA_VERSION)}
    assert pg(pg_url, "SELECT version FROM research_schema") == [(SCHEMA_VERSION,)]


def test_a_store_made_by_a_newer_release_is_refused_in_one_line(pg_url):
    assert cli("runs", "--store", pg_url).exit_code == 0
    pg(pg_url, "UPDATE research_schema SET version = 99 RETURNING version")
    from agent.backends import postgres

    postgres.close_all()
    result = cli("runs", "--store", pg_url)
    assert result.exit_code == 2 and "newer release" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


# -- the CLI on the shared store -----------------------------------------------------------------------
def test_run_resume_replay_runs_show_and_cache_on_postgres(pg_url, pg_server, tmp_path):
    first = cli_json("run", QUESTION, "--file", CORPUS, "--run-id", "a", "--store", pg_url, "--format", "md,json")
    assert first["status"] == "completed" and first["totals"]["paid"] == 12
    again = cli_json("run", QUESTION, "--file", CORPUS, "--run-id", "b", "--store", pg_url)
    assert (again["totals"]["paid"], again["totals"]["replayed"]) == (0, 12)  # across runs
    resumed = cli_json("resume", "a", "--store", pg_url)
    assert resumed["totals"]["this_attempt"] == {"attempt": 2, "paid": 0, "replayed": 12, "failed": 0}
    assert Path("reports/a.md").read_text() == Path("reports/b.md").read_text().replace("Run `b`", "Run `a`")
    assert not Path("cache").exists() and not (tmp_path / "cache").exists()  # nothing local was made

    rows = cli_json("runs", "--store", pg_url)
    assert [(r["run_id"], r["status"]) for r in rows] == [("b", "completed"), ("a", "completed")]
    shown = cli_json("show", "a", "--store", pg_url)
    assert shown["attempts"] == 2 and shown["totals"]["paid"] == 12 and len(shown["steps"]) == 12
    text = cli("show", "a", "--store", pg_url)
    assert text.exit_code == 0 and "12 steps: 12 paid" in text.stdout
    stats = cli_json("cache", "stats", "--store", pg_url)
    # 12 steps' results, and what the run remembered of free work: the claim check's verdicts (the
    # answer's and the analysis's), the scan of each of the 5 sources for instructions aimed at models,
    # and the steps each of the 5 summaries took
    assert stats["entries"] == 24 and set(stats["kinds"]) == {"llm", "scrape", "check", "memo"}
    shown_stats = cli("cache", "stats", "--store", pg_url).stdout
    assert shown_stats.startswith(f"postgresql://research@127.0.0.1:{pg_server.port}/") and pg_server.password not in shown_stats
    cleared = cli("cache", "clear", "--kind", "llm", "--yes", "--store", pg_url)
    assert cleared.exit_code == 0 and "removed 7 entries" in cleared.stdout
    assert cli_json("cache", "stats", "--store", pg_url)["entries"] == 17
    paid_again = cli_json("run", QUESTION, "--file", CORPUS, "--run-id", "c", "--store", pg_url)
    assert (paid_again["totals"]["paid"], paid_again["totals"]["replayed"]) == (7, 5)
    assert cli("cache", "clear", "--yes", "--store", pg_url).exit_code == 0
    assert cli_json("cache", "stats", "--store", pg_url)["entries"] == 0
    assert len(cli_json("runs", "--store", pg_url)) == 3  # the journal is kept


def test_budgets_stop_and_resume_on_postgres(pg_url, tmp_path, monkeypatch):
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"local": {"extractive": {"input": 100.0, "output": 100.0}}}))
    monkeypatch.setenv("RESEARCH_PRICES", str(prices))
    monkeypatch.setenv("RESEARCH_STORE", pg_url)
    stopped = cli("run", QUESTION, "--file", CORPUS, "--run-id", "b1", "--max-cost", "0.5", "--concurrency", "1")
    assert stopped.exit_code == 4 and "research resume b1" in stopped.stderr
    shown = cli_json("show", "b1")
    assert shown["status"] == "stopped" and 0 < shown["totals"]["cost_usd"] <= 0.5
    paid_before = {s["key"] for s in shown["steps"] if s["kind"] == "llm" and not s["replayed"]}
    resumed = cli("resume", "b1", "--max-cost", "100", "--json")
    assert resumed.exit_code == 0, resumed.stderr
    shown = cli_json("show", "b1")
    assert shown["status"] == "completed" and shown["totals"]["paid"] == 12
    assert all(not s["replayed"] for s in shown["steps"] if s["key"] in paid_before)


def test_a_wait_for_approval_is_answered_from_another_process_and_directory(pg_url, tmp_path):
    laptop, ci = tmp_path / "laptop", tmp_path / "ci"
    laptop.mkdir(), ci.mkdir()
    env = subprocess_env()
    first = research_run("run", QUESTION, "--file", CORPUS, "--run-id", "w", "--store", pg_url, "--approve", "report",
                         "--json", env=env, cwd=laptop)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["status"] == "waiting"
    listed = research_run("runs", "--json", "--store", pg_url, env=env, cwd=ci)
    assert json.loads(listed.stdout)[0]["status"] == "waiting"
    approved = research_run("approve", "w", "--note", "Lead with the running costs.", "--json", "--store", pg_url,
                            env=env, cwd=ci)
    assert approved.returncode == 0, approved.stderr
    out = json.loads(approved.stdout)
    assert out["status"] == "completed"
    assert out["totals"]["this_attempt"]["paid"] == 1  # only the report: the rest replayed
    assert (ci / "reports" / "w.md").exists()
    twice = research_run("approve", "w", "--store", pg_url, env=env, cwd=laptop)
    assert twice.returncode == 2 and "not waiting for approval (it is completed)" in twice.stderr
    assert not (laptop / "cache").exists() and not (ci / "cache").exists()


def test_scheduled_reports_replay_a_slot_on_postgres(pg_url, tmp_path):
    corpus = tmp_path / "notes"
    corpus.mkdir()
    (corpus / "cold.md").write_text("# Cold\n\nHeat pumps work well in cold climates when sized for the coldest week.\n")
    (corpus / "cost.md").write_text("# Costs\n\nHeat pumps cost about as much to run as gas boilers.\n")
    Path("research.toml").write_text(f'[reports.nightly]\nquestion = "Do heat pumps work in the cold?"\n'
                                     f'files = ["{corpus}"]\nschedule = "0 6 * * *"\n')
    first = cli("report", "run", "nightly", "--at", "2026-11-20", "--store", pg_url)
    assert first.exit_code == 0 and "nightly@2026-11-20T06:00Z: completed" in first.stdout, first.stderr
    again = cli("report", "run", "nightly", "--at", "2026-11-20", "--store", pg_url)
    assert again.exit_code == 0, again.stderr
    slot = "nightly@2026-11-20T06:00Z"
    assert pg(pg_url, "SELECT attempts FROM runs WHERE run_id = %s", (slot,)) == [(2,)]
    assert pg(pg_url, "SELECT COUNT(*) FROM events WHERE run_id = %s AND attempt = 2 AND replayed = 0", (slot,)) == [(0,)]
    due = cli("report", "due", "--now", "2026-11-21T08:00Z", "--store", pg_url)
    assert due.exit_code == 0 and "nightly@2026-11-21T06:00Z: completed" in due.stdout
    (listed,) = cli_json("report", "list", "--store", pg_url, "--now", "2026-11-21T09:00Z")
    assert listed["last_run"]["run_id"] == "nightly@2026-11-21T06:00Z" and listed["last_run"]["status"] == "completed"


# -- several machines, one database --------------------------------------------------------------------
def _machine(tmp_path, name):
    cwd = tmp_path / name
    cwd.mkdir()
    return cwd


def test_two_machines_needing_the_same_steps_at_once_pay_once(pg_url, tmp_path):
    from tests.test_crash import QUESTION as Q, make_corpus

    corpus = make_corpus(tmp_path)
    env = subprocess_env(RESEARCH_LOCAL_LATENCY="0.15")
    procs = [research_proc("run", Q, "--file", corpus, "--run-id", run_id, "--store", pg_url, "--concurrency", "2",
                           "--quiet", env=env, cwd=_machine(tmp_path, run_id)) for run_id in ("a", "b")]
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    paid = paid_per_key(pg_url)
    assert paid and max(paid.values()) == 1, [k for k, n in paid.items() if n > 1]
    per_run = dict(pg(pg_url, "SELECT run_id, COUNT(DISTINCT key) FROM events WHERE status = 'completed' GROUP BY run_id"))
    assert per_run["a"] == per_run["b"] == len(paid)


def test_a_claimant_killed_on_one_machine_hands_its_steps_to_another(pg_url, tmp_path):
    from tests.test_crash import QUESTION as Q, make_corpus

    corpus = make_corpus(tmp_path)

    def args(run_id):
        return ["run", Q, "--file", corpus, "--run-id", run_id, "--store", pg_url, "--concurrency", "2", "--quiet"]

    first = research_proc(*args("first"), env=subprocess_env(RESEARCH_LOCAL_LATENCY="0.4"), cwd=_machine(tmp_path, "m1"))
    wait_for_events(pg_url, 12, first)
    second = research_proc(*args("second"), env=subprocess_env(RESEARCH_LOCAL_LATENCY="0.05"),
                           cwd=_machine(tmp_path, "m2"))
    wait_for_events(pg_url, 14, first)
    first.send_signal(signal.SIGKILL)
    first.communicate(timeout=30)
    out, err = second.communicate(timeout=120)
    assert second.returncode == 0, err
    assert max(paid_per_key(pg_url).values()) == 1


def test_a_lease_held_on_another_machine_is_respected_until_it_expires(pg_url):
    from agent.journal import holder_id
    from agent.storage import open_storage

    done = cli_json("run", QUESTION, "--file", CORPUS, "--run-id", "far", "--store", pg_url)
    assert done["status"] == "completed"
    elsewhere = "build-agent-7:4242:9f3a"
    pg(pg_url, "UPDATE runs SET status = 'running', host = 'build-agent-7', pid = 4242, holder = %s, lease_expires = %s"
               " WHERE run_id = 'far' RETURNING 1", (elsewhere, time.time() + 60))
    busy = cli("resume", "far", "--store", pg_url)
    assert busy.exit_code == 2 and f"already running in {elsewhere}" in busy.stderr
    assert cli_json("runs", "--store", pg_url)[0]["status"] == "running"
    # Its heartbeat stopped (the machine died): once the lease runs out, the run is free.
    pg(pg_url, "UPDATE runs SET lease_expires = %s WHERE run_id = 'far' RETURNING 1", (time.time() - 1,))
    assert cli_json("runs", "--store", pg_url)[0]["status"] == "interrupted"
    resumed = cli_json("resume", "far", "--store", pg_url)
    assert resumed["status"] == "completed" and resumed["totals"]["this_attempt"]["paid"] == 0

    # A step claimed on that machine waits for it while its claim is live, and is taken over after.
    _, journal = open_storage(pg_url)
    me = f"{holder_id()}:abc"
    pg(pg_url, "INSERT INTO claims (key, holder, run_id, expires) VALUES ('k', %s, 'far', %s) RETURNING 1",
       (elsewhere, time.time() + 60))
    assert journal.claim_holder("k") == elsewhere and journal.claim("k", me) == elsewhere
    pg(pg_url, "UPDATE claims SET expires = %s RETURNING 1", (time.time() - 1,))
    assert journal.claim_holder("k") is None and journal.claim("k", me) is None
    assert journal.claim_holder("k") == me
    journal.close()


# -- the crash drill, on the shared store -----------------------------------------------------------------
def test_sigkill_at_several_points_then_resume_on_postgres(pg_url, tmp_path):
    """tests/test_crash.py's drill with RESEARCH_STORE naming the database: every kill is followed by a
    run from another working directory, no completed step is paid again, the report is the same."""
    from tests.test_crash import QUESTION as Q, make_corpus

    corpus = make_corpus(tmp_path)
    env = subprocess_env(RESEARCH_LOCAL_LATENCY="0.06", RESEARCH_STORE=pg_url)
    args = ["run", Q, "--file", corpus, "--run-id", "crash-1", "--out", tmp_path / "out", "--concurrency", "1"]
    # The reference: never interrupted, in a local cache of its own (--cache-dir wins over RESEARCH_STORE).
    ref = research_run(*args[:-4], "--out", tmp_path / "ref-out", "--concurrency", "1", "--cache-dir",
                       tmp_path / "ref-cache", env=env, cwd=tmp_path)
    assert ref.returncode == 0, ref.stderr
    assert completed(pg_url) == 0
    expected = (tmp_path / "ref-out" / "crash-1.md").read_text()

    kills = 0
    for i, kill_after in enumerate((1, 6, 13, 19)):
        proc = research_proc(*args, env=env, cwd=_machine(tmp_path, f"m{i}"))
        deadline = time.monotonic() + 30
        while completed(pg_url) < kill_after and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            kills += 1
        proc.wait(timeout=10)
        proc.stdout.close()
        proc.stderr.close()
    assert kills >= 3, "the run finished before it could be killed; the drill proved nothing"

    shown = research_run("show", "crash-1", "--json", env=env, cwd=tmp_path)
    assert json.loads(shown.stdout)["status"] == "interrupted"
    resumed = research_run("resume", "crash-1", env=env, cwd=_machine(tmp_path, "last"))
    assert resumed.returncode == 0, resumed.stderr
    assert (tmp_path / "out" / "crash-1.md").read_text() == expected

    history = events_of(pg_url, "crash-1")
    assert len({key for _, key, _, _ in history}) == 22
    paid = Counter(key for _, key, status, replayed in history if status == "completed" and not replayed)
    assert max(paid.values()) == 1, "a step that completed was executed again"
    assert len(paid) >= 22 - kills
    last = max(a for a, _, _, _ in history)
    earlier = {key for a, key, status, _ in history if a < last and status == "completed"}
    assert earlier and all(replayed for a, key, _, replayed in history if a == last and key in earlier)


def test_rerun_with_the_same_id_after_a_kill_resumes_on_postgres(pg_url, tmp_path):
    from tests.test_crash import QUESTION as Q, make_corpus

    corpus = make_corpus(tmp_path)
    env = subprocess_env(RESEARCH_LOCAL_LATENCY="0.06", RESEARCH_STORE=pg_url)
    args = ["run", Q, "--file", corpus, "--run-id", "again", "--concurrency", "1"]
    proc = research_proc(*args, env=env, cwd=_machine(tmp_path, "one"))
    while completed(pg_url) < 15 and proc.poll() is None:
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    proc.stdout.close()
    proc.stderr.close()
    done_before = {key for _, key, status, _ in events_of(pg_url, "again") if status == "completed"}
    again = research_run(*args, env=env, cwd=_machine(tmp_path, "two"))
    assert again.returncode == 0, again.stderr
    second = [e for e in events_of(pg_url, "again") if e[0] == 2]
    assert all(replayed for _, key, status, replayed in second if key in done_before)
    paid_now = sum(1 for _, _, status, replayed in second if status == "completed" and not replayed)
    assert 22 - len(done_before) - 1 <= paid_now <= 22 - len(done_before)


# -- moving results between stores ------------------------------------------------------------------------
def test_export_from_a_laptop_import_into_the_team_store_and_conflicts(pg_url, tmp_path):
    from agent.keys import content_hash
    from agent.storage import open_storage

    laptop = tmp_path / "laptop-cache"
    assert cli_json("run", QUESTION, "--file", CORPUS, "--cache-dir", laptop)["totals"]["paid"] == 12
    exported = cli("cache", "export", tmp_path / "seed.jsonl", "--cache-dir", laptop)
    # 12 steps' results, the claim check's 2 remembered verdicts, the 5 sources' remembered scans and
    # the steps each of their 5 summaries took
    assert exported.exit_code == 0 and "exported 24 results" in exported.stdout
    lines = (tmp_path / "seed.jsonl").read_text().splitlines()
    assert json.loads(lines[0]) == {"durable_research": "results", "version": 1} and len(lines) == 25
    assert oct((tmp_path / "seed.jsonl").stat().st_mode & 0o777) == "0o600"

    imported = cli_json("cache", "import", tmp_path / "seed.jsonl", "--store", pg_url)
    assert (imported["added"], imported["same"], imported["conflicts"], imported["invalid"]) == (24, 0, [], [])
    shared = cli_json("run", QUESTION, "--file", CORPUS, "--store", pg_url)
    assert (shared["totals"]["paid"], shared["totals"]["replayed"]) == (0, 12)  # the laptop's work, replayed
    assert cli_json("cache", "import", tmp_path / "seed.jsonl", "--store", pg_url)["same"] == 24

    # A different value for a key the team store has: reported, kept, exit 3; --overwrite replaces it.
    entry = json.loads(lines[1])
    key, old = entry["key"], entry["record"]
    changed = dict(old, value={"changed": True})
    changed["digest"] = content_hash(changed["value"])
    tampered = dict(old, value={"tampered": True})  # its digest no longer says its value
    (tmp_path / "other.jsonl").write_text(
        lines[0] + "\n" + json.dumps({"key": key, "record": changed}) + "\n"
        + json.dumps({"key": "v1:llm:x", "record": tampered}) + "\nnot json\n")
    clash = cli("cache", "import", tmp_path / "other.jsonl", "--store", pg_url)
    assert clash.exit_code == 3
    assert f"{key}: a different result is stored here" in clash.stderr and "kept it" in clash.stderr
    assert "a digest that is not its value's" in clash.stderr and ":4: skipped: not JSON" in clash.stderr
    assert "0 added" in clash.stdout and "1 different and kept" in clash.stdout and "2 invalid" in clash.stdout
    store, _ = open_storage(pg_url, journal=False)
    assert store.get(key)["digest"] == old["digest"]
    replaced = cli("cache", "import", tmp_path / "other.jsonl", "--store", pg_url, "--overwrite")
    assert replaced.exit_code == 3 and "1 replaced" in replaced.stdout  # the invalid lines are still invalid
    assert store.get(key)["value"] == {"changed": True}
    assert store.get_pinned(key, old["digest"])["value"] == old["value"]  # nothing lost

    # And back: the team store's results (pinned versions too) into a new laptop's cache.
    back = cli("cache", "export", "-", "--store", pg_url)
    assert back.exit_code == 0 and "exported 25 results" in back.stderr
    (tmp_path / "back.jsonl").write_text(back.stdout)
    fresh = tmp_path / "new-laptop"
    assert cli_json("cache", "import", tmp_path / "back.jsonl", "--cache-dir", fresh)["added"] == 25
    local, _ = open_storage(fresh, journal=False)
    assert local.get(key)["value"] == {"changed": True}
    assert local.get_pinned(key, old["digest"])["value"] == old["value"]
    local.close()


# -- credentials ----------------------------------------------------------------------------------------
def test_an_unreachable_store_is_one_line_naming_host_and_database_before_anything_is_paid(pg_server, tmp_path):
    from tests.servers import serve
    from tests.servers.openai_api import OpenAIAPI

    closed = f"postgresql://team:s3cret-Passw0rd@127.0.0.1:{_free_port()}/teamdb"
    fake = OpenAIAPI(key="sk-unreachable")
    with serve(fake) as server:
        env = subprocess_env(OPENAI_API_KEY="sk-unreachable", OPENAI_BASE_URL=f"{server.url}/v1")
        result = research_run("run", QUESTION, "--file", CORPUS, "--model", "openai:gpt-4o-mini", "--store", closed,
                              env=env, cwd=tmp_path)
        assert server.requests == []  # nothing paid before the store answered
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert "127.0.0.1" in line and "teamdb" in line and "Connection refused" in line and "s3cret" not in line
    assert not (tmp_path / "reports").exists()

    wrong = pg_server.url("postgres").replace(pg_server.password, "not-the-Passw0rd")
    for url, said in ((wrong, "password authentication failed"),
                      (closed.replace("/teamdb", "/teamdb?bogus=1"), "invalid URI query parameter")):
        for args in (("runs", "--store", url), ("runs", "--store", url, "--debug")):
            got = research_run(*args, env=subprocess_env(), cwd=tmp_path)
            assert got.returncode == 1 and said in got.stderr, got.stderr
            assert "Passw0rd" not in got.stderr and "s3cret" not in got.stderr
            if "--debug" not in args:
                assert len(got.stderr.strip().splitlines()) == 1
    env_url = subprocess_env(RESEARCH_STORE=closed)
    via_env = research_run("cache", "stats", env=env_url, cwd=tmp_path)
    assert via_env.returncode == 1 and "teamdb" in via_env.stderr and "s3cret" not in via_env.stderr


def test_the_password_never_reaches_the_journal_reports_or_messages(pg_server, pg_url, tmp_path):
    password = pg_server.password
    assert password in pg_url
    env = subprocess_env(RESEARCH_STORE=pg_url)
    outputs = []
    for args in (("run", QUESTION, "--file", CORPUS, "--run-id", "p", "--format", "md,html,json", "--json"),
                 ("run", QUESTION, "--file", CORPUS, "--run-id", "q", "--approve", "report"),
                 ("runs",), ("show", "p"), ("show", "p", "--json"), ("cache", "stats"), ("cache", "stats", "--json"),
                 ("show", "nope"), ("approve", "p"), ("resume", "nope", "--debug")):
        result = research_run(*args, env=env, cwd=tmp_path)
        outputs.append(result.stdout + result.stderr)
    assert "no run with id 'nope' in postgresql://research@127.0.0.1" in outputs[7]
    assert all(password not in text for text in outputs)
    assert password not in every_text(pg_url)
    for path in (tmp_path / "reports").iterdir():
        assert password not in path.read_text()


def test_a_batched_run_waits_and_is_collected_on_postgres(pg_url, tmp_path, monkeypatch):
    """The batches table on the shared store: handed over by one process, collected by the next."""
    from tests.servers import serve
    from tests.servers.openai_batch import OpenAIBatchAPI, Plan

    fake = OpenAIBatchAPI(key="pg-batch-key", default_plan=Plan(polls=10_000))
    with serve(fake) as server:
        for name, value in {"OPENAI_API_KEY": "pg-batch-key", "OPENAI_BASE_URL": f"{server.url}/v1",
                            "RESEARCH_BATCH_POLL": "0.02", "RESEARCH_BATCH_LINGER": "0.25"}.items():
            monkeypatch.setenv(name, value)
        args = ["run", QUESTION, "--file", CORPUS, "--run-id", "pgb", "--store", pg_url,
                "--model", "openai:gpt-4o-mini", "--batch", "--no-wait"]
        handed = cli_json(*args)
        assert handed["status"] == "waiting" and handed["continue"] == "research resume pgb"
        assert pg(pg_url, "SELECT stage, count, status FROM batches WHERE run_id = 'pgb'") == [("summaries", 5, "submitted")]
        rounds = 0
        while not Path("reports/pgb.md").exists():
            rounds += 1
            assert rounds <= 4
            for job in fake.jobs.values():
                job.plan = Plan(polls=0)
            assert cli("resume", "pgb", "--store", pg_url, "--no-wait").exit_code == 0
        assert rounds == 3 and len(fake.jobs) == 3 and len(fake.submitted()) == len(set(fake.submitted())) == 7
        assert pg(pg_url, "SELECT DISTINCT status FROM batches WHERE run_id = 'pgb'") == [("collected",)]
        shown = cli_json("show", "pgb", "--store", pg_url)
        assert shown["totals"]["batched"] == 7 and len(fake.answered) == 0
