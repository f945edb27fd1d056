"""The fault suite: SIGKILL real ``research`` processes in every stage of hosted-model runs, resume each time.

Two runs, each driven through a chain of SIGKILLs, one ``research resume RUN_ID`` after another, before
the last resume is let finish:

- ``fault-web``: two Markdown files and a 400-page PDF (slow to read) from disk, three pages of a
  loopback website (the built-in fetcher), three models (the OpenAI, Anthropic and Gemini fakes, over
  the real SDKs); 13 kills: reads, web fetches, summaries, analyses, the synthesis, report writing.
- ``fault-deep``: ``--search 2 --depth 1 --breadth 2`` through a Firecrawl fake, two models; 11 kills:
  the first search, its fetches and summaries, deep-mode planning, the follow-up searches, their
  fetches and summaries, analyses, the synthesis, report writing.

Every fake answers after a per-request delay, so several requests are on the wire at once. A kill
point is a state of the journal (steps completed, across attempts; a step claimed) or of the requests
the fakes received from the running attempt (told apart from what a dead one had written to a socket
by the connection's port, which must be one of the live process's). While an attempt runs, its fakes
may *hold* one request of the stage meant, so the stage cannot end before the kill lands; a held
request is dropped after the kill, never answered. Report writing is held the same way: the runs write
``--format md,html[,json]`` and a FIFO sits where the HTML file's temporary file goes, so a process in
report writing has written the Markdown and blocks opening the HTML; the FIFO goes before the last
resume. Where each kill landed is read back from the journal and the store afterwards.

After every kill, and at the end:

1. Nothing paid for is paid again: no request whose answer the store held (and so none the journal had
   recorded) at a kill is sent again to any fake, model, website or Firecrawl alike; no attempt pays (a
   completed, not replayed event) for a step stored before it began; the journal never records a step
   the store lacks; at most one step per kill is stored but not yet journaled (the instant between
   storing a result and journaling it; the next attempt replays it from the store); across the run no
   key has more than one paid event, and a key with none is one of those; a request sent twice was on
   the wire, unanswered or unstored, at a kill. Requests that are no step (robots.txt) are not counted.
2. The final Markdown and HTML reports are byte-identical to those of an uninterrupted run with the
   same ``--run-id`` in its own cache, on the same fakes.

Kills and resumes are real processes. Each is forked from a *zygote*: one ``python`` process that
imports the CLI and the three SDKs once (some 10 s of CPU) and then forks a child per attempt, which
runs ``agent.cli.main()`` with ``run ...`` or ``resume RUN_ID`` as its argv, its own environment and
working directory, as the ``research`` console script does. Without it the suite would spend minutes
importing SDKs. The zygote runs no thread when it forks (it checks). The two runs go on in parallel,
each with its own fakes. Linux only (fork, FIFOs, ``/proc``), like the project's other crash tests.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import os
import queue
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlsplit

import pytest

from agent.store import Store
from tests.conftest import subprocess_env
from tests.helpers import ROOT
from tests.servers import Reply, Request, serve
from tests.servers.anthropic_api import AnthropicAPI
from tests.servers.fake_api import digest
from tests.servers.firecrawl import FakeFirecrawl, FakePage
from tests.servers.gemini_api import GeminiAPI
from tests.servers.openai_api import OpenAIAPI
from tests.servers.website import Site, html, page

pytestmark = [
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="forks a zygote and reads /proc"),
    pytest.mark.filterwarnings("ignore:Inheritance class AiohttpClientSession:DeprecationWarning"),
]

#: Seconds to wait for a kill point, and for the last resume to finish: generous, never asserted on.
POINT_DEADLINE = 90.0
FINISH_DEADLINE = 180.0
#: After a kill: time for the servers to log what the dead process had already written to a socket.
SETTLE = 0.1
_ANSWER = re.compile(r"answer ([0-9a-f]{12})")

# -- the zygote ----------------------------------------------------------------------------------

ZYGOTE = r"""
import atexit, contextlib, json, os, sys, threading, traceback
sys.path.insert(0, sys.argv[1])
import agent.cli
import pipelines.research, pipelines.runner, pipelines.report, pipelines.base
import agent.providers.openai, agent.providers.anthropic, agent.providers.gemini
import agent.sources.firecrawl, agent.sources.web, agent.sources.convert, agent.sources.files
import openai, anthropic, google.genai, firecrawl, trafilatura, pypdf, httpx, jinja2, diskcache
import importlib
for name in ("prompts", "openai.resources.chat.completions", "opentelemetry.propagate", "anyio._backends._asyncio",
             "anyio.streams.tls", "anyio.streams.memory", "anyio.streams.stapled", "httpcore2", "markdown_it",
             "truststore", "google.auth.aio.credentials", "pypdf.filters"):
    try:  # what a run imports on first use; missing ones (another version) are imported then
        importlib.import_module(name)
    except ImportError:
        pass
if threading.active_count() != 1:
    raise SystemExit(f"the zygote must not fork with threads running: {threading.enumerate()}")
out = sys.stdout

def send(obj):
    out.write(json.dumps(obj) + "\n")
    out.flush()

send({"ready": os.getpid()})
while True:
    line = sys.stdin.readline()
    if not line:
        break
    cmd = json.loads(line)
    if cmd["op"] == "spawn":
        pid = os.fork()
        if pid == 0:
            code = 70
            try:
                fd = os.open(os.devnull, os.O_RDONLY)
                os.dup2(fd, 0)
                os.close(fd)
                for target, path in ((1, cmd["stdout"]), (2, cmd["stderr"])):
                    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                    os.dup2(fd, target)
                    os.close(fd)
                os.chdir(cmd["cwd"])
                os.environ.clear()
                os.environ.update(cmd["env"])
                sys.argv = ["research", *cmd["argv"]]
                try:
                    agent.cli.main()
                    code = 0
                except SystemExit as exc:
                    code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            except BaseException:
                traceback.print_exc()
            finally:
                with contextlib.suppress(BaseException):
                    atexit._run_exitfuncs()
                with contextlib.suppress(BaseException):
                    sys.stdout.flush()
                    sys.stderr.flush()
                os._exit(code)
        send({"pid": pid})
    elif cmd["op"] == "poll":
        try:
            done, status, usage = os.wait4(cmd["pid"], os.WNOHANG)
        except ChildProcessError:
            send({"rc": "gone"})
            continue
        if done == 0:
            send({"rc": None})
        else:
            send({"rc": os.waitstatus_to_exitcode(status), "cpu": usage.ru_utime + usage.ru_stime})
"""


class Zygote:
    """A process that has imported everything and forks a ``research`` process per request."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self._log = open(log, "w")
        self.proc = subprocess.Popen([sys.executable, "-c", ZYGOTE, str(ROOT)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self._log, text=True, env=env, cwd=str(ROOT))
        self._lines: queue.Queue[str] = queue.Queue()
        self._lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()
        self._ready: dict | None = None

    def _read(self) -> None:
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put("")

    def _get(self, timeout: float) -> dict:
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError("the zygote did not answer") from None
        if not line:
            raise AssertionError(f"the zygote died: {Path(self._log.name).read_text()[-3000:]}")
        return json.loads(line)

    def ready(self) -> None:
        with self._lock:
            if self._ready is None:
                self._ready = self._get(timeout=300)

    def _call(self, cmd: dict) -> dict:
        self.ready()
        with self._lock:
            self.proc.stdin.write(json.dumps(cmd) + "\n")
            self.proc.stdin.flush()
            return self._get(timeout=60)

    def spawn(self, argv: list[str], *, env: dict[str, str], cwd: Path, logs: Path) -> "Child":
        stdout, stderr = logs.with_suffix(".out"), logs.with_suffix(".err")
        pid = self._call({"op": "spawn", "argv": [str(a) for a in argv], "env": env, "cwd": str(cwd),
                          "stdout": str(stdout), "stderr": str(stderr)})["pid"]
        return Child(self, pid, stdout, stderr)

    def poll(self, pid: int) -> tuple[int | None, float]:
        answer = self._call({"op": "poll", "pid": pid})
        assert answer["rc"] != "gone", f"process {pid} is not a child of the zygote"
        return answer["rc"], answer.get("cpu", 0.0)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=20)
        self._log.close()


@dataclass
class Child:
    zygote: Zygote
    pid: int
    stdout: Path
    stderr: Path
    rc: int | None = None
    cpu: float = 0.0  # CPU seconds the process used, once it ended

    def poll(self) -> int | None:
        if self.rc is None:
            self.rc, self.cpu = self.zygote.poll(self.pid)
        return self.rc

    def wait(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while self.poll() is None:
            assert time.monotonic() < deadline, f"process {self.pid} did not end: {self.output()}"
            time.sleep(0.01)
        return self.rc

    def output(self) -> str:
        return "\n".join(p.read_text()[-3000:] for p in (self.stdout, self.stderr) if p.exists())

    @contextlib.contextmanager
    def reaped(self):
        """Whatever happens in the block (a failed assertion), the process does not outlive it."""
        try:
            yield self
        finally:
            if self.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, signal.SIGKILL)
                self.wait(30)


# -- fakes that can hold a request and answer slowly ------------------------------------------------

@dataclass(frozen=True)
class Info:
    """A request as the holds see it: which server, what for, its identity, its text."""

    server: str
    task: str
    ident: tuple
    text: str = ""
    port: int = 0  # the client's port: which process sent it


class Control:
    """Which requests a run's fakes hold back (until the kill), and which of those arrived."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._holds: list[Callable[[Info], bool]] = []
        self._released = threading.Event()
        self.arrived: list[Info] = []

    def arm(self, holds) -> None:
        with self._lock:
            self._holds, self.arrived, self._released = list(holds), [], threading.Event()

    def release(self) -> None:
        with self._lock:
            self._holds, released = [], self._released
        released.set()

    def holds(self, info: Info) -> bool:
        """Block while ``info`` is held; True if it was (the request is then dropped, never answered)."""
        with self._lock:
            if not any(hold(info) for hold in self._holds):
                return False
            self.arrived.append(info)
            released = self._released
        released.wait(timeout=600)
        return True

    def count(self, pred: Callable[[Info], bool], ports: Callable[[], set[int]]) -> int:
        """Held requests matching ``pred`` sent from one of ``ports`` (asked only if any matches)."""
        with self._lock:
            matching = [info for info in self.arrived if pred(info)]
        if not matching:
            return 0
        live = ports()
        return sum(1 for info in matching if info.port in live)


def port_of(request: Request) -> int:
    return request.client[1] if len(request.client) > 1 else 0


def local_ports(pid: int) -> set[int]:
    """The local ports of process ``pid``'s TCP sockets (Linux: ``/proc``).

    A request the fakes received is attributed to the running attempt only if its connection is one of
    that process's: a dead attempt may have written a request the servers read only after the kill.
    """
    inodes = set()
    try:
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return set()
    for fd in fds:
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[len("socket:["):-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if len(fields) > 9 and fields[9] in inodes:
                    ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


_TASKS = (("Summarize, in at most", "summarize"), ("follow-up web search queries", "plan"),
          ("List the key findings", "analyze"), ("Write two Markdown sections", "report"))


def task_of(text: str) -> str:
    return next((task for marker, task in _TASKS if marker in text), "other")


class Controlled:
    """Mixin for the vendor fakes: a delay per task, holds, and a planner that answers with ``queries``.

    The planner asks for JSON through structured output; its answer names the request it answers, as
    every default answer does (``answer DIGEST``), in a field the pipeline does not read.
    """

    def __init__(self, *, control: Control, delays: dict[str, float], queries: list[str] | None = None,
                 **kw: Any) -> None:
        if queries:
            kw["json_reply"] = lambda schema, request: {"queries": queries, "note": f"answer {digest(request)}"}
        super().__init__(**kw)
        self.control, self.delays = control, delays

    def __call__(self, request: Request) -> Reply:
        task = "other"
        if self.route(request) is not None:
            text = self.input_text(request)
            task = task_of(text)
            if self.control.holds(Info(self.vendor, task, ("llm", digest(request)), text, port_of(request))):
                return Reply(drop=True)
        reply = super().__call__(request)
        if reply.status == 200 and not reply.drop:
            reply.delay = self.delays.get(task, self.latency)
        return reply


class OpenAIFake(Controlled, OpenAIAPI):
    pass


class AnthropicFake(Controlled, AnthropicAPI):
    pass


class GeminiFake(Controlled, GeminiAPI):
    pass


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


@dataclass
class DeepWeb(FakeFirecrawl):
    """Firecrawl over a web where every query finds two pages about its words; slow, and holdable."""

    control: Control | None = None
    delay: float = 0.0

    def __call__(self, request: Request) -> Reply:
        body = request.json() or {}
        info = None
        if request.path == "/v2/search":
            query = body.get("query", "")
            self.results.setdefault(query, [
                {"url": f"https://deep.example/{slug(query)}/{n}", "title": f"{query} ({n})", "description": query}
                for n in (1, 2)])
            info = Info("firecrawl", "search", ("search", query), port=port_of(request))
        elif request.path == "/v2/scrape":
            url = body.get("url", "")
            words = url.rsplit("/", 2)[-2].replace("-", " ")
            self.pages.setdefault(url, FakePage(
                f"# On {words}\n\nFrom {url}: a study of {words} found that heat pumps in cold climates kept "
                f"working when installers sized them well, and that {words} matter for running costs.", f"On {words}"))
            info = Info("firecrawl", "scrape", ("scrape", url), port=port_of(request))
        if info is not None and self.control.holds(info):
            return Reply(drop=True)
        reply = super().__call__(request)
        reply.delay = self.delay
        return reply


def site_page(control: Control, path: str, title: str, paragraphs: list[str], delay: float):
    body = page(title, *paragraphs)

    def handler(request: Request) -> Reply:
        if control.holds(Info("site", "fetch", ("page", path), port=port_of(request))):
            return Reply(drop=True)
        return html(body, delay=delay)

    return handler


def ident_of(kind: str, request: Request) -> tuple | None:
    """The identity of a request a server received, as :func:`reference_steps` names the steps'."""
    if kind == "llm":
        return ("llm", digest(request)) if request.method == "POST" else None
    if kind == "site":
        return ("page", request.path.split("?", 1)[0])
    body = request.json() or {}
    if request.path == "/v2/search":
        return ("search", body.get("query", ""))
    if request.path == "/v2/scrape":
        return ("scrape", body.get("url", ""))
    return None


def multipage_pdf(pages: int) -> bytes:
    """A valid PDF of ``pages`` pages, one line each: pypdf needs about a millisecond a page."""
    objects: list[bytes] = [b"<< /Type /Catalog /Pages 2 0 R >>", b"",
                            b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"]
    kids = []
    for n in range(1, pages + 1):
        text = f"Survey page {n}: household {n} kept its heat pump running."
        ops = f"BT\n/F1 11 Tf\n72 720 Td\n({text}) Tj\nET".encode("latin-1")
        stream = zlib.compress(ops)
        objects.append(b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(stream) + stream + b"\nendstream")
        objects.append(b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents %d 0 R"
                       b" /Resources << /Font << /F1 3 0 R >> >> >>" % len(objects))
        kids.append(len(objects))
    objects[1] = (b"<< /Type /Pages /Kids [" + b" ".join(b"%d 0 R" % k for k in kids) + b"] /Count %d >>" % pages)
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


# -- what the journal and the store say ------------------------------------------------------------

@dataclass(frozen=True)
class Step:
    """One step of the reference run: its key, what it is, and the request that pays for it."""

    key: str
    kind: str
    provider: str
    name: str
    ident: tuple
    server: str = ""  # the fake that answered it (model steps)
    text: str = ""  # the prompt it sent (model steps)

    @property
    def task(self) -> str:
        return task_of(self.text) if self.kind == "llm" else self.kind


def _ro(cache: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{cache / 'journal.sqlite3'}?mode=ro", uri=True, timeout=5)


def journal_rows(cache: Path, run_id: str) -> list[tuple]:
    """(attempt, key, kind, provider, name, status, replayed) of every event, in order."""
    if not (cache / "journal.sqlite3").exists():
        return []
    conn = _ro(cache)
    try:
        return conn.execute("SELECT attempt, key, kind, provider, name, status, replayed FROM events"
                            " WHERE run_id = ? ORDER BY id", (run_id,)).fetchall()
    finally:
        conn.close()


def completed_keys(cache: Path, run_id: str) -> set[str]:
    """Keys of the run's completed steps, any attempt, read while a process may be writing."""
    try:
        return {key for _, key, _, _, _, status, _ in journal_rows(cache, run_id) if status == "completed"}
    except sqlite3.Error:
        return set()


def run_attempts(cache: Path, run_id: str) -> int:
    """How many attempts the journal numbered for the run (0 before the first starts)."""
    if not (cache / "journal.sqlite3").exists():
        return 0
    conn = _ro(cache)
    try:
        row = conn.execute("SELECT attempts FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        return row[0] if row else 0
    finally:
        conn.close()


def run_status(cache: Path, run_id: str) -> str:
    conn = _ro(cache)
    try:
        return conn.execute("SELECT status FROM runs WHERE run_id = ?", (run_id,)).fetchone()[0]
    finally:
        conn.close()


def reference_steps(cache: Path, run_id: str, prompts: dict[tuple, tuple[str, str]]) -> dict[str, Step]:
    """Every step of a completed run, with the identity of the request that paid for it.

    ``prompts`` maps a model request's identity to the fake that answered it and its prompt text.
    """
    steps: dict[str, Step] = {}
    with Store(cache) as store:
        for _, key, kind, provider, name, status, _ in journal_rows(cache, run_id):
            if status != "completed" or key in steps:
                continue
            value = store.get(key)["value"]
            server = text = ""
            if kind == "llm":
                ident = ("llm", _ANSWER.search(value["text"]).group(1))
                server, text = prompts[ident]
            elif kind == "scrape" and provider == "file":
                ident = ("file", value.get("uri") or name.split(" ", 1)[1])
            elif kind == "scrape" and provider == "web":
                ident = ("page", urlsplit(value.get("uri") or name.split(" ", 1)[1]).path)
            elif kind == "scrape":
                ident = ("scrape", name.split(" ", 1)[1])
            elif kind == "search":
                ident = ("search", name.split(" ", 1)[1])
            else:  # a kind of step this suite does not know: no request of the fakes' names it
                ident = (kind, key)
            steps[key] = Step(key, kind, provider, name, ident, server, text)
    return steps


def stored_keys(cache: Path, keys) -> set[str]:
    """Which of ``keys`` the store holds a result for (read while no process runs)."""
    with Store(cache) as store:
        return {key for key in keys if store.get(key) is not None}


# -- a drill: a run killed again and again, then let finish ----------------------------------------

StepPred = Callable[[Step], bool]


@dataclass
class Kill:
    """Where to kill an attempt: the stage meant, when (a probe's view), and what the fakes hold meanwhile."""

    stage: str
    ready: Callable[["Probe"], bool]
    holds: tuple[Callable[[Info], bool], ...] = ()


@dataclass
class Probe:
    """What a kill point looks at while an attempt runs: the journal, the holds, the requests, the report."""

    drill: "Drill"
    marks: dict[str, int]
    md_before: int | None
    pid: int = 0
    done: set[str] = field(default_factory=set)
    _ports: set[int] | None = None
    _conn: sqlite3.Connection | None = None

    def refresh(self) -> "Probe":
        self._ports = None
        try:
            if self._conn is None and (self.drill.cache / "journal.sqlite3").exists():
                self._conn = _ro(self.drill.cache)
            if self._conn is not None:
                self.done = {key for (key,) in self._conn.execute(
                    "SELECT DISTINCT key FROM events WHERE run_id = ? AND status = 'completed'", (self.drill.run_id,))}
        except sqlite3.Error:  # the journal is being created or migrated: look again next time
            self.close()
        return self

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def claimed(self, pred: StepPred) -> bool:
        """Whether this attempt has claimed a step matching ``pred``: it is about to pay for it, or paying."""
        if self._conn is None:
            return False
        keys = {step.key for step in self.drill.ref.values() if pred(step)}
        try:
            rows = self._conn.execute("SELECT key, holder FROM claims").fetchall()
        except sqlite3.Error:
            return False
        return any(key in keys and holder.split(":")[1:2] == [str(self.pid)] for key, holder in rows)

    def ports(self) -> set[int]:
        if self._ports is None:
            self._ports = local_ports(self.pid)
        return self._ports

    def n_done(self, pred: StepPred) -> int:
        return sum(1 for step in self.drill.ref.values() if pred(step) and step.key in self.done)

    def all_done(self, pred: StepPred) -> bool:
        matching = [step for step in self.drill.ref.values() if pred(step)]
        assert matching, "a kill point names no step of the run"
        return all(step.key in self.done for step in matching)

    def held(self, pred: Callable[[Info], bool] = lambda i: True) -> int:
        """Requests this attempt sent that the fakes hold."""
        return self.drill.control.count(pred, self.ports)

    def sent(self, server: str, pred: Callable[[Request], bool]) -> int:
        """Requests matching ``pred`` this attempt sent to ``server`` over connections it still has open."""
        matching = [r for r in self.drill.servers[server][1].requests[self.marks[server]:] if pred(r)]
        return sum(1 for r in matching if port_of(r) in self.ports()) if matching else 0

    def report_written(self) -> bool:
        """The Markdown report was (re)written by this attempt: report writing is under way."""
        return _inode(self.drill.md) not in (None, self.md_before)


def _inode(path: Path) -> int | None:
    try:
        return path.stat().st_ino
    except FileNotFoundError:
        return None


@dataclass
class Landed:
    attempt: int
    meant: str
    stage: str
    journaled: int  # steps the journal had recorded at the kill
    stored: int  # steps the store held at the kill
    unjournaled: int  # of those, stored in the instant before the kill and not yet journaled
    seconds: float  # from the start of the attempt to the kill
    cpu: float  # CPU seconds the attempt's process used
    number: int | None  # the journal's number for the attempt (None: killed before it started the run)


@dataclass
class Drill:
    run_id: str
    root: Path
    args: list[str]  # sources, models and options; the run id, cache and out directory are added
    servers: dict[str, tuple[str, Any]]  # name -> (ident kind, Server)
    apps: dict[str, Any]  # name -> the fake behind that server
    control: Control
    env: dict[str, str]
    stages: list[tuple[str, StepPred]]  # in pipeline order
    kills: list[Kill]
    formats: tuple[str, ...] = ("md", "html")
    ref: dict[str, Step] = field(default_factory=dict)
    landed: list[Landed] = field(default_factory=list)
    resent: int = 0
    elapsed: float = 0.0
    timings: dict[str, tuple[float, float]] = field(default_factory=dict)  # reference, last: (seconds, cpu)

    @property
    def cache(self) -> Path:
        return self.root / "cache"

    @property
    def out(self) -> Path:
        return self.root / "out"

    @property
    def md(self) -> Path:
        return self.out / f"{self.run_id}.md"

    def run_args(self, cache: Path, out: Path) -> list[str]:
        return ["run", *self.args, "--format", ",".join(self.formats), "--run-id", self.run_id,
                "--cache-dir", str(cache), "--out", str(out)]

    def _clear(self) -> None:
        for _, server in self.servers.values():
            server.clear()
        for app in self.apps.values():
            if hasattr(app, "answered"):
                app.answered.clear()

    def _marks(self) -> dict[str, int]:
        return {name: len(server.requests) for name, (_, server) in self.servers.items()}

    def _sent(self, marks: dict[str, int], until: dict[str, int]) -> list[tuple]:
        out = []
        for name, (kind, server) in self.servers.items():
            for request in server.requests[marks[name]:until[name]]:
                ident = ident_of(kind, request)
                if ident is not None:
                    out.append(ident)
        return out

    def classify(self, done: set[str]) -> str:
        for stage, pred in self.stages:
            if any(pred(step) and step.key not in done for step in self.ref.values()):
                return stage
        return "writing"

    def execute(self, zygote: Zygote) -> "Drill":
        started = time.monotonic()
        # The reference: the same run, never interrupted, in its own cache (and with no FIFO in its way).
        ref_cache, ref_out = self.root / "ref-cache", self.root / "ref-out"
        self.control.arm(())
        child = zygote.spawn(self.run_args(ref_cache, ref_out), env=self.env, cwd=self.root, logs=self.root / "ref")
        with child.reaped():
            assert child.wait(FINISH_DEADLINE) == 0, child.output()
        self.timings["reference"] = (time.monotonic() - started, child.cpu)
        # Markdown and HTML carry no timestamp beyond the date; the JSON file has this attempt's totals.
        expected = {fmt: (ref_out / f"{self.run_id}.{fmt}").read_text() for fmt in ("md", "html")}
        prompts = {("llm", digest(request)): (name, self.apps[name].input_text(request))
                   for name, (kind, server) in self.servers.items() if kind == "llm"
                   for request in server.requests if request.method == "POST"}
        self.ref = reference_steps(ref_cache, self.run_id, prompts)
        by_ident = {step.ident: step for step in self.ref.values()}
        assert len(by_ident) == len(self.ref), "two steps of the run share a request"
        # Uninterrupted, every step's request goes out once (requests that are no step, such as
        # robots.txt, are left out of every count here).
        ref_sent = Counter(i for i in self._sent(dict.fromkeys(self.servers, 0), self._marks()) if i in by_ident)
        wanted = {ident for ident, step in by_ident.items() if step.kind != "scrape" or step.provider != "file"}
        assert set(ref_sent) == wanted and max(ref_sent.values()) == 1, (ref_sent, wanted)
        for stage, pred in self.stages:
            assert any(pred(step) for step in self.ref.values()), f"the run has no step in stage {stage}"
        self._clear()

        self.out.mkdir()
        fifo = self.out / f".{self.run_id}.{self.formats[1]}.tmp"
        os.mkfifo(fifo)  # where report writing blocks: the Markdown is written, the next format waits
        stored: set[str] = set()  # keys whose results the store held at the last kill
        unjournaled: set[str] = set()  # keys stored but not journaled at some kill
        windows: list[list[tuple]] = []  # the step requests the servers logged between two kills
        stored_at: list[set[str]] = []  # what the store held at each kill
        marks = self._marks()
        for attempt, kill in enumerate(self.kills, start=1):
            argv = self.run_args(self.cache, self.out) if attempt == 1 else [
                "resume", self.run_id, "--cache-dir", str(self.cache)]
            self.control.arm(kill.holds)
            probe = Probe(self, marks, _inode(self.md))
            before = run_attempts(self.cache, self.run_id)
            began = time.monotonic()
            child = zygote.spawn(argv, env=self.env, cwd=self.root, logs=self.root / f"attempt-{attempt}")
            probe.pid = child.pid
            with child.reaped(), contextlib.closing(probe):
                while not kill.ready(probe.refresh()):
                    assert child.poll() is None, (f"attempt {attempt} ended (exit {child.rc}) before its kill "
                                                  f"point ({kill.stage}): {child.output()}")
                    assert time.monotonic() < began + POINT_DEADLINE, (
                        f"attempt {attempt} never reached its kill point ({kill.stage}): {child.output()}")
                    time.sleep(0.01)
                assert child.poll() is None, f"attempt {attempt} ended before the kill: {child.output()}"
                os.kill(child.pid, signal.SIGKILL)
                seconds = time.monotonic() - began
                assert child.wait(30) == -signal.SIGKILL, child.output()
            self.control.release()
            time.sleep(SETTLE)
            now = self._marks()

            # The journal numbers an attempt when it starts the run; one killed before that has none.
            after = run_attempts(self.cache, self.run_id)
            number = after if after > before else None
            sent = [ident for ident in self._sent(marks, now) if ident in by_ident]
            journaled = completed_keys(self.cache, self.run_id)
            assert journaled <= set(self.ref), "the journal holds steps the uninterrupted run does not have"
            self._check_attempt(attempt, number, stored, sent)
            stored = stored_keys(self.cache, self.ref)
            assert journaled <= stored, f"attempt {attempt}: the journal recorded steps the store lacks"
            new = stored - journaled - unjournaled
            assert len(new) <= 1, (f"attempt {attempt}: {len(new)} steps stored but not journaled at one kill "
                                   f"({[self.ref[k].name for k in new]})")
            unjournaled |= new
            windows.append(sent)
            stored_at.append(stored)
            self.landed.append(Landed(attempt, kill.stage, self.classify(stored), len(journaled), len(stored),
                                      len(new), seconds, child.cpu, number))
            marks = now
        assert run_status(self.cache, self.run_id) in ("running", "interrupted")

        # The last resume is let finish.
        fifo.unlink()
        final = len(self.kills) + 1
        began = time.monotonic()
        before = run_attempts(self.cache, self.run_id)
        child = zygote.spawn(["resume", self.run_id, "--cache-dir", str(self.cache)], env=self.env, cwd=self.root,
                             logs=self.root / f"attempt-{final}")
        with child.reaped():
            assert child.wait(FINISH_DEADLINE) == 0, child.output()
        self.timings["last resume"] = (time.monotonic() - began, child.cpu)
        number = run_attempts(self.cache, self.run_id)
        assert number == before + 1
        windows.append([ident for ident in self._sent(marks, self._marks()) if ident in by_ident])
        self._check_attempt(final, number, stored, windows[-1])
        assert run_status(self.cache, self.run_id) == "completed"
        for fmt, text in expected.items():
            assert (self.out / f"{self.run_id}.{fmt}").read_text() == text, f"the {fmt} report differs"
        assert all((self.out / f"{self.run_id}.{fmt}").exists() for fmt in self.formats)

        rows = journal_rows(self.cache, self.run_id)
        assert {key for _, key, *_ in rows} == set(self.ref), "the resumed run's steps differ from the reference's"
        last = {key for a, key, _, _, _, status, _ in rows if a == number and status == "completed"}
        assert last == set(self.ref), "the last attempt did not account for every step"
        paid = Counter(key for _, key, _, _, _, status, replayed in rows if status == "completed" and not replayed)
        assert max(paid.values()) == 1, [self.ref[k].name for k, n in paid.items() if n > 1]
        never_paid = set(self.ref) - set(paid)
        assert never_paid <= unjournaled, [self.ref[k].name for k in never_paid - unjournaled]

        # A request sent more than once was, each time but the last, on the wire when a process died:
        # sent before a kill (or read by the server only after it) and its answer not stored then.
        sends = Counter(ident for window in windows for ident in window)
        for ident, n in sends.items():
            kills = sum(1 for k, held in enumerate(stored_at) if by_ident[ident].key not in held
                        and (ident in windows[k] or ident in windows[k + 1]))
            assert n <= 1 + kills, f"{by_ident[ident].name} was sent {n} times, in flight at {kills} kills"
        self.resent = sum(n - 1 for n in sends.values())
        self.elapsed = time.monotonic() - started
        return self

    def _check_attempt(self, attempt: int, number: int | None, stored_before: set[str], sent: list[tuple]) -> None:
        """Attempt ``attempt`` (the journal's ``number``) paid for nothing the store held when it started."""
        held = {self.ref[key].ident for key in stored_before}
        again = [self.ref_name(ident) for ident in sent if ident in held]
        assert not again, f"attempt {attempt} sent again requests whose answers were stored: {again}"
        if number is None:
            return
        repaid = [name for a, key, _, _, name, status, replayed in journal_rows(self.cache, self.run_id)
                  if a == number and status == "completed" and not replayed and key in stored_before]
        assert not repaid, f"attempt {attempt} paid again for steps already stored: {repaid}"

    def ref_name(self, ident: tuple) -> str:
        return next(step.name for step in self.ref.values() if step.ident == ident)


# -- the two runs ----------------------------------------------------------------------------------

def llm_servers(stack: contextlib.ExitStack, control: Control, delays: dict[str, dict[str, float]],
                queries: list[str] | None = None):
    """Slow vendor fakes (``delays``: seconds per task, per vendor) and the environment pointing at them."""
    classes = {"openai": OpenAIFake, "anthropic": AnthropicFake, "gemini": GeminiFake}
    apps, servers, env = {}, {}, {}
    for vendor, task_delays in delays.items():
        key = f"{vendor}-key-fault"
        apps[vendor] = classes[vendor](control=control, delays=task_delays, latency=0.2, key=key,
                                       queries=queries if vendor == "openai" else None)
        server = stack.enter_context(serve(apps[vendor]))
        servers[vendor] = ("llm", server)
        if vendor == "openai":
            env.update(OPENAI_API_KEY=key, OPENAI_BASE_URL=f"{server.url}/v1")
        elif vendor == "anthropic":
            env.update(ANTHROPIC_API_KEY=key, ANTHROPIC_BASE_URL=server.url)
        else:
            env.update(GEMINI_API_KEY=key, GOOGLE_GEMINI_BASE_URL=server.url)
    return apps, servers, env


def is_read(step: Step) -> bool:
    return step.kind == "scrape" and step.provider == "file"


def is_fetch(step: Step) -> bool:
    return step.kind == "scrape" and step.provider != "file"


def llm(task: str, vendor: str | None = None, text: str | None = None) -> StepPred:
    """Model steps of ``task`` (by their prompt), answered by ``vendor``, whose prompt holds ``text``."""
    return lambda s: (s.kind == "llm" and s.task == task and (vendor is None or s.server == vendor)
                      and (text is None or text in s.text))


def hold(server: str | None = None, task: str | None = None, text: str | None = None,
         ident: tuple | None = None) -> Callable[[Info], bool]:
    return lambda i: ((server is None or i.server == server) and (task is None or i.task == task)
                      and (text is None or text in i.text) and (ident is None or i.ident == ident))


WEB_Q = "Do heat pumps work well in cold climates, and what do they cost to run?"
WEB_MODELS = ["openai:gpt-4o-mini", "anthropic:claude-haiku-4-5", "gemini:gemini-2.5-flash"]
PAGES = {
    "/cold": ("Heat pumps below freezing", ["Air-source heat pumps in Oslo kept homes warm at minus twenty degrees.",
                                             "Their seasonal coefficient of performance stayed near 2.4."]),
    "/costs": ("What a winter of heat costs", ["Running costs follow the ratio of electricity to gas prices.",
                                                "At a ratio of three, a heat pump roughly breaks even with a boiler."]),
    "/install": ("Installing heat pumps", ["Installers size the unit for the coldest week of the year.",
                                           "Insulating first lets a smaller, cheaper unit do the job."]),
}


def web_drill(stack: contextlib.ExitStack, root: Path, base_env: dict[str, str]) -> Drill:
    control = Control()
    corpus = root / "corpus"
    corpus.mkdir(parents=True)
    (corpus / "01-field-trials.md").write_text(
        "# Field trials in the north\n\nA field trial of 40 homes in Finland found cold-climate heat pumps kept "
        "a seasonal COP above 2.5 through a winter with weeks below minus fifteen degrees.\n")
    (corpus / "02-running-costs.md").write_text(
        "# Running costs by tariff\n\nHouseholds on a time-of-use tariff paid a third less to run a heat pump "
        "than on a flat tariff, because the pump preheated the house at night.\n")
    (corpus / "03-survey.pdf").write_bytes(multipage_pdf(400))  # a read that takes a while
    site = Site({path: site_page(control, path, title, paras, delay=0.2) for path, (title, paras) in PAGES.items()})
    site_server = stack.enter_context(serve(site))
    apps, servers, env = llm_servers(stack, control, {
        "openai": {"summarize": 0.2, "analyze": 0.2, "report": 0.3},
        "anthropic": {"analyze": 0.3},
        "gemini": {"analyze": 0.4},
    })
    apps["site"], servers["site"] = site, ("site", site_server)
    args = [WEB_Q, "--file", str(corpus), "--concurrency", "2"]
    for path in PAGES:
        args += ["--url", f"{site_server.url}{path}"]
    for model in WEB_MODELS:
        args += ["--model", model]

    pdf = lambda s: is_read(s) and s.ident[1].endswith(".pdf")  # noqa: E731
    small = lambda s: is_read(s) and not s.ident[1].endswith(".pdf")  # noqa: E731
    fetched = lambda path: lambda s: s.ident == ("page", path)  # noqa: E731
    pages = lambda i: i.server == "site" and i.ident[1] in PAGES  # noqa: E731
    install = hold(ident=("page", "/install"))
    install_summary = hold(task="summarize", text="Source: Installing heat pumps")
    # Each source is summarized as soon as it is read, so summaries overlap the reads and fetches.
    kills = [
        # reads: a small file read (its summary on the wire), the PDF being read, every page held; then
        # as the PDF's read is claimed (had the PDF been read first, the kill would land in the
        # fetches, still held: never a hang)
        Kill("reads", lambda p: p.n_done(small) >= 1 or p.all_done(pdf), (pages,)),
        Kill("reads", lambda p: p.claimed(pdf) or p.all_done(pdf), (pages,)),
        # web fetches: the PDF and two pages read, the third page held; then with its request held
        Kill("fetches", lambda p: p.all_done(pdf) and p.all_done(fetched("/cold")) and p.all_done(fetched("/costs")),
             (install,)),
        Kill("fetches", lambda p: p.held() >= 1, (install,)),
        # summaries, two at a time: the last page's held as it arrives, then once every other is done,
        # then on the wire
        Kill("summaries", lambda p: p.held() >= 1, (install_summary,)),
        Kill("summaries", lambda p: p.n_done(llm("summarize")) >= 5 and p.held() >= 1, (install_summary,)),
        Kill("summaries", lambda p: p.sent("openai", lambda r: b"Installing heat pumps" in r.body) >= 1
             or p.all_done(llm("summarize"))),
        # analyses: OpenAI's done, Gemini's held; then Anthropic's done too
        Kill("analyses", lambda p: p.all_done(llm("analyze", "openai")), (hold("gemini", "analyze"),)),
        Kill("analyses", lambda p: p.all_done(llm("analyze", "anthropic")), (hold("gemini", "analyze"),)),
        # the synthesis: the moment the last analysis is journaled, then with its request held
        Kill("report", lambda p: p.all_done(llm("analyze"))),
        Kill("report", lambda p: p.held() >= 1, (hold(task="report"),)),
        # report writing: the Markdown is written, the HTML blocks on the FIFO
        Kill("writing", Probe.report_written),
        Kill("writing", Probe.report_written),
    ]
    stages = [("reads", is_read), ("fetches", is_fetch), ("summaries", llm("summarize")),
              ("analyses", llm("analyze")), ("report", llm("report"))]
    return Drill("fault-web", root, args, servers, apps, control, {**base_env, **env}, stages, kills,
                 formats=("md", "html", "json"))


DEEP_Q = "Do heat pumps work well in cold climates?"
DEEP_MODELS = ["openai:gpt-4o-mini", "anthropic:claude-haiku-4-5"]
QUERIES = ["cold climate heat pump field trials", "heat pump running costs per winter"]


def page_url(query: str, n: int) -> str:
    return f"https://deep.example/{slug(query)}/{n}"


def deep_drill(stack: contextlib.ExitStack, root: Path, base_env: dict[str, str]) -> Drill:
    control = Control()
    root.mkdir(parents=True)
    web = DeepWeb(api_key="fc-fault0123456789", control=control, delay=0.2)
    firecrawl_server = stack.enter_context(serve(web))
    apps, servers, env = llm_servers(stack, control, {
        "openai": {"summarize": 0.2, "plan": 0.3, "analyze": 0.2, "report": 0.3},
        "anthropic": {"analyze": 0.3},
    }, queries=QUERIES)
    apps["firecrawl"], servers["firecrawl"] = web, ("firecrawl", firecrawl_server)
    env.update(FIRECRAWL_API_URL=firecrawl_server.url, FIRECRAWL_API_KEY="fc-fault0123456789")
    args = [DEEP_Q, "--search", "2", "--depth", "1", "--breadth", "2", "--concurrency", "2"]
    for model in DEEP_MODELS:
        args += ["--model", model]

    first = f"https://deep.example/{slug(DEEP_Q)}/"  # the pages the question's own search found
    search0 = lambda s: s.kind == "search" and s.ident == ("search", DEEP_Q)  # noqa: E731
    fetch0 = lambda s: is_fetch(s) and s.ident[1].startswith(first)  # noqa: E731
    summary0 = lambda s: llm("summarize")(s) and f"From {first}" in s.text  # noqa: E731
    search1 = lambda s: s.kind == "search" and s.ident != ("search", DEEP_Q)  # noqa: E731
    fetch1 = lambda s: is_fetch(s) and not s.ident[1].startswith(first)  # noqa: E731
    summary1 = lambda s: llm("summarize")(s) and f"From {first}" not in s.text  # noqa: E731
    kills = [
        Kill("search", lambda p: p.held() >= 1, (hold(ident=("search", DEEP_Q)),)),
        Kill("fetches", lambda p: p.all_done(lambda s: s.ident == ("scrape", page_url(DEEP_Q, 1))),
             (hold(ident=("scrape", page_url(DEEP_Q, 2))),)),
        Kill("summaries", lambda p: p.n_done(summary0) >= 1 and p.held() >= 1,
             (hold(task="summarize", text=f"From {page_url(DEEP_Q, 2)}:"),)),
        Kill("planning", lambda p: p.held() >= 1, (hold(task="plan"),)),
        Kill("planning", lambda p: p.sent("openai", lambda r: b"follow-up web search queries" in r.body) >= 1
             or p.all_done(llm("plan"))),
        Kill("deep search", lambda p: p.all_done(lambda s: s.ident == ("search", QUERIES[0])),
             (hold(ident=("search", QUERIES[1])),)),
        Kill("deep fetches", lambda p: p.n_done(fetch1) >= 2, (hold(ident=("scrape", page_url(QUERIES[1], 2))),)),
        Kill("deep summaries", lambda p: p.n_done(summary1) >= 2 and p.held() >= 1,
             (hold(task="summarize", text=f"From {page_url(QUERIES[1], 2)}:"),)),
        Kill("analyses", lambda p: p.all_done(llm("analyze", "openai")), (hold("anthropic", "analyze"),)),
        Kill("report", lambda p: p.held() >= 1, (hold(task="report"),)),
        Kill("writing", Probe.report_written),
    ]
    stages = [("search", search0), ("fetches", fetch0), ("summaries", summary0), ("planning", llm("plan")),
              ("deep search", search1), ("deep fetches", fetch1), ("deep summaries", summary1),
              ("analyses", llm("analyze")), ("report", llm("report"))]
    return Drill("fault-deep", root, args, servers, apps, control, {**base_env, **env}, stages, kills)


# -- the tests -------------------------------------------------------------------------------------

def one_ca(path: Path) -> Path:
    """A CA bundle of one certificate, for ``SSL_CERT_FILE``.

    Every SDK client builds an SSL context when it is made, loading certifi's whole bundle (0.05-0.2 s
    of CPU each, six of them a process here). The fakes speak plain HTTP, so no certificate is ever
    checked, and the attempts spend their CPU on the run instead.
    """
    import certifi

    bundle = Path(certifi.where()).read_text()
    end = "-----END CERTIFICATE-----"
    path.write_text(bundle[bundle.index("-----BEGIN CERTIFICATE-----"):bundle.index(end) + len(end)] + "\n")
    return path


@pytest.fixture(scope="module")
def drills(tmp_path_factory):
    """Both drills, started at once on one zygote; each test waits for its own."""
    root = tmp_path_factory.mktemp("faults")
    started = time.monotonic()
    zygote = Zygote(subprocess_env(), root / "zygote.log")
    base_env = subprocess_env(SSL_CERT_FILE=str(one_ca(root / "one-ca.pem")))
    with contextlib.ExitStack() as stack, concurrent.futures.ThreadPoolExecutor(2) as pool:
        plans = {"web": web_drill(stack, root / "web", base_env), "deep": deep_drill(stack, root / "deep", base_env)}
        futures = {name: pool.submit(plan.execute, zygote) for name, plan in plans.items()}
        try:
            yield futures, started
        finally:
            for plan in plans.values():
                plan.control.release()
            concurrent.futures.wait(futures.values(), timeout=FINISH_DEADLINE)
            zygote.close()


def _result(drills, name: str) -> Drill:
    futures, _ = drills
    return futures[name].result(timeout=POINT_DEADLINE * 30)


def test_web_run_killed_in_reads_fetches_summaries_analyses_report_and_writing(drills):
    drill = _result(drills, "web")
    stages = Counter(l.stage for l in drill.landed)
    assert len(drill.landed) == 13
    assert {"reads", "fetches", "summaries", "analyses", "report", "writing"} <= set(stages), drill.landed


def test_deep_run_killed_in_search_planning_followups_analyses_report_and_writing(drills):
    drill = _result(drills, "deep")
    stages = Counter(l.stage for l in drill.landed)
    assert len(drill.landed) == 11
    assert {"search", "fetches", "summaries", "planning", "deep search", "deep fetches", "deep summaries",
            "analyses", "report", "writing"} <= set(stages), drill.landed


def test_at_least_twenty_kills_cover_every_stage(drills, capsys):
    futures, started = drills
    done = [_result(drills, name) for name in futures]
    landed = [l for drill in done for l in drill.landed]
    assert len(landed) >= 20
    stages = Counter(l.stage.replace("deep ", "") for l in landed)
    assert {"reads", "fetches", "summaries", "planning", "analyses", "report", "writing"} <= set(stages), stages
    with capsys.disabled():
        import resource

        cpu = resource.getrusage(resource.RUSAGE_SELF)
        print(f"\nfault suite: {len(landed)} SIGKILLs in {time.monotonic() - started:.1f}s "
              f"(this process: {cpu.ru_utime + cpu.ru_stime:.1f}s CPU); by stage:")
        for drill in done:
            by_stage = Counter(l.stage for l in drill.landed)
            print(f"  {drill.run_id}: " + ", ".join(f"{s} {n}" for s, n in by_stage.items())
                  + f"; {drill.resent} requests sent again (in flight at a kill); "
                  f"{sum(l.unjournaled for l in drill.landed)} steps stored but not journaled at a kill; "
                  f"{drill.elapsed:.1f}s")
            for l in drill.landed:
                if l.stage != l.meant or os.environ.get("FAULT_SUITE_DETAIL"):
                    print(f"    attempt {l.attempt}: meant for {l.meant}, landed in {l.stage}; {l.journaled} steps "
                          f"journaled, {l.stored} stored; killed after {l.seconds:.2f}s, {l.cpu:.2f}s CPU")
            if os.environ.get("FAULT_SUITE_DETAIL"):
                for what, (seconds, cpu) in drill.timings.items():
                    print(f"    {what}: {seconds:.2f}s, {cpu:.2f}s CPU")
