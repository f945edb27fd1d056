"""Waiting for people: a run stops durably before a stage, and any later process approves or rejects it."""

from __future__ import annotations

import json

from tests.conftest import subprocess_env
from tests.helpers import CORPUS, QUESTION, cli, research_run
from tests.servers import serve
from tests.servers.openai_api import OpenAIAPI


def _show(cache, run_id, env, cwd):
    return json.loads(research_run("show", run_id, "--json", "--cache-dir", cache, env=env, cwd=cwd).stdout)


def test_a_run_waits_across_processes_and_the_note_reaches_the_next_prompt(tmp_path):
    cache = tmp_path / "cache"
    fake = OpenAIAPI(key="sk-approve")
    with serve(fake) as server:
        env = subprocess_env(OPENAI_API_KEY="sk-approve", OPENAI_BASE_URL=f"{server.url}/v1")
        args = ["run", QUESTION, "--file", CORPUS, "--model", "openai:gpt-4o-mini", "--run-id", "w",
                "--cache-dir", cache, "--approve", "report", "--json"]
        first = research_run(*args, env=env, cwd=tmp_path)
        assert first.returncode == 0, first.stderr
        out = json.loads(first.stdout)
        assert (out["status"], out["waiting_for"], out["continue"]) == ("waiting", "report", "research approve w")
        asked = len(fake.answered)
        assert asked == 6  # five summaries and the analysis; the synthesis waits
        listed = json.loads(research_run("runs", "--json", "--cache-dir", cache, env=env, cwd=tmp_path).stdout)
        assert listed[0]["status"] == "waiting"
        # Looking again does not move it on, nor pay: it is still waiting.
        again = research_run("resume", "w", "--json", "--cache-dir", cache, env=env, cwd=tmp_path)
        assert json.loads(again.stdout)["status"] == "waiting" and len(fake.answered) == asked
        approved = research_run("approve", "w", "--note", "Lead with the running costs.", "--json",
                                "--cache-dir", cache, env=env, cwd=tmp_path)
        assert approved.returncode == 0, approved.stderr
        assert json.loads(approved.stdout)["status"] == "completed"
        new = fake.answered[asked:]
        assert len(new) == 1  # only the synthesis was paid for; everything before replayed
        assert "Lead with the running costs." in json.dumps(new[0].json())
        assert _show(cache, "w", env, tmp_path)["status"] == "completed"
        twice = research_run("approve", "w", "--cache-dir", cache, env=env, cwd=tmp_path)
        assert twice.returncode == 2 and "not waiting for approval (it is completed)" in twice.stderr


def test_reject_ends_the_run_and_an_expired_wait_cannot_be_approved(tmp_path):
    cache = tmp_path / "cache"
    base = ["run", QUESTION, "--file", CORPUS, "--cache-dir", cache, "--quiet"]
    assert cli(*base, "--run-id", "r", "--approve", "analyze").exit_code == 0
    rejected = cli("reject", "r", "--note", "wrong sources", "--cache-dir", cache)
    assert rejected.exit_code == 0 and "rejected" in rejected.stdout
    resumed = cli("resume", "r", "--cache-dir", cache)
    assert resumed.exit_code == 1 and "was rejected at its analyze stage" in resumed.stderr
    # A wait that may last no time at all has expired the moment it begins.
    expired = cli("run", QUESTION, "--file", CORPUS, "--cache-dir", cache, "--run-id", "x", "--approve", "analyze",
                  "--approve-timeout", "0s")
    assert expired.exit_code == 1 and "was expired at its analyze stage" in expired.stderr
    runs = {r["run_id"]: r["status"] for r in json.loads(cli("runs", "--json", "--cache-dir", cache).stdout)}
    assert runs == {"r": "rejected", "x": "expired"}
    late = cli("approve", "x", "--cache-dir", cache)
    assert late.exit_code == 2 and "expired" in late.stderr
    unknown = cli(*base, "--run-id", "y", "--approve", "lunch")
    assert unknown.exit_code == 2 and "--approve lunch" in unknown.stderr
