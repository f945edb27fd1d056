"""The pipeline seam: journals of the first release migrate, runs record their pipeline, resume routes by
it, a third-party pipeline plugs in through an entry point, and hosted models' keys did not move."""

from __future__ import annotations

import json
import shutil
import sqlite3
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from agent.errors import UsageError
from agent.journal import SCHEMA_VERSION, Journal
from agent.llm import CompletionRequest, llm_spec
from agent.providers import get_provider
from pipelines import get_pipeline
from tests.helpers import CORPUS, QUESTION, cli, cli_json

RELEASE_0_1 = Path(__file__).parent / "data" / "release-0.1.0"


@pytest.fixture
def old_cache(tmp_path):
    """A cache directory written by release 0.1.0: one completed research run of 12 steps."""
    cache = tmp_path / "old-cache"
    shutil.copytree(RELEASE_0_1, cache)
    return cache


def _user_version(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("PRAGMA user_version").fetchone()[0]
    finally:
        conn.close()


def test_a_journal_of_the_first_release_opens_and_migrates(old_cache):
    assert _user_version(old_cache / "journal.sqlite3") == 0
    summary = cli_json("show", "old-release", "--cache-dir", old_cache)
    assert summary["status"] == "completed" and summary["pipeline"] == "research"
    assert summary["totals"]["paid"] == 12 and summary["totals"]["failed"] == 0
    assert _user_version(old_cache / "journal.sqlite3") == SCHEMA_VERSION
    (row,) = cli_json("runs", "--cache-dir", old_cache)
    assert row["run_id"] == "old-release" and row["status"] == "completed"
    stats = cli_json("cache", "stats", "--cache-dir", old_cache)
    assert stats["entries"] == 12  # the old results are still readable


def test_a_migrated_journal_indexes_events_by_run_in_order_and_reads_them_through_it(old_cache):
    cli_json("show", "old-release", "--cache-dir", old_cache)  # opened, so migrated
    conn = sqlite3.connect(old_cache / "journal.sqlite3")
    try:
        indexes = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'"
                                                    " AND tbl_name = 'events'")}
        plan = " ".join(str(row) for row in conn.execute("EXPLAIN QUERY PLAN SELECT key FROM events"
                                                         " WHERE run_id = ? ORDER BY id", ("old-release",)))
    finally:
        conn.close()
    assert "events_run_order" in indexes and "events_run" not in indexes  # inserts no longer sort by key
    assert "events_run_order" in plan


def test_two_processes_opening_an_old_journal_migrate_it_once(old_cache):
    errors: list[BaseException] = []

    def open_it():
        try:
            Journal(old_cache).close()
        except BaseException as exc:  # pragma: no cover - the assertion below reports it
            errors.append(exc)

    threads = [threading.Thread(target=open_it) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    conn = sqlite3.connect(old_cache / "journal.sqlite3")
    columns = [r[1] for r in conn.execute("PRAGMA table_info(runs)")]
    conn.close()
    assert columns.count("pipeline") == 1 and "holder" in columns


def test_a_journal_from_a_newer_release_is_refused_in_one_line(tmp_path):
    cache = tmp_path / "c"
    Journal(cache).close()
    conn = sqlite3.connect(cache / "journal.sqlite3")
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    result = cli("runs", "--cache-dir", cache)
    assert result.exit_code == 2
    assert "newer release" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_hosted_step_keys_are_those_of_the_first_release(monkeypatch):
    """The offline operation joined the request, but hosted keys must not move: old caches keep replaying."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    provider = get_provider("openai:gpt-4o-mini")
    request = CompletionRequest(prompt="Summarize this.", system="You summarize.", max_tokens=2048,
                                context={"task": "summarize", "question": "q", "source": {"title": "t", "text": "x"}},
                                offline="extract")
    # Computed with release 0.1.0 for the same request (which had no offline field).
    assert llm_spec(provider, request, "n").key == \
        "v1:llm:8d778ccf84900a25697ef758bef33eebb28b3dd225a0e53292e738f2981046f3"
    local = get_provider("local:extractive")
    other = CompletionRequest(**{**request.__dict__, "offline": "findings"})
    assert llm_spec(local, request, "n").key != llm_spec(local, other, "n").key


def test_runs_record_their_pipeline_and_resume_routes_by_it(tmp_path):
    cache = tmp_path / "c"
    out = cli_json("run", QUESTION, "--file", CORPUS, "--run-id", "r1", "--cache-dir", cache)
    assert out["status"] == "completed"
    conn = sqlite3.connect(cache / "journal.sqlite3")
    assert conn.execute("SELECT pipeline, pipeline_version FROM runs WHERE run_id = 'r1'").fetchone() == ("research", 1)
    conn.execute("UPDATE runs SET pipeline = 'nonesuch' WHERE run_id = 'r1'")
    conn.commit()
    conn.close()
    result = cli("resume", "r1", "--cache-dir", cache)
    assert result.exit_code == 2 and "no pipeline named 'nonesuch'" in result.stderr


PLUGIN = '''
"""A third-party pipeline: one module plus its prompt."""
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pipelines.base import Pipeline, Stages
from pipelines.research import ResearchResult, Source


@dataclass
class EchoInputs:
    question: str
    text: str
    models: list = field(default_factory=lambda: ["local:extractive"])

    def to_json(self):
        return asdict(self)

    @classmethod
    def from_json(cls, data):
        return cls(**data)


class EchoStages(Stages):
    template_dir = str(Path(__file__).parent / "echo_prompts")

    def __init__(self, runtime, inputs, options, progress, started_at):
        super().__init__(runtime, inputs, options, progress, started_at, models=inputs.models)

    async def run(self):
        source = {"title": "given", "text": self.inputs.text}
        (answer,) = await self.each("echo", [None], lambda _: self.ask(
            self.providers[0], "echo", "echo", {"question": self.inputs.question, "source": source},
            question=self.inputs.question, source=source), lambda _: "echo")
        return ResearchResult(run_id=self.runtime.run_id, status="completed", question=self.inputs.question,
                              models=self.inputs.models, started_at=self.started_at,
                              sources=[Source(id=1, uri="given", title="given", text=self.inputs.text, summary=answer)],
                              synthesis="## Answer\\n\\n" + answer)


PIPELINE = Pipeline(name="echo", version=3, inputs=EchoInputs, normalize=lambda i: i, workflow=EchoStages)
'''


@pytest.fixture
def echo_plugin(tmp_path, monkeypatch):
    """A package installed as a real distribution (dist-info with an entry point) on sys.path."""
    site = tmp_path / "site"
    (site / "echo_prompts").mkdir(parents=True)
    (site / "echo_pipeline.py").write_text(textwrap.dedent(PLUGIN))
    (site / "echo_prompts" / "echo.j2").write_text(
        "{% block system %}Echo.{% endblock %}{% block user %}{{ question }}: {{ source.text }}{% endblock %}"
        "{% block offline %}extract{% endblock %}")
    dist = site / "echo_pipeline-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: echo-pipeline\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[durable_research.pipelines]\necho = echo_pipeline:PIPELINE\n")
    monkeypatch.syspath_prepend(str(site))
    yield site
    sys.modules.pop("echo_pipeline", None)


def test_a_third_party_pipeline_runs_and_resumes_through_the_cli(echo_plugin, tmp_path):
    import asyncio

    from pipelines.base import RunOptions
    from pipelines.runner import execute

    pipeline = get_pipeline("echo")
    assert pipeline.version == 3
    cache = tmp_path / "c"
    inputs = pipeline.inputs(question="Do heat pumps work?", text="Heat pumps work in the cold. They cost little to run.")
    result = asyncio.run(execute("echo", inputs, RunOptions(cache_dir=str(cache), run_id="e1", out_dir=str(tmp_path / "out"))))
    assert "Heat pumps work in the cold" in result.synthesis
    assert (tmp_path / "out" / "e1.md").exists()
    # The journal knows which pipeline made the run; resume rebuilds it without knowing it beforehand.
    resumed = cli_json("resume", "e1", "--cache-dir", cache)
    assert resumed["status"] == "completed"
    assert resumed["totals"]["this_attempt"] == {"attempt": 2, "paid": 0, "replayed": 1, "failed": 0}
    assert cli_json("show", "e1", "--cache-dir", cache)["pipeline"] == "echo"


def test_an_unknown_pipeline_is_a_usage_error():
    with pytest.raises(UsageError) as info:
        get_pipeline("nonesuch")
    assert "research" in info.value.one_line() and "report" in info.value.one_line()


def test_the_offline_model_refuses_an_operation_it_does_not_have(tmp_path):
    import asyncio

    from agent.errors import UsageError as Usage

    local = get_provider("local:extractive")
    with pytest.raises(Usage, match="no operation 'dance'"):
        asyncio.run(local.complete(CompletionRequest(prompt="p", offline="dance")))
    text = asyncio.run(local.complete(CompletionRequest(
        prompt="p", offline="compare",
        context={"previous": ["Heat pumps cost more to run than gas boilers in Norway."],
                 "current": ["Heat pumps cost more to run than gas boilers in Norway.",
                             "Grants now cover half of the installation price."]}))).text
    assert text == "- New: Grants now cover half of the installation price."
    assert json.loads(asyncio.run(local.complete(CompletionRequest(
        prompt="p", offline="queries", context={"question": "heat pumps", "breadth": 1,
                                                "summaries": [{"id": 1, "text": "Vapour injection compressors help."}]}
    ))).text)["queries"]
