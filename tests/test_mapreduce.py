"""Sources longer than the model's context are summarized in parts, then combined."""

from pathlib import Path

from pipelines import chunking
from tests.helpers import cli_json


def long_document(paragraphs: int) -> str:
    return "# A very long field study\n\n" + "\n\n".join(
        f"Paragraph {i} of the study reports that heat pump number {i} kept a seasonal efficiency of "
        f"{2 + (i % 10) / 10:.1f} through a cold winter in region {i % 7}. The installers noted that careful "
        f"commissioning of unit {i} mattered more than the outdoor temperature did." for i in range(paragraphs)
    )


def test_split_respects_the_budget_and_keeps_all_text():
    text = long_document(300)
    parts = chunking.split(text, 1000)
    assert len(parts) > 5
    assert all(chunking.approx_tokens(p) <= 1000 + 60 for p in parts)
    assert "".join(parts).replace("\n", "") == text.replace("\n", "")


def test_long_source_is_summarized_in_parts_and_combined():
    Path("docs").mkdir()
    Path("docs/long.md").write_text(long_document(400))  # ~ 80k chars, past the offline model's 4k-token half context
    Path("docs/short.md").write_text("# Short note\n\nHeat pumps work in cold climates when they are sized well.\n")
    out = cli_json("run", "Do heat pumps keep their efficiency in cold winters?", "--file", "docs", "--run-id", "mr")
    steps = cli_json("show", "mr")["steps"]
    names = [s["name"] for s in steps if s["kind"] == "llm"]
    parts = [n for n in names if " part " in n]
    assert len(parts) >= 4
    # Summaries start as each file is read, before numbering: they are named by the file.
    assert any(n.startswith("combine ") and n.endswith("long.md") for n in names)
    assert any(n.startswith("summarize ") and n.endswith("short.md") for n in names)
    report = Path(out["report_path"]).read_text()
    assert "### [1] A very long field study" in report
    again = cli_json("run", "Do heat pumps keep their efficiency in cold winters?", "--file", "docs")
    assert again["totals"]["paid"] == 0
