"""Writing a research result out: Markdown, a standalone HTML page, and JSON.

The report is assembled here, not by a model: the models write the answer and the analyses; the
sources, their numbers, the references and the list of what failed come from the run itself, so every
[n] in the report points at a source that was really read.
"""

from __future__ import annotations

import dataclasses
import html as _html
import json
import re
from dataclasses import asdict
from typing import IO, TYPE_CHECKING, Any

from agent import jsonstream

if TYPE_CHECKING:
    from pipelines.research import ResearchResult

OFFLINE_NOTE = (
    "Made with `local:extractive`, the offline default: not a language model, but a deterministic "
    "extractor that quotes the sentences of the sources most relevant to the question. Pass "
    "`--model openai:...`, `anthropic:...` or `gemini:...` for written analysis."
)


def _safe(text: str) -> str:
    """Text the report did not write itself (titles, summaries, model answers, error messages) with its
    HTML made inert: other tools render the Markdown, and a page title ``<script>`` must stay text there."""
    # Only "<" can open a tag; leaving ">" alone keeps a model's Markdown quotes working.
    return text.replace("<", "&lt;")


def _md_text(text: str) -> str:
    """Text safe inside a Markdown link label."""
    return _safe(text).replace("[", "(").replace("]", ")")


def _provenance(source: Any) -> str:
    """Where a source's text really came from and what it says of itself; the day it was read (the
    time is in the JSON report, so a resumed run's Markdown equals an uninterrupted one's)."""
    said = []
    final = getattr(source, "final_url", "")
    if final and final.rstrip("/") != source.uri.rstrip("/"):
        said.append(f"read at <{final}>")
    site = getattr(source, "site", "")
    if site and site.lower() not in (source.uri.lower() + " " + final.lower()):  # a host name says nothing new
        said.append(f"on {_safe(site)}")
    if getattr(source, "author", ""):
        said.append(f"by {_safe(source.author)}")
    if getattr(source, "published", ""):
        said.append(f"published {_safe(source.published)}")
    if getattr(source, "fetched_at", ""):
        said.append(f"fetched {source.fetched_at[:10]}")
    return f" ({', '.join(said)})" if said else ""


def _uses_local(models: list[str]) -> bool:
    """Whether the offline model wrote the report (the first model writes it); taking part is not enough."""
    return bool(models) and models[0].startswith("local:")


def _usd(value: float | None) -> str:
    return "an unknown amount" if value is None else f"${value:.4f}"


def markdown(result: "ResearchResult") -> str:
    lines = [f"# {_safe(result.question)}", ""]
    lines.append(f"Run `{result.run_id}` · {result.started_at} · models: {', '.join(f'`{m}`' for m in result.models)}"
                 f" · {len(result.sources)} source{'s' if len(result.sources) != 1 else ''}")
    lines.append("")
    totals = getattr(result, "totals", None) or {}
    if totals.get("batched"):
        lines += [f"Model calls through the vendors' batch APIs: {totals['batched']} · spent "
                  f"{_usd(totals.get('cost_usd'))}, against {_usd(totals.get('sync_cost_usd'))} at synchronous prices", ""]
    if _uses_local(result.models):
        lines += [f"> {OFFLINE_NOTE}", ""]
    if getattr(result, "changes", ""):
        lines += [_safe(result.changes.strip()), ""]
    if result.synthesis:
        lines += [_safe(result.synthesis.strip()), ""]
    else:
        lines += ["## Answer", "", "No synthesis could be written; see the failures below.", ""]
    if result.analyses:
        lines += ["## Analyses", ""]
        for analysis in result.analyses:
            lines += [f"### {analysis['model']}", "", _safe(analysis["text"].strip()), ""]
    if getattr(result, "claims_section", ""):
        lines += [_safe(result.claims_section.strip()), ""]
    lines += ["## Sources", ""]
    for source in result.sources:
        lines += [f"### [{source.id}] {_safe(source.title)}", ""]
        lines += [_safe(source.summary.strip()) if source.summary else "_No summary: it failed (see below)._", ""]
    if result.failed or result.notes:
        lines += ["## What failed or was left out", ""]
        lines += [f"- {f['stage']}: {_safe(f['what'])}: {_safe(f['error'])}" for f in result.failed]
        lines += [f"- {_safe(note)}" for note in result.notes]
        lines.append("")
    lines += ["## References", ""]
    for source in result.sources:
        if source.uri.startswith(("http://", "https://")):
            line = f"{source.id}. [{_md_text(source.title or source.uri)}]({source.uri}): <{source.uri}>"
        else:
            line = f"{source.id}. {_safe(source.title)}: {_safe(source.uri)}"
        lines.append(line + _provenance(source))
    lines.append("")
    return "\n".join(lines)


def html(result: "ResearchResult") -> str:
    from markdown_it import MarkdownIt

    # Raw HTML in model text is escaped, never passed through: a report must not run a model's markup.
    body = MarkdownIt("commonmark", {"html": False}).enable("table").render(result.markdown)
    body = _link_citations(body, {s.id for s in result.sources})
    title = _html.escape(result.question)
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body {{ font: 16px/1.6 system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 46rem; margin: 2rem auto;
       padding: 0 1rem; color: #1d1d1f; background: #fff; }}
h1 {{ font-size: 1.7rem; line-height: 1.25; }}
h2 {{ margin-top: 2rem; border-bottom: 1px solid #ddd; padding-bottom: .2rem; }}
blockquote {{ margin: 1rem 0; padding: .5rem 1rem; background: #f5f5f7; border-left: 4px solid #999; }}
code {{ background: #f0f0f2; padding: 0 .25rem; border-radius: 3px; }}
ol li, ul li {{ margin: .25rem 0; }}
</style>
</head>
<body>
{body}
</body>
</html>
"""


def _link_citations(body: str, ids: set[int]) -> str:
    """Make each [n] a link to reference n, and give the references list their anchors."""
    head, sep, refs = body.rpartition("<h2>References</h2>")
    if not sep:
        return body
    count = iter(range(1, 10**6))
    refs = re.sub(r"<li>", lambda _: f'<li id="ref-{next(count)}">', refs)
    head = re.sub(r"\[(\d+)\]", lambda m: f'<a href="#ref-{m.group(1)}">[{m.group(1)}]</a>'
                  if int(m.group(1)) in ids else m.group(0), head)
    return head + sep + refs


def write_json(result: "ResearchResult", out: IO[str]) -> None:
    """The JSON report, written to ``out`` one source at a time: each source's full text is read from
    where the run set it aside, written, and let go, so thousands of sources never sit in memory at once.
    The bytes are those of ``json.dumps(report, indent=2)``."""
    data: dict[str, Any] = asdict(dataclasses.replace(result, sources=[]))
    jsonstream.dump(data, "sources", (s.to_json() if hasattr(s, "to_json") else asdict(s) for s in result.sources), out)


def write(result: "ResearchResult", fmt: str, out: IO[str]) -> None:
    """The report in ``fmt``, written to ``out``; every format is built from ``result.markdown``, which is
    set once here (the JSON report carries it too, whatever order the formats are written in)."""
    if not result.markdown:
        result.markdown = markdown(result)
    if fmt == "md":
        out.write(result.markdown)
    elif fmt == "html":
        out.write(html(result))
    elif fmt == "json":
        write_json(result, out)
    else:
        raise ValueError(fmt)
