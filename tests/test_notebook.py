"""The notebook surface: ``Research`` sync and async, and the example notebook executed offline."""

import asyncio

import nbformat
import pytest
from nbclient import NotebookClient

from agent import Research, UsageError
from tests.helpers import CORPUS, QUESTION, ROOT


def test_run_then_replay(tmp_path):
    research = Research(cache_dir=tmp_path / "c", out_dir=tmp_path / "r")
    first = research.run(QUESTION, files=[CORPUS])
    second = research.run(QUESTION, files=[CORPUS])
    assert first.totals["paid"] == 12 and second.totals["paid"] == 0
    assert first.markdown.startswith(f"# {QUESTION}") and first._repr_markdown_() == first.markdown
    assert len(first.sources) == 5 and first.sources[0]["summary"]
    assert (tmp_path / "r" / f"{first.run_id}.md").read_text() == first.markdown


def test_run_inside_a_running_loop(tmp_path):
    research = Research(cache_dir=tmp_path / "c", out_dir=tmp_path / "r")

    async def inside():
        sync_result = research.run(QUESTION, files=[CORPUS])  # as in a Jupyter cell
        async_result = await research.arun(QUESTION, files=[CORPUS])
        return sync_result, async_result

    sync_result, async_result = asyncio.run(inside())
    assert sync_result.totals["paid"] == 12 and async_result.totals["replayed"] == 12


def test_errors_are_raised_not_printed(tmp_path):
    with pytest.raises(UsageError):
        Research(cache_dir=tmp_path / "c").run(QUESTION, files=[tmp_path / "missing.md"])


def test_example_notebook_executes_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("RESEARCH_REPORT_DIR", str(tmp_path / "reports"))
    nb = nbformat.read(ROOT / "examples" / "research.ipynb", as_version=4)
    NotebookClient(nb, timeout=120, kernel_name="python3",
                   resources={"metadata": {"path": str(ROOT / "examples")}}).execute()
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    markdown = [o["data"]["text/markdown"] for o in outputs if "text/markdown" in o.get("data", {})]
    assert markdown and markdown[0].startswith(f"# {QUESTION}")
    assert any("steps replayed" in o.get("text", "") for o in outputs)
    assert list((tmp_path / "reports").glob("*.md"))


def test_markdown_is_there_whatever_formats_are_written(tmp_path):
    report = Research(cache_dir=tmp_path / "c", out_dir=tmp_path / "r", formats=["html"]).run(QUESTION, files=[CORPUS])
    assert report.markdown.startswith(f"# {QUESTION}")
    assert list(report.report_paths) == ["html"]
