"""Scheduled reports: ``research report run/due/serve/cron/list`` over ``research.toml``.

Each test writes a ``research.toml`` in its own cwd. Sources are a loopback website whose pages change
between nights, or small Markdown files; the model is the offline default. What a night paid for is
read from the journal's events, attempt by attempt; time is never patched: ``report run --at`` and
``report due/list --now`` pick the slot, and the real processes (two schedulers at once, ``serve``)
run on the real clock.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import hmac
import json
import os
import queue
import shlex
import signal
import sqlite3
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from croniter import croniter

from tests.conftest import subprocess_env
from tests.helpers import cli, cli_json, completed_events, research_proc, research_run
from tests.servers import Reply, serve
from tests.servers.receiver import Receiver, accepting
from tests.servers.website import Site, html, page

Q = "Do heat pumps work in cold climates?"

ALPHA = page("Alpha heat", "Heat pumps work well in cold climates in Norway.",
             "Heat pumps cost less to run than oil boilers.")
BETA_V1 = page("Beta costs", "Running costs of heat pumps depend on electricity prices.",
               "Insulation helps a heat pump a lot in cold weather.")
BETA_V2 = page("Beta costs", "Running costs of heat pumps now depend on gas prices more than before.",
               "Insulation helps a heat pump a lot in cold weather.")
GAMMA = page("Gamma trial", "A field trial found heat pumps kept working at minus twenty degrees.",
             "Owners of heat pumps were satisfied with comfort in cold climates.")


# -- helpers ---------------------------------------------------------------------------------

def cache() -> Path:
    return Path(os.environ["RESEARCH_CACHE_DIR"])


def write_config(reports: dict[str, dict], path: Path | str = "research.toml") -> Path:
    """A research.toml with one [reports.NAME] table per entry (JSON scalars and arrays are TOML too)."""
    lines = []
    for name, fields in reports.items():
        lines.append(f"[reports.{name}]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in fields.items()]
        lines.append("")
    path = Path(path)
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def notes(root: Path, **texts: str) -> Path:
    """A directory of Markdown notes, ``name=text`` each (rewritten in place when called again)."""
    root.mkdir(exist_ok=True)
    for name, text in texts.items():
        (root / f"{name}.md").write_text(text, encoding="utf-8")
    return root


def note(title: str, *sentences: str) -> str:
    return f"# {title}\n\n" + " ".join(sentences) + "\n"


NOTES_V1 = {
    "cold": note("Cold weather", "Heat pumps work well in cold climates when sized for the coldest week."),
    "costs": note("Running costs", "Heat pumps cost about as much to run as gas boilers in cold climates."),
    "trial": note("Field trial", "In a Nordic field trial heat pumps kept working at minus twenty degrees."),
}


def journal(sql: str, *params) -> list[tuple]:
    conn = sqlite3.connect(cache() / "journal.sqlite3", timeout=10)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def attempts(run_id: str) -> int:
    return journal("SELECT attempts FROM runs WHERE run_id = ?", run_id)[0][0]


def paid(run_id: str, attempt: int | None = None, kind: str | None = None) -> list[str]:
    """Names of the steps ``run_id`` paid for (completed, not replayed), in ``attempt`` if given."""
    sql = "SELECT kind, name FROM events WHERE run_id = ? AND status = 'completed' AND replayed = 0"
    params: list = [run_id]
    if attempt is not None:
        sql += " AND attempt = ?"
        params.append(attempt)
    return sorted(name for k, name in journal(sql, *params) if kind is None or k == kind)


def replayed(run_id: str, attempt: int, kind: str | None = None) -> list[str]:
    rows = journal("SELECT kind, name FROM events WHERE run_id = ? AND attempt = ? AND replayed = 1", run_id, attempt)
    return sorted(name for k, name in rows if kind is None or k == kind)


def report_run(name: str, at: str, code: int = 0, *extra: str):
    result = cli("report", "run", name, "--at", at, *extra)
    assert result.exit_code == code, (result.stdout, result.stderr)
    return result


def effects(run_id: str) -> list[dict]:
    rows = journal("SELECT effect, status, attempts, detail FROM effects WHERE run_id = ? ORDER BY at", run_id)
    return [{"effect": e, "status": s, "attempts": a, "detail": json.loads(d) if d else None} for e, s, a, d in rows]


def journal_text() -> str:
    """Every value in the journal, as text: what must never hold a secret."""
    conn = sqlite3.connect(cache() / "journal.sqlite3")
    try:
        return "\n".join(line for line in conn.iterdump())
    finally:
        conn.close()


def utc_slot_label(moment: _dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%MZ")


# -- 1. incremental nights over a changing website -------------------------------------------

def test_nights_over_a_changing_website_pay_only_for_what_changed():
    site = Site({"/alpha": html(ALPHA), "/beta": html(BETA_V1), "/gamma": html(GAMMA)})
    with serve(site) as server:
        urls = [f"{server.url}/alpha", f"{server.url}/beta", f"{server.url}/gamma"]
        write_config({"nightly": {"question": Q, "urls": urls, "schedule": "0 6 * * *"}})

        # Night 1 pays for everything: three reads, three summaries, the analysis and the report.
        first = report_run("nightly", "2026-11-20")
        night1 = "nightly@2026-11-20T06:00Z"
        assert "report: reports/nightly/2026-11-20.md" in first.stdout
        assert f"{night1}: completed" in first.stdout
        assert len(paid(night1, 1, "scrape")) == 3
        assert paid(night1, 1, "llm") == ["analyze with local:extractive", "report with local:extractive",
                                          f"summarize {urls[0]}", f"summarize {urls[1]}", f"summarize {urls[2]}"]
        text1 = Path("reports/nightly/2026-11-20.md").read_text()
        assert "This is the first report of `nightly`" in text1
        assert Path("reports/nightly/latest.md").read_text() == text1
        hits = site.total()
        assert hits == 3

        # The same slot again replays: nothing paid, nothing fetched, the same report.
        again = report_run("nightly", "2026-11-20T23:00")
        assert attempts(night1) == 2
        assert paid(night1, 2) == []
        assert len(replayed(night1, 2)) == 8
        assert site.total() == hits
        assert "attempt 2: 0 paid, 8 replayed" in again.stdout
        assert Path("reports/nightly/2026-11-20.md").read_text() == text1
        shown = cli_json("show", night1)
        assert shown["totals"]["paid"] == 8 and shown["totals"]["failed"] == 0

        # Night 2: one page changed. Every page is read again, but only the changed one is summarized
        # again; the analysis, the report and the comparison with night 1 are new.
        site["/beta"] = html(BETA_V2)
        report_run("nightly", "2026-11-21")
        night2 = "nightly@2026-11-21T06:00Z"
        assert site.total() == hits + 3
        llm = paid(night2, 1, "llm")
        assert llm == ["analyze with local:extractive", "changes with local:extractive",
                       "report with local:extractive", f"summarize {urls[1]}"]
        assert [n for n in llm if n.startswith("changes")] == ["changes with local:extractive"]
        assert replayed(night2, 1, "llm") == [f"summarize {urls[0]}", f"summarize {urls[2]}"]
        text2 = Path("reports/nightly/2026-11-21.md").read_text()
        assert Path("reports/nightly/latest.md").read_text() == text2
        assert Path("reports/nightly/2026-11-20.md").read_text() == text1  # the older report is kept
        assert 0 <= text2.index("## What changed since the last report") < text2.index("## Answer")
        assert f"Compared with the report for 2026-11-20T06:00Z (run `{night1}`)" in text2
        assert "- Changed sources: [2] Beta costs\n" in text2
        assert "Alpha heat" not in text2.split("## Answer")[0]  # unchanged pages are not called changed
        assert "now depend on gas prices" in text2

        # Night 3: nothing changed: every page is read, and not one model call is paid.
        report_run("nightly", "2026-11-22")
        night3 = "nightly@2026-11-22T06:00Z"
        assert paid(night3, 1, "llm") == []
        assert len(paid(night3, 1, "scrape")) == 3
        text3 = Path("reports/nightly/2026-11-22.md").read_text()
        head3 = text3.split("## Answer")[0]
        assert "- No source changed." in head3
        assert "The findings are the same as in the last report." in head3
        assert f"(run `{night2}`)" in head3

        # Night 4: a page is gone from the site (404). The report is written (exit 3: a step failed)
        # and names the page as unread, not as a source that changed.
        del site.pages["/gamma"]
        report_run("nightly", "2026-11-23", 3)
        night4 = "nightly@2026-11-23T06:00Z"
        assert not any(n.startswith("summarize") for n in paid(night4, 1, "llm"))
        failed = journal("SELECT kind, name FROM events WHERE run_id = ? AND status = 'failed'", night4)
        assert failed == [("scrape", f"scrape {server.url}/gamma")]
        text4 = Path("reports/nightly/2026-11-23.md").read_text()
        head4 = text4.split("## Answer")[0]
        assert f"- Could not be read this time: Gamma trial ({server.url}/gamma)" in head4
        assert "Removed sources" not in head4 and "Changed sources" not in head4
        assert Path("reports/nightly/latest.md").read_text() == text4


# -- 2. keep -----------------------------------------------------------------------------------

def test_keep_prunes_old_report_files_but_never_the_cache(tmp_path):
    corpus = notes(tmp_path / "notes", **NOTES_V1)
    write_config({"daily": {"question": Q, "files": [str(corpus)], "schedule": "0 6 * * *", "keep": 2,
                            "formats": ["md", "json"]}})
    versions = ["about as much to run as gas boilers", "less to run than gas boilers", "more to run than gas boilers"]
    for day, words in zip(("2026-11-20", "2026-11-21", "2026-11-22"), versions):
        notes(corpus, costs=note("Running costs", f"Heat pumps cost {words} in cold climates."))
        report_run("daily", day)
    out = Path("reports/daily")
    assert sorted(p.name for p in out.iterdir()) == [
        "2026-11-21.json", "2026-11-21.md", "2026-11-22.json", "2026-11-22.md", "latest.json", "latest.md"]
    assert (out / "latest.md").read_text() == (out / "2026-11-22.md").read_text()
    assert json.loads((out / "latest.json").read_text()) == json.loads((out / "2026-11-22.json").read_text())

    # Night 1's files are gone, its steps are not: a new slot over night 1's notes replays every
    # summary, the analysis and the report; only the comparison with night 3 is new.
    notes(corpus, costs=note("Running costs", f"Heat pumps cost {versions[0]} in cold climates."))
    report_run("daily", "2026-11-25")
    slot = "daily@2026-11-25T06:00Z"
    assert paid(slot, 1, "llm") == ["changes with local:extractive"]
    assert len(replayed(slot, 1, "llm")) == 5
    assert sorted(p.name for p in out.iterdir()) == [
        "2026-11-22.json", "2026-11-22.md", "2026-11-25.json", "2026-11-25.md", "latest.json", "latest.md"]
    assert "about as much to run as gas boilers" in (out / "latest.md").read_text()


def test_rerunning_an_older_slot_leaves_latest_and_its_own_report_alone(tmp_path):
    corpus = notes(tmp_path / "notes", **NOTES_V1)
    write_config({"daily": {"question": Q, "files": [str(corpus)], "schedule": "0 6 * * *", "keep": 2}})
    for day in ("2026-11-20", "2026-11-21", "2026-11-22"):
        notes(corpus, costs=note("Running costs", f"Heat pumps cost little to run in cold climates ({day})."))
        report_run("daily", day)
    newest = Path("reports/daily/2026-11-22.md").read_text()
    again = report_run("daily", "2026-11-20")  # a backfill, or a resumed old slot: it replays
    assert "report: reports/daily/2026-11-20.md" in again.stdout
    assert Path("reports/daily/latest.md").read_text() == newest
    assert Path("reports/daily/2026-11-20.md").exists()  # the path the command just printed


# -- 3. two schedulers on one slot -------------------------------------------------------------

def test_two_processes_on_one_slot_one_pays_the_other_steps_aside(tmp_path):
    corpus = notes(tmp_path / "notes", **{f"n{i}": note(f"Note {i}", f"Heat pumps in cold climates, finding {i}: "
                                                          f"they saved {10 + i} percent on heating.")
                                          for i in range(5)})
    config = write_config({"nightly": {"question": Q, "files": [str(corpus)], "schedule": "0 6 * * *"}},
                          tmp_path / "research.toml")
    # Five summaries one at a time, then the analysis and the report: about two seconds of "model".
    env = subprocess_env(RESEARCH_CACHE_DIR=str(cache()), RESEARCH_LOCAL_LATENCY="0.3", RESEARCH_CONCURRENCY="1")
    args = ("report", "run", "nightly", "--at", "2026-11-20", "--config", config, "--quiet")
    procs = [research_proc(*args, env=env, cwd=tmp_path) for _ in range(2)]
    outs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs

    run_id = "nightly@2026-11-20T06:00Z"
    busy = [out for out, _ in outs if "already running" in out]
    done = [out for out, _ in outs if f"{run_id}: completed" in out]
    assert len(busy) == 1 and len(done) == 1, outs
    assert "leaves it to that one" in busy[0] and "report:" not in busy[0]
    assert attempts(run_id) == 1  # the loser never opened an attempt
    events = journal("SELECT key, status, replayed FROM events WHERE run_id = ?", run_id)
    per_key = Counter(key for key, status, again in events if status == "completed" and not again)
    assert len(per_key) == 12 and max(per_key.values()) == 1  # 5 reads, 5 summaries, analysis, report
    assert not any(again for _, _, again in events)
    assert (tmp_path / "reports" / "nightly" / "2026-11-20.md").exists()


# -- 4. report due -----------------------------------------------------------------------------

def test_due_runs_each_latest_slot_once_and_skips_missed_ones(tmp_path):
    corpus = notes(tmp_path / "notes", **NOTES_V1)
    write_config({
        "morning": {"question": Q, "files": [str(corpus)], "schedule": "0 6 * * *"},
        "costs": {"question": "What do heat pumps cost to run?", "files": [str(corpus / "costs.md")],
                  "schedule": "30 7 * * *"},
    })
    first = cli("report", "due", "--now", "2026-11-20T08:00Z")
    assert first.exit_code == 0, first.stderr
    lines = first.stdout.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("morning@2026-11-20T06:00Z: completed")
    assert lines[1].startswith("costs@2026-11-20T07:30Z: completed")
    assert Path("reports/morning/2026-11-20.md").exists() and Path("reports/costs/2026-11-20.md").exists()
    events = journal("SELECT COUNT(*) FROM events")[0][0]

    again = cli("report", "due", "--now", "2026-11-20T08:00Z")
    assert again.exit_code == 0, again.stderr
    assert again.stdout.splitlines() == ["morning@2026-11-20T06:00Z: up to date (completed)",
                                         "costs@2026-11-20T07:30Z: up to date (completed)"]
    assert journal("SELECT COUNT(*) FROM events")[0][0] == events  # not even a replay
    assert attempts("morning@2026-11-20T06:00Z") == 1 and attempts("costs@2026-11-20T07:30Z") == 1

    # Between the two slots of a day only the one that came due runs.
    before = cli_json("report", "due", "--now", "2026-11-21T07:00Z")
    assert [r["run_id"] for r in before["runs"]] == ["morning@2026-11-21T06:00Z"]
    assert before["notes"][0].startswith("morning@2026-11-21T06:00Z: completed")
    assert before["notes"][1] == "costs@2026-11-20T07:30Z: up to date (completed)"

    # Three days on: the slots missed in between are skipped, and said so; only the latest runs.
    late = cli("report", "due", "--now", "2026-11-24T08:00Z")
    assert late.exit_code == 0, late.stderr
    assert ("morning: skipped 2 missed slots (2026-11-22T06:00Z, 2026-11-23T06:00Z); only the latest,"
            " 2026-11-24T06:00Z, runs") in late.stdout
    assert ("costs: skipped 3 missed slots (2026-11-21T07:30Z, 2026-11-22T07:30Z, 2026-11-23T07:30Z);"
            " only the latest, 2026-11-24T07:30Z, runs") in late.stdout
    runs = sorted(r for (r,) in journal("SELECT run_id FROM runs"))
    assert runs == ["costs@2026-11-20T07:30Z", "costs@2026-11-24T07:30Z", "morning@2026-11-20T06:00Z",
                    "morning@2026-11-21T06:00Z", "morning@2026-11-24T06:00Z"]
    assert sorted(p.name for p in Path("reports/morning").iterdir()) == [
        "2026-11-20.md", "2026-11-21.md", "2026-11-24.md", "latest.md"]
    # Nothing changed in the notes: the late night replays every summary.
    assert not any(n.startswith("summarize") for n in paid("morning@2026-11-24T06:00Z"))


# -- 5. webhook --------------------------------------------------------------------------------

TOKEN = "T0KEN-s3cr3t-9f8e7d"
SECRET = "whsec-test-0123456789"


def expected_signature(request) -> str:
    timestamp = request.headers["x-research-timestamp"]
    digest = hmac.new(SECRET.encode(), timestamp.encode() + b"." + request.body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def test_webhook_is_signed_and_sent_once_per_slot(tmp_path, monkeypatch):
    monkeypatch.setenv("RESEARCH_WEBHOOK_SECRET", SECRET)
    corpus = notes(tmp_path / "notes", **NOTES_V1)
    receiver = accepting(204)
    with serve(receiver) as server:
        write_config({"nightly": {"question": Q, "files": [str(corpus)], "schedule": "0 6 * * *",
                                  "webhook": f"{server.url}/hook/{TOKEN}"}})
        first = report_run("nightly", "2026-11-20")
        assert len(server.requests) == 1
        request = server.requests[0]
        assert request.method == "POST" and request.path == f"/hook/{TOKEN}"
        assert request.headers["content-type"] == "application/json"
        assert request.headers["x-research-event"] == "nightly@2026-11-20T06:00Z/webhook:completed"
        timestamp = request.headers["x-research-timestamp"]
        assert timestamp.isdigit() and abs(int(timestamp) - time.time()) < 120
        assert hmac.compare_digest(request.headers["x-signature"], expected_signature(request))
        body = request.json()
        assert body["report"] == "nightly" and body["slot"] == "2026-11-20T06:00Z"
        assert body["run_id"] == "nightly@2026-11-20T06:00Z" and body["status"] == "completed"
        assert body["paths"] == {"md": "reports/nightly/2026-11-20.md"}
        assert body["cost_usd"] == 0.0 and body["changes"] == [] and body["error"] is None
        # the signed bytes are the documented canonical JSON
        assert request.body == json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()

        # The same slot again is the same event: not sent twice, and the journal says it was sent.
        second = report_run("nightly", "2026-11-20")
        assert len(server.requests) == 1
        sent = effects("nightly@2026-11-20T06:00Z")
        assert [(e["effect"], e["status"], e["attempts"]) for e in sent] == [("webhook:completed", "sent", 1)]
        assert sent[0]["detail"]["http_status"] == 204

        # Night 2, one note changed: a new event, its payload saying what changed.
        notes(corpus, costs=note("Running costs", "Heat pumps cost less to run than gas boilers in cold climates."))
        third = report_run("nightly", "2026-11-21")
        assert len(server.requests) == 2
        body2 = server.requests[1].json()
        assert body2["slot"] == "2026-11-21T06:00Z" and body2["status"] == "completed"
        assert any(line.startswith("Changed sources: [") and "Running costs" in line for line in body2["changes"])
        assert hmac.compare_digest(server.requests[1].headers["x-signature"], expected_signature(server.requests[1]))
    for result in (first, second, third):
        assert TOKEN not in result.stdout + result.stderr
    assert TOKEN not in journal_text()


def test_a_failing_webhook_never_fails_the_run_nor_leaks_its_token(tmp_path, monkeypatch):
    monkeypatch.setenv("RESEARCH_WEBHOOK_SECRET", SECRET)
    corpus = notes(tmp_path / "notes", **NOTES_V1)
    # Always 500, quoting the path it was sent (where the token is); Retry-After: 0 keeps the retries quick.
    receiver = Receiver(lambda request: Reply(500, body=f"internal error at {request.path}",
                                              headers={"Content-Type": "text/plain", "Retry-After": "0"}))
    with serve(receiver) as server:
        write_config({"nightly": {"question": Q, "files": [str(corpus)], "schedule": "0 6 * * *",
                                  "webhook": f"{server.url}/hook/{TOKEN}"}})
        result = cli("report", "run", "nightly", "--at", "2026-11-20", "--json")
        assert result.exit_code == 0, result.stderr
        assert len(server.requests) == 4  # retried, then given up
        assert len({r.headers["x-research-event"] for r in server.requests}) == 1
    out = json.loads(result.stdout)
    assert out["status"] == "completed" and out["webhook"]["status"] == "failed"
    recorded = effects("nightly@2026-11-20T06:00Z")
    assert [(e["effect"], e["status"]) for e in recorded] == [("webhook:completed", "failed")]
    detail = recorded[0]["detail"]
    assert detail["http_status"] == 500 and detail["attempts"] == 4
    assert "HTTP 500" in detail["error"]
    assert detail["url"] == f"{server.url}/…"
    assert Path("reports/nightly/2026-11-20.md").exists()
    text = json.dumps(detail) + result.stdout + result.stderr + journal_text()
    assert TOKEN not in text and SECRET not in text
    assert "/hook/" not in text


def test_show_tells_how_the_webhook_went(tmp_path):
    corpus = notes(tmp_path / "notes", **NOTES_V1)
    with serve(accepting(204)) as server:
        write_config({"nightly": {"question": Q, "files": [str(corpus)], "schedule": "0 6 * * *",
                                  "webhook": f"{server.url}/hook/{TOKEN}"}})
        report_run("nightly", "2026-11-20")
    assert effects("nightly@2026-11-20T06:00Z")[0]["status"] == "sent"
    shown = cli("show", "nightly@2026-11-20T06:00Z", "--json")
    assert shown.exit_code == 0 and "webhook" in shown.stdout and TOKEN not in shown.stdout


# -- 6. report cron ----------------------------------------------------------------------------

def test_cron_prints_a_crontab_line_and_systemd_units_that_work(tmp_path, monkeypatch):
    home = tmp_path / "my reports"  # a space: every path must be quoted
    home.mkdir()
    monkeypatch.chdir(home)
    corpus = notes(home / "notes", **NOTES_V1)
    config = write_config({"nightly": {"question": Q, "files": [str(corpus)], "schedule": "0 6 * * *"}})
    result = cli("report", "cron", "--every", "10")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    line = next(x for x in lines if x and not x.startswith("#"))
    fields = line.split(" ", 5)
    expr, command = " ".join(fields[:5]), fields[5]
    assert croniter.is_valid(expr)
    it = croniter(expr, _dt.datetime(2026, 11, 20, 6, 3))
    assert [it.get_next(_dt.datetime) for _ in range(2)] == [_dt.datetime(2026, 11, 20, 6, 10),
                                                             _dt.datetime(2026, 11, 20, 6, 20)]
    words = shlex.split(command)
    assert words[:3] == ["cd", str(home), "&&"]
    assert Path(words[3]).is_absolute()  # cron's PATH is short
    assert "report due" in command and "--config" in words
    assert words[words.index("--config") + 1] == str(config.absolute())
    assert words[-3:] == [">>", str(home / "research-report.log"), "2>&1"]

    text = result.stdout
    timer = text.split("# ~/.config/systemd/user/research-report.timer\n", 1)[1].split("\n# ", 1)[0]
    service = text.split("# ~/.config/systemd/user/research-report.service\n", 1)[1].split("\n# ", 1)[0]
    assert "Persistent=true" in timer.splitlines() and "OnCalendar=*:0/10" in timer.splitlines()
    assert "Unit=research-report.service" in timer.splitlines()
    exec_start = next(x for x in service.splitlines() if x.startswith("ExecStart="))
    assert "report due --config" in exec_start and f"WorkingDirectory={home}" in service.splitlines()

    # The crontab command itself, run by a shell as cron would, runs the report that is due.
    import subprocess

    shell = subprocess.run(["/bin/sh", "-c", command.replace("\\%", "%")], capture_output=True, text=True,
                           timeout=120, cwd="/", env=subprocess_env(RESEARCH_CACHE_DIR=str(cache())))
    assert shell.returncode == 0, shell.stderr
    log = (home / "research-report.log").read_text()
    assert "nightly@" in log and ": completed" in log
    assert list((home / "reports" / "nightly").glob("20*.md"))


def test_cron_with_a_broken_file_fails_now_not_at_3am():
    write_config({"nightly": {"question": Q, "files": ["nope/"], "schedule": "0 6 * * *"}})
    result = cli("report", "cron")
    assert result.exit_code == 2 and result.stdout == ""
    assert "report 'nightly'" in result.stderr and "'files'" in result.stderr


# -- 7. report list ----------------------------------------------------------------------------

def test_list_shows_the_last_run_and_the_next_slot(tmp_path, monkeypatch):
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"local": {"extractive": {"input": 100.0, "output": 200.0}}}))
    monkeypatch.setenv("RESEARCH_PRICES", str(prices))
    corpus = notes(tmp_path / "notes", **NOTES_V1)
    write_config({"nightly": {"question": Q, "files": [str(corpus)], "schedule": "0 6 * * *",
                              "timezone": "Europe/Paris"}})
    never = cli_json("report", "list", "--now", "2026-11-20T04:00Z")
    assert never == [{"name": "nightly", "schedule": "0 6 * * *", "timezone": "Europe/Paris", "last_run": None,
                      "next_slot": "2026-11-20T05:00Z"}]  # 06:00 in Paris is 05:00 UTC in winter

    report_run("nightly", "2026-11-20")
    notes(corpus, costs=note("Running costs", "Heat pumps cost less to run than gas boilers in cold climates."))
    report_run("nightly", "2026-11-21")
    run_id = "nightly@2026-11-21T05:00Z"
    rows = cli_json("report", "list", "--now", "2026-11-21T12:00Z")
    assert len(rows) == 1 and rows[0]["next_slot"] == "2026-11-22T05:00Z"
    last = rows[0]["last_run"]
    shown = cli_json("show", run_id)["totals"]
    assert last["run_id"] == run_id and last["status"] == "completed"
    assert last["report_path"] == "reports/nightly/2026-11-21.md"
    assert last["cost_usd"] == shown["cost_usd"] > 0
    assert last["saved_usd"] == shown["saved_usd"] > 0  # the two unchanged notes' summaries replayed

    text = cli("report", "list", "--now", "2026-11-21T12:00Z")
    assert text.exit_code == 0
    assert text.stdout.startswith(f"nightly  '0 6 * * *' Europe/Paris  last {run_id} completed, cost $")
    assert text.stdout.rstrip().endswith("; next 2026-11-22T05:00Z")


# -- 8. report serve ---------------------------------------------------------------------------

def test_serve_runs_the_due_slot_then_sleeps_and_stops_on_sigterm(tmp_path):
    corpus = notes(tmp_path / "notes", **NOTES_V1)
    write_config({"served": {"question": Q, "files": [str(corpus)], "schedule": "0 6 * * *"}},
                 tmp_path / "research.toml")
    now = _dt.datetime.now(_dt.timezone.utc)
    slot = now.replace(hour=6, minute=0, second=0, microsecond=0)
    if slot > now:
        slot -= _dt.timedelta(days=1)
    proc = research_proc("report", "serve", env=subprocess_env(RESEARCH_CACHE_DIR=str(cache())), cwd=tmp_path)
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        for line in proc.stdout:
            lines.put(line.rstrip("\n"))
        lines.put(None)  # type: ignore[arg-type]

    threading.Thread(target=pump, daemon=True).start()
    seen: list[str] = []
    try:
        deadline = time.monotonic() + 60
        while not (seen and seen[-1] is not None and seen[-1].startswith("next:")):
            assert time.monotonic() < deadline, seen
            seen.append(lines.get(timeout=max(0.1, deadline - time.monotonic())))
            assert seen[-1] is not None, (seen, proc.stderr.read())
        assert seen[0] == "serving 1 report from research.toml"
        runs = [x for x in seen[1:-1]]
        assert len(runs) == 1 and runs[0].startswith(f"served@{utc_slot_label(slot)}: completed ("), seen
        assert seen[-1] == f"next: served at {utc_slot_label(slot + _dt.timedelta(days=1))}"
        time.sleep(0.3)  # asleep until tomorrow's slot
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=10)
        took = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert code == 0 and took < 3, (code, took)
    rest = []
    while (item := lines.get(timeout=5)) is not None:
        rest.append(item)
    assert rest == ["stopped"]
    assert proc.stderr.read() == ""
    proc.stdout.close()
    proc.stderr.close()
    assert attempts(f"served@{utc_slot_label(slot)}") == 1
    assert (tmp_path / "reports" / "served" / f"{slot:%Y-%m-%d}.md").exists()


def test_serve_stopped_by_sigterm_during_a_run_keeps_its_steps_and_says_so_in_one_line(tmp_path):
    corpus = notes(tmp_path / "notes", **NOTES_V1)
    write_config({"served": {"question": Q, "files": [str(corpus)], "schedule": "0 6 * * *"}},
                 tmp_path / "research.toml")
    env = subprocess_env(RESEARCH_CACHE_DIR=str(cache()), RESEARCH_LOCAL_LATENCY="0.5")
    proc = research_proc("report", "serve", env=env, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 60
        while completed_events(cache()) < 1:  # read as the server writes it (its tables may not exist yet)
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)  # the slot's run is under way: its first steps are done
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, (out, err)
    assert err.strip().splitlines() == [
        "error: stopped during a run; its completed steps are kept and the slot resumes at the next start"], err
    (run_id, status), = journal("SELECT run_id, status FROM runs")
    assert status == "interrupted"
    kept = journal("SELECT COUNT(*) FROM events WHERE run_id = ? AND status = 'completed'", run_id)[0][0]
    assert kept >= 1


@pytest.mark.parametrize("command", [["report", "run", "served"], ["report", "due"]], ids=["run", "due"])
def test_sigterm_during_a_scheduled_run_says_which_run_to_resume_and_it_resumes(tmp_path, command):
    corpus = notes(tmp_path / "notes", **NOTES_V1)
    write_config({"served": {"question": Q, "files": [str(corpus)], "schedule": "0 6 * * *"}},
                 tmp_path / "research.toml")
    env = subprocess_env(RESEARCH_CACHE_DIR=str(cache()), RESEARCH_LOCAL_LATENCY="0.5")
    proc = research_proc(*command, env=env, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 60
        while completed_events(cache()) < 1:
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    (run_id, status), = journal("SELECT run_id, status FROM runs")
    assert proc.returncode == 143, (out, err)
    assert err.strip().splitlines() == [f"error: terminated (SIGTERM); completed steps are saved; continue with: "
                                        f"research resume {run_id}"], err
    assert status == "interrupted"
    resumed = research_run("resume", run_id, env=subprocess_env(RESEARCH_CACHE_DIR=str(cache())), cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert journal("SELECT status FROM runs WHERE run_id = ?", run_id) == [("completed",)]


# -- 9. bad config -----------------------------------------------------------------------------

GOOD = {"question": Q, "urls": ["https://example.org/heat"], "schedule": "0 6 * * *"}


@pytest.mark.parametrize("change, field", [
    ({"keep": 0}, "'keep'"),
    ({"schedule": "0 6 * *"}, "'schedule'"),
    ({"timezone": "Mars/Olympus_Mons"}, "'timezone'"),
    ({"webhook": "ftp://hooks.example.org/x"}, "'webhook'"),
    ({"urls": ["example.org/heat"]}, "'urls'"),
    ({"max_cost": -1}, "'max_cost'"),
    ({"formats": ["pdf"]}, "'formats'"),
    ({"files": ["no/such/dir"]}, "'files'"),
    ({"search": True}, "'search'"),
    ({"shedule": "0 6 * * *"}, "'shedule'"),
])
def test_a_bad_field_is_one_line_exit_2_and_writes_nothing(tmp_path, change, field):
    write_config({"nightly": {**GOOD, **change}})
    for args in (("report", "run", "nightly", "--at", "2026-11-20"), ("report", "due", "--now", "2026-11-20T08:00Z"),
                 ("report", "list")):
        result = cli(*args)
        assert result.exit_code == 2, (args, result.stdout, result.stderr)
        assert result.stderr.count("\n") == 1 and result.stdout == "", (args, result.stderr)
        assert result.stderr.startswith("error: ") and "report 'nightly'" in result.stderr and field in result.stderr
    assert not cache().exists()
    assert not Path("reports").exists()
    assert sorted(p.name for p in Path.cwd().iterdir()) == ["research.toml"]


def test_an_unknown_report_or_a_bad_time_is_one_line_and_exit_2():
    write_config({"nightly": GOOD})
    for args, words in ((("report", "run", "weekly"), ["no report named 'weekly'", "known reports: nightly"]),
                        (("report", "run", "nightly", "--at", "tomorrow"), ["--at 'tomorrow'"]),
                        (("report", "due", "--now", "2026-13-01T00:00Z"), ["--now '2026-13-01T00:00Z'"]),
                        (("report", "list", "--now", "soon"), ["--now 'soon'"])):
        result = cli(*args)
        assert result.exit_code == 2 and result.stderr.count("\n") == 1, (args, result.stderr)
        assert all(w in result.stderr for w in words), (args, result.stderr)
    assert not cache().exists() and not Path("reports").exists()


def test_one_broken_report_stops_every_report_before_anything_runs():
    write_config({"good": GOOD, "broken": {**GOOD, "schedule": "61 6 * * *"}})
    result = cli("report", "run", "good", "--at", "2026-11-20")
    assert result.exit_code == 2
    assert "report 'broken'" in result.stderr and "'schedule'" in result.stderr
    assert not cache().exists() and not Path("reports").exists()
