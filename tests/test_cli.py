"""The ``research`` CLI on the offline default model: runs, replays, listings, errors."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import subprocess_env
from tests.helpers import CORPUS, QUESTION, ROOT, cli, cli_json, research_run


def run_json(*extra):
    return cli_json("run", QUESTION, "--file", CORPUS, *extra)


def test_offline_run_writes_a_cited_report():
    out = run_json("--run-id", "r1")
    assert out["run_id"] == "r1" and out["status"] == "completed"
    report = Path(out["report_path"]).read_text()
    assert out["report_path"] == os.path.join("reports", "r1.md")
    assert report.startswith(f"# {QUESTION}")
    assert "local:extractive" in report and "not a language model" in report
    refs = re.findall(r"^(\d+)\. .+: (.+)$", report, flags=re.M)
    assert len(refs) == 5
    cited = {int(n) for n in re.findall(r"\[(\d+)\]", report)}
    assert cited and cited <= {int(n) for n, _ in refs}
    # boilerplate of the HTML source never reaches the report
    assert "cookies" not in report.lower() and "All rights reserved" not in report
    totals = out["totals"]
    assert totals["failed"] == 0 and totals["replayed"] == 0 and totals["paid"] == totals["calls"] == 12


def test_rerun_replays_everything_for_free():
    first = run_json()
    second = run_json()
    assert second["run_id"] != first["run_id"]
    assert second["totals"]["paid"] == 0 and second["totals"]["replayed"] == first["totals"]["calls"]
    assert Path(first["report_path"]).read_text().split("\n", 3)[3] == Path(second["report_path"]).read_text().split("\n", 3)[3]


def test_run_id_reuse_with_other_inputs_is_refused():
    run_json("--run-id", "same")
    result = cli("run", "Another question?", "--file", CORPUS, "--run-id", "same")
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and "already exists with different inputs" in result.stderr


def test_show_and_runs_json_contract():
    run_json("--run-id", "r1")
    shown = cli_json("show", "r1")
    assert {"run_id", "status", "question", "report_path", "steps", "totals"} <= set(shown)
    step = shown["steps"][0]
    assert {"kind", "name", "provider", "model", "key", "status", "replayed", "input_tokens", "output_tokens",
            "cost_usd", "duration_s"} <= set(step)
    assert {s["kind"] for s in shown["steps"]} == {"scrape", "llm"}
    assert set(shown["totals"]) >= {"calls", "paid", "replayed", "failed", "cost_usd", "saved_usd"}
    runs = cli_json("runs")
    assert runs[0]["run_id"] == "r1" and runs[0]["status"] == "completed"
    assert {"run_id", "status", "started_at", "question", "cost_usd"} <= set(runs[0])


def test_resume_of_a_completed_run_replays_it():
    run_json("--run-id", "r1")
    out = cli_json("resume", "r1")
    assert out["status"] == "completed" and out["totals"]["paid"] == 12
    shown = cli_json("show", "r1")
    assert shown["totals"]["paid"] == 12  # paid once, by this run, in its first attempt


def test_editing_a_prompt_reruns_only_the_steps_it_renders(tmp_path):
    run_json()
    prompts = tmp_path / "prompts"
    prompts.mkdir()
    text = (ROOT / "prompts" / "analyze.j2").read_text().replace("List the key findings", "List the main findings")
    (prompts / "analyze.j2").write_text(text)
    out = run_json("--prompts", prompts)
    steps = cli_json("show", out["run_id"])["steps"]
    paid = sorted(s["name"].split()[0] for s in steps if not s["replayed"])
    # The analysis prompt changed, so it was paid again; the offline model's analysis text came out the
    # same, so the report prompt that embeds it rendered the same and replayed.
    assert paid == ["analyze"]


def test_cache_stats_and_clear():
    run_json()
    stats = cli_json("cache", "stats")
    assert stats["kinds"]["llm"]["entries"] == 7 and stats["kinds"]["scrape"]["entries"] == 5
    result = cli("cache", "clear", "--kind", "llm", "--yes")
    assert result.exit_code == 0 and "removed 7" in result.stdout
    assert "llm" not in cli_json("cache", "stats")["kinds"]
    again = run_json()
    assert again["totals"]["paid"] == 7 and again["totals"]["replayed"] == 5


def test_formats_write_side_by_side():
    out = run_json("--run-id", "f1", "--format", "md,html,json")
    paths = out["report_paths"]
    assert set(paths) == {"md", "html", "json"}
    assert Path(paths["html"]).read_text().startswith("<!doctype html>")
    data = json.loads(Path(paths["json"]).read_text())
    assert data["run_id"] == "f1" and len(data["sources"]) == 5 and data["totals"]["calls"] == 12


def one_line_error(result, code, *needles):
    assert result.exit_code == code, (result.stdout, result.stderr)
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in result.stderr, result.stderr


def test_bad_input_is_one_line_and_writes_nothing(tmp_path):
    one_line_error(cli("run", QUESTION, "--file", "missing.md"), 2, "no such file", "--file")
    one_line_error(cli("run", QUESTION, "--file", CORPUS, "--model", "nope:x"), 2, "unknown provider")
    one_line_error(cli("run", QUESTION, "--file", CORPUS, "--model", "gpt4"), 2, "PROVIDER:MODEL")
    one_line_error(cli("run", QUESTION, "--file", CORPUS, "--model", "local:gpt"), 2, "unknown local model")
    one_line_error(cli("run", QUESTION), 2, "no sources")
    one_line_error(cli("run", "  ", "--file", CORPUS), 2, "question is empty")
    one_line_error(cli("run", QUESTION, "--file", CORPUS, "--run-id", "bad id!"), 2, "run id")
    one_line_error(cli("run", QUESTION, "--file", CORPUS, "--max-age", "soon"), 2, "duration")
    one_line_error(cli("run", QUESTION, "--file", CORPUS, "--format", "pdf"), 2, "format")
    one_line_error(cli("show", "nope"), 2, "no run with id")
    one_line_error(cli("resume", "nope"), 2, "no run with id")
    assert sorted(os.listdir(".")) == []  # nothing written: not even a cache or report dir


def test_missing_openai_key_fails_before_anything_runs():
    one_line_error(cli("run", QUESTION, "--file", CORPUS, "--model", "openai:gpt-4o-mini"), 2, "OPENAI_API_KEY")


def test_unreadable_store_is_one_line(tmp_path):
    bad = tmp_path / "cache-file"
    bad.write_text("x")
    one_line_error(cli("runs", "--cache-dir", bad / "inner"), 1, "cache")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "journal.sqlite3").write_bytes(b"this is not a database" * 100)
    one_line_error(cli("runs", "--cache-dir", broken), 1, "journal")


def test_clear_without_yes_refuses_when_not_interactive():
    run_json()
    one_line_error(cli("cache", "clear"), 2, "--yes")


def test_real_process_bad_flag_is_one_line(tmp_path):
    result = research_run("run", QUESTION, "--no-such-flag", env=subprocess_env(), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert "--no-such-flag" in result.stderr


def test_help_does_not_import_sdks(tmp_path):
    code = ("import sys\nfrom agent.cli import main\nsys.argv = ['research', 'run', '--help']\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "heavy = [m for m in ('openai', 'anthropic', 'google.genai', 'firecrawl', 'trafilatura', 'pypdf') if m in sys.modules]\n"
            "print('HEAVY', heavy)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=subprocess_env(), cwd=tmp_path)
    assert "--model" in out.stdout
    assert "HEAVY []" in out.stdout, out.stdout


def test_quickstart_command_from_a_checkout(tmp_path):
    """The README's main command, run as a user would, from the project root."""
    env = subprocess_env(RESEARCH_CACHE_DIR=str(tmp_path / "cache"))
    result = research_run("run", QUESTION, "--file", "examples/corpus", "--out", tmp_path / "reports", env=env, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("report: ") and "12 steps: 12 paid" in result.stdout
    assert result.stderr == ""  # piped output stays clean: no progress display


def test_dotenv_is_read(tmp_path):
    Path(".env").write_text("RESEARCH_CACHE_DIR=from-dotenv\n")
    env = subprocess_env()
    env.pop("RESEARCH_CACHE_DIR", None)
    shutil.copytree(CORPUS, "corpus")
    result = research_run("run", QUESTION, "--file", "corpus", env=env, cwd=os.getcwd())
    assert result.returncode == 0, result.stderr
    assert Path("from-dotenv/journal.sqlite3").exists()


def test_progress_shows_on_a_terminal_only(tmp_path):
    """On a terminal (a real pty) stderr shows the stages; with --quiet, or piped, it stays empty."""
    import pty

    env = subprocess_env(RESEARCH_CACHE_DIR=str(tmp_path / "cache"), COLUMNS="100")

    def on_pty(*extra):
        master, slave = pty.openpty()
        proc = subprocess.Popen([sys.executable, "-m", "agent", "run", QUESTION, "--file", str(CORPUS), *extra],
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave, cwd=tmp_path, env=env)
        os.close(slave)
        chunks = []
        while True:
            try:
                data = os.read(master, 4096)
            except OSError:  # the child closed its end
                break
            if not data:
                break
            chunks.append(data)
        proc.wait(timeout=60)
        os.close(master)
        return proc, b"".join(chunks).decode("utf-8", "replace")

    proc, screen = on_pty()
    assert proc.returncode == 0
    for stage in ("scrape", "summarize", "analyze", "report"):
        assert stage in screen
    assert "12 replayed" in screen or "12 paid" in screen
    proc, screen = on_pty("--quiet")
    assert proc.returncode == 0 and screen.strip() == ""


def test_html_report_links_citations_and_escapes_markup():
    out = run_json("--run-id", "h1", "--format", "html")
    page = Path(out["report_paths"]["html"]).read_text()
    assert '<a href="#ref-1">[1]</a>' in page and '<li id="ref-5">' in page
    assert "<script" not in page
