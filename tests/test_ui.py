"""``research ui`` over a real server process: pages of runs the CLI made, approvals across processes, and
what keeps it safe (CSRF, the token off loopback, the Host check, escaping, redaction, light start-up)."""

from __future__ import annotations

import contextlib
import json
import re
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import httpx
import pytest

from tests.conftest import subprocess_env
from tests.helpers import CORPUS, QUESTION, ROOT, research_proc, research_run
from tests.test_postgres import pg_server, pg_url  # noqa: F401  (a PostgreSQL server the suite starts)

HOSTILE_TITLE = "<script>alert(1)</script>"
HOSTILE_QUESTION = "<script>window.__pwned=1;document.title='pwned'</script> Do heat pumps work in the cold?"
HOSTILE_PAGE = f"""<!doctype html><html><head><title>{HOSTILE_TITLE}</title></head><body>
<h1>Heat pumps in the cold</h1>
<p>Modern heat pumps keep working well below freezing, and their running costs depend on the price of electricity.</p>
<p>Their seasonal efficiency decides what they cost to run over a whole year in a cold climate.</p>
</body></html>
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class UIServer:
    url: str
    proc: subprocess.Popen
    log: Path

    def client(self, **kw) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30, follow_redirects=False, **kw)

    def csrf(self, client: httpx.Client, run_id: str) -> str:
        page = client.get(f"/runs/{run_id}")
        assert page.status_code == 200, page.text
        return re.search(r'name="csrf" value="([0-9a-f]+)"', page.text).group(1)


def store_flag(store: Path | str) -> list[str]:
    """``--store URL`` for a shared store, ``--cache-dir DIR`` for a local one."""
    return ["--store" if str(store).startswith("postgresql://") else "--cache-dir", str(store)]


@contextlib.contextmanager
def ui_server(cwd: Path, store: Path | str, *args: str, env: dict[str, str] | None = None) -> Iterator[UIServer]:
    """``python -m agent ui`` on a free port over ``store``, answering, for the block; stopped after it."""
    port = free_port()
    log = Path(cwd) / f"ui-{port}.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "agent", "ui", "--port", str(port), *store_flag(store), *args],
                                stdout=out, stderr=subprocess.STDOUT, env=env or subprocess_env(), cwd=str(cwd))
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                pytest.fail(f"research ui exited with {proc.returncode}: {log.read_text()}")
            try:
                httpx.get(f"{url}/static/ui.css", timeout=2)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    pytest.fail(f"research ui did not answer in 30 s: {log.read_text()}")
                time.sleep(0.1)
        yield UIServer(url, proc, log)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def make_run(cwd: Path, store: Path | str, run_id: str, *args: str, question: str = QUESTION, files: Path = CORPUS,
             env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    result = research_run("run", question, "--file", files, "--run-id", run_id, *store_flag(store), "--quiet", *args,
                          env=env or subprocess_env(), cwd=cwd)
    assert result.returncode == 0, result.stderr
    return result


def journal_run(store: Path | str, run_id: str) -> dict:
    """The run as ``research show --json`` has it, read in this process through the Workspace."""
    from agent.runs import Workspace

    workspace = Workspace.for_reading(str(store))
    try:
        summary = workspace.summary(run_id)
        summary["attempts"] = workspace.journal.get_run(run_id)["attempts"]
        return summary
    finally:
        workspace.close()


def wait_for_status(store: Path | str, run_id: str, status: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        run = journal_run(store, run_id)
        if run["status"] == status:
            return run
        if time.monotonic() > deadline:
            pytest.fail(f"run {run_id} is {run['status']} after {timeout} s, not {status}")
        time.sleep(0.2)


# -- pages over real runs ------------------------------------------------------------------------

def test_pages_list_real_runs_made_by_the_cli(tmp_path):
    cache = tmp_path / "cache"
    make_run(tmp_path, cache, "first", "--format", "md,html,json")
    make_run(tmp_path, cache, "again")  # the same question again: every step replays
    with ui_server(tmp_path, cache) as ui, ui.client() as client:
        assert client.get("/").headers["location"] == "/runs"
        page = client.get("/runs")
        assert page.status_code == 200
        assert "first" in page.text and "again" in page.text and "completed" in page.text
        rows = re.findall(r'<tr class="run">(.*?)</tr>', page.text, re.S)
        cells = {re.search(r'href="/runs/([^"]+)"', row).group(1): re.findall(r'<td class="n[^"]*">([^<]*)</td>', row)
                 for row in rows}
        assert cells["first"][:3] == ["12", "0", "0"]  # paid, replayed, failed
        assert cells["again"][:3] == ["0", "12", "0"]
        assert cells["first"][3] == "$0.0000"
        assert "first" not in client.get("/runs", params={"status": "waiting"}).text
        assert "first" in client.get("/runs", params={"pipeline": "research", "status": "completed"}).text

        run = client.get("/runs/first")
        assert run.status_code == 200
        for said in ("Completed: the report was written.", "summarize", "analyze", "research show first --cache-dir",
                     "/runs/first/report", "/runs/first/report/view", "/runs/first/files/json"):
            assert said in run.text, said
        assert 'class="how paid"' in run.text and 'class="how replayed"' not in run.text
        assert 'class="how replayed"' in client.get("/runs/again").text

        report = client.get("/runs/first/report")
        assert "<h1>Do heat pumps work well in cold climates" in report.text and "<h2>Sources</h2>" in report.text
        frame = client.get("/runs/first/report/view")
        assert '<iframe class="report" sandbox=""' in frame.text and 'src="/runs/first/files/html"' in frame.text
        html = client.get("/runs/first/files/html")
        csp = html.headers["content-security-policy"]
        assert html.headers["content-type"].startswith("text/html") and "sandbox" in csp
        assert "default-src 'none'" in csp and "script" not in csp and html.headers["x-frame-options"] == "SAMEORIGIN"
        assert json.loads(client.get("/runs/first/files/json").text)["run_id"] == "first"
        assert client.get("/runs/first/files/pdf").status_code == 404
        assert client.get("/runs/nope").status_code == 404
        assert client.get("/runs/again/files/html").status_code == 404  # that run wrote only Markdown

        headers = page.headers
        assert "default-src 'none'" in headers["content-security-policy"] and "script-src" not in headers["content-security-policy"]
        assert headers["x-frame-options"] == "DENY" and headers["x-content-type-options"] == "nosniff"


def test_a_run_in_progress_shows_its_progress(tmp_path):
    cache = tmp_path / "cache"
    env = subprocess_env(RESEARCH_LOCAL_LATENCY="0.6")
    with ui_server(tmp_path, cache) as ui, ui.client() as client:
        proc = research_proc("run", QUESTION, "--file", CORPUS, "--run-id", "slow", "--cache-dir", cache, "--quiet",
                             env=env, cwd=tmp_path)
        try:
            deadline = time.monotonic() + 30
            while True:
                page = client.get("/runs/slow")
                if page.status_code == 200 and 'class="status running"' in page.text and 'class="how paid"' in page.text:
                    break
                assert time.monotonic() < deadline, page.text
                time.sleep(0.1)
            assert '<meta http-equiv="refresh"' in page.text  # it follows the run by itself
            assert "research resume slow --wait" in page.text
            assert proc.wait(60) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
        done = client.get("/runs/slow")
        assert 'class="status completed"' in done.text and '<meta http-equiv="refresh"' not in done.text


def test_scheduled_reports_show_each_night_its_cost_what_changed_and_the_next_slot(tmp_path):
    cache = tmp_path / "cache"
    notes = tmp_path / "notes"
    notes.mkdir()
    for path in sorted(CORPUS.iterdir())[:3]:
        (notes / path.name).write_bytes(path.read_bytes())
    (tmp_path / "research.toml").write_text(
        '[reports.nightly]\nquestion = "Do heat pumps work in cold climates?"\nfiles = ["notes"]\n'
        'schedule = "0 6 * * *"\nformats = ["md", "html"]\n')
    env = subprocess_env()
    for day in ("2026-11-20", "2026-11-21"):
        if day == "2026-11-21":  # a new source on the second night
            (notes / "extra.md").write_bytes(sorted(CORPUS.iterdir())[3].read_bytes())
        result = research_run("report", "run", "nightly", "--at", day, "--cache-dir", cache, "--quiet", env=env, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
    with ui_server(tmp_path, cache) as ui, ui.client() as client:
        page = client.get("/reports")
        assert page.status_code == 200
        assert 'id="report-nightly"' in page.text and "<code>0 6 * * *</code> UTC" in page.text
        assert re.search(r"next slot</dt><dd>\d{4}-\d\d-\d\dT06:00Z", page.text)
        assert len(re.findall(r'<rect class="bar cost"', page.text)) == 2
        assert "nightly@2026-11-20T06:00Z" in page.text and "nightly@2026-11-21T06:00Z" in page.text
        assert "New sources" in page.text and "first report of" in page.text
        runs = client.get("/runs", params={"report": "nightly"})
        assert runs.text.count('<tr class="run">') == 2
    # Without the reports file the journal still knows the report; it has no schedule then.
    (tmp_path / "research.toml").unlink()
    with ui_server(tmp_path, cache) as ui, ui.client() as client:
        page = client.get("/reports")
        assert 'id="report-nightly"' in page.text and "not in the reports file" in page.text
        assert "no reports file at" in page.text


# -- approvals across processes --------------------------------------------------------------------

def test_approve_continues_the_run_in_the_background_once(tmp_path):
    cache = tmp_path / "cache"
    make_run(tmp_path, cache, "w", "--approve", "report")
    make_run(tmp_path, cache, "w2", "--approve", "report")
    assert journal_run(cache, "w")["status"] == "waiting"
    with ui_server(tmp_path, cache) as ui, ui.client() as client:
        page = client.get("/runs/w").text
        assert "Waiting for approval" in page and "before stage</dt><dd>report" in page and 'name="note"' in page
        token = ui.csrf(client, "w")
        approved = client.post("/runs/w/approve", data={"csrf": token, "note": "Lead with the running costs."})
        assert approved.status_code == 303 and approved.headers["location"] == "/runs/w?did=approved"
        # The same form sent again (a double click, a second tab): a clear message, no second continuation.
        twice = client.post("/runs/w/approve", data={"csrf": token, "note": "again"})
        assert twice.status_code == 409 and "is not waiting for approval" in twice.text
        done = wait_for_status(cache, "w", "completed")
        assert done["attempts"] == 2  # the run that waited, then exactly one continuation
        assert (tmp_path / "reports" / "w.md").is_file()
        note = sqlite3.connect(cache / "journal.sqlite3").execute("SELECT note FROM waits WHERE run_id = 'w'").fetchone()[0]
        assert note == "Lead with the running costs."
        shown = client.get("/runs/w").text
        assert 'class="status completed"' in shown and "Waiting for approval" not in shown
        assert "approve it" not in shown and "/runs/w/report" in shown

        # Two tabs at the same instant: one approves, the other is told it no longer waits.
        token = ui.csrf(client, "w2")
        codes: list[int] = []

        def post() -> None:
            with ui.client(cookies=client.cookies) as other:
                codes.append(other.post("/runs/w2/approve", data={"csrf": token}).status_code)

        threads = [threading.Thread(target=post) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(codes) == [303, 409]
        assert wait_for_status(cache, "w2", "completed")["attempts"] == 2


def test_the_view_works_over_the_shared_postgresql_store(tmp_path, pg_url):
    """The same pages and the same approval over the store the factory gives for a postgresql:// URL."""
    password = pg_url.split(":")[2].split("@")[0]
    make_run(tmp_path, pg_url, "done")
    make_run(tmp_path, pg_url, "pw", "--approve", "report")
    with ui_server(tmp_path, pg_url) as ui, ui.client() as client:
        page = client.get("/runs")
        assert "done" in page.text and 'class="status waiting"' in page.text
        assert "127.0.0.1" in page.text and password not in page.text  # the store is named, its password never
        shown = client.get("/runs/pw").text
        assert "--store postgresql://research@127.0.0.1" in shown and password not in shown
        token = ui.csrf(client, "pw")
        assert client.post("/runs/pw/approve", data={"csrf": token}).status_code == 303
        assert client.post("/runs/pw/approve", data={"csrf": token}).status_code == 409
        assert wait_for_status(pg_url, "pw", "completed")["attempts"] == 2
        assert password not in client.get("/runs/pw").text


def test_reject_ends_a_waiting_run_from_another_process(tmp_path):
    cache = tmp_path / "cache"
    make_run(tmp_path, cache, "r", "--approve", "analyze")
    with ui_server(tmp_path, cache) as ui, ui.client() as client:
        token = ui.csrf(client, "r")
        rejected = client.post("/runs/r/reject", data={"csrf": token, "note": "wrong sources"})
        assert rejected.status_code == 303
        assert journal_run(cache, "r")["status"] == "rejected"  # at once: nothing continues a rejected run
        page = client.get(rejected.headers["location"]).text
        assert "Rejected: the run ends here" in page and 'class="status rejected"' in page
        again = client.post("/runs/r/approve", data={"csrf": token})
        assert again.status_code == 409 and "not waiting for approval (it is rejected)" in again.text
        time.sleep(1)
        run = journal_run(cache, "r")
        assert (run["status"], run["attempts"]) == ("rejected", 1)


def test_a_post_without_its_csrf_token_is_refused(tmp_path):
    cache = tmp_path / "cache"
    make_run(tmp_path, cache, "w", "--approve", "report")
    with ui_server(tmp_path, cache) as ui, ui.client() as client:
        token = ui.csrf(client, "w")
        assert client.post("/runs/w/approve", data={"note": "x"}).status_code == 403
        assert client.post("/runs/w/approve", data={"csrf": "0" * 64}).status_code == 403
        with ui.client() as stranger:  # the token without the cookie it was made for
            assert stranger.post("/runs/w/approve", data={"csrf": token}).status_code == 403
        forged = client.post("/runs/w/approve", data={"csrf": token}, headers={"Origin": "http://evil.example"})
        assert forged.status_code == 403
        assert client.get("/runs/w/approve").status_code == 405  # GET never acts
        assert client.post("/runs/w/reject", data={}).status_code == 403
        assert journal_run(cache, "w")["status"] == "waiting"


# -- what keeps it safe ----------------------------------------------------------------------------

def test_a_non_loopback_host_without_a_token_refuses_to_start(tmp_path):
    for extra in ({}, {"RESEARCH_UI_TOKEN": "short"}):
        env = subprocess_env(**extra)
        if not extra:
            env.pop("RESEARCH_UI_TOKEN", None)
        result = research_run("ui", "--host", "0.0.0.0", "--port", free_port(), "--cache-dir", tmp_path / "cache",
                              env=env, cwd=tmp_path, timeout=30)
        assert result.returncode == 2, result
        assert result.stderr.startswith("error: refusing to listen on 0.0.0.0") and result.stderr.count("\n") == 1
        assert "RESEARCH_UI_TOKEN" in result.stderr and result.stdout == ""


def test_with_a_token_every_request_carries_it(tmp_path):
    cache = tmp_path / "cache"
    make_run(tmp_path, cache, "first")
    secret = "a-long-token-nobody-guesses-1234"
    with ui_server(tmp_path, cache, env=subprocess_env(RESEARCH_UI_TOKEN=secret)) as ui:
        with ui.client() as client:
            assert client.get("/runs").status_code == 401
            assert client.get("/runs", params={"token": "wrong"}).status_code == 401
            opened = client.get("/runs/first", params={"token": secret})
            assert opened.status_code == 303 and opened.headers["location"] == "/runs/first"  # the token leaves the address
            assert secret not in opened.headers["set-cookie"]  # the cookie holds a proof, not the token
            page = client.get("/runs/first")
            assert page.status_code == 200 and "first" in page.text and secret not in page.text
        with ui.client(headers={"Authorization": f"Bearer {secret}"}) as client:
            assert client.get("/runs").status_code == 200
        with ui.client(headers={"X-Research-Token": secret}) as client:
            assert client.get("/static/ui.css").status_code == 200


def test_requests_naming_another_host_are_refused_on_loopback(tmp_path):
    """A page on another site cannot reach the view through a name that resolves to 127.0.0.1."""
    with ui_server(tmp_path, tmp_path / "cache") as ui, ui.client() as client:
        assert client.get("/runs", headers={"Host": "attacker.example"}).status_code == 400
        assert client.get("/runs", headers={"Host": f"localhost:{ui.url.rsplit(':', 1)[1]}"}).status_code == 200


def test_source_and_model_text_is_escaped_and_secrets_never_shown(tmp_path):
    cache = tmp_path / "cache"
    pages = tmp_path / "pages"
    pages.mkdir()
    (pages / "page.html").write_text(HOSTILE_PAGE)
    make_run(tmp_path, cache, "evil", "--format", "md,html", question=HOSTILE_QUESTION, files=pages)
    make_run(tmp_path, cache, "broken")
    # An error written by some earlier release, carrying a key and a URL password.
    key = "sk-uitestsecretvalue123456"
    db = sqlite3.connect(cache / "journal.sqlite3")
    db.execute("UPDATE runs SET status = 'failed', error = ? WHERE run_id = 'broken'",
               (f"openai said: invalid key {key} at https://bob:hunter2pass@llm.example/v1",))
    db.commit()
    db.close()
    env = subprocess_env(OPENAI_API_KEY="sk-configured-key-7890")
    with ui_server(tmp_path, cache, env=env) as ui, ui.client() as client:
        for path in ("/runs", "/runs/evil", "/runs/evil/report", "/runs/evil/report/view"):
            text = client.get(path).text
            assert "<script>" not in text, path
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in client.get("/runs/evil/report").text
        assert "&lt;script&gt;window.__pwned" in client.get("/runs/evil").text
        broken = client.get("/runs/broken").text
        assert "Failed: openai said: invalid key ***" in broken
        assert key not in broken and "hunter2pass" not in broken and "bob:***@llm.example" in broken


def test_help_does_not_import_the_web_framework(tmp_path):
    code = ("import sys\nfrom agent.cli import main\nsys.argv = ['research'] + sys.argv[1:]\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "print('WEB', [m for m in ('starlette', 'uvicorn', 'python_multipart', 'multipart') if m in sys.modules])\n")
    for args in (["--help"], ["ui", "--help"], ["runs"]):
        out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                             env=subprocess_env(), cwd=tmp_path)
        assert "WEB []" in out.stdout, (args, out.stdout, out.stderr)
    assert "--host" in subprocess.run([sys.executable, "-c", code, "ui", "--help"], capture_output=True, text=True,
                                      env=subprocess_env(), cwd=tmp_path).stdout


def test_ui_without_the_extra_says_how_to_install_it(tmp_path):
    code = ("import sys\nsys.modules['starlette'] = None  # as if the ui extra were not installed\n"
            "from agent.cli import main\nsys.argv = ['research', 'ui', '--port', '0']\nmain()\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=subprocess_env(), cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and "pip install 'durable-research[ui]'" in out.stderr, out.stderr


def test_a_port_in_use_is_one_line(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        result = research_run("ui", "--port", taken.getsockname()[1], "--cache-dir", tmp_path / "cache",
                              env=subprocess_env(), cwd=tmp_path, timeout=30)
    assert result.returncode == 2 and result.stderr.startswith("error: cannot listen on 127.0.0.1:")
    assert result.stderr.count("\n") == 1


def test_the_wheel_ships_the_templates_and_styles(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path),
                    str(ROOT)], check=True, capture_output=True, cwd=tmp_path)
    (wheel,) = tmp_path.glob("durable_research-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for template in (ROOT / "agent" / "ui" / "templates").glob("*.html"):
        assert f"agent/ui/templates/{template.name}" in names
    assert "agent/ui/static/ui.css" in names and "agent/cli_ui.py" in names
