"""What the web view shows: runs, one run, scheduled reports and their nights, read from the store.

Everything here reads through :class:`agent.runs.Workspace` and returns plain data for the templates,
which escape it. Nothing here writes. Text that came from elsewhere (errors, webhook outcomes) goes
through :func:`agent.secrets.redact` first, so a key echoed into an error never reaches a page.
"""

from __future__ import annotations

import datetime as _dt
import shlex
import time
from pathlib import Path
from typing import Any

from agent.journal import totals
from agent.secrets import redact

STATUSES = ("running", "waiting", "completed", "failed", "stopped", "interrupted", "rejected", "expired")
#: A run whose wait was approved but that no process has taken up yet (its row still says waiting).
APPROVED = "approved"
#: A run waiting for the batches it handed to vendors' batch APIs, not for a person.
BATCHES = "waiting for batches"
FORMATS = ("md", "html", "json")
#: The most runs the runs page lists, newest first.
RUN_LIMIT = 500
#: The most nights a report's chart draws.
NIGHTS = 30
#: Report files larger than this are linked, not rendered.
MAX_RENDER_BYTES = 5_000_000


# -- formatting, for the templates --------------------------------------------------------------

def money(value: float | None, complete: bool = True) -> str:
    if value is None:
        return "unknown"
    return f"${value:.4f}" + ("" if complete else " + unpriced calls")


def when(ts: float | None) -> str:
    if ts is None:
        return ""
    return _dt.datetime.fromtimestamp(ts, tz=_dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"


def markdown_html(text: str) -> str:
    """Markdown as HTML with raw HTML escaped, never passed through (markdown-it, ``html=False``);
    markdown-it also refuses ``javascript:`` and similar link targets."""
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": False}).enable("table").render(text)


# -- runs ----------------------------------------------------------------------------------------

def _status(run: dict[str, Any]) -> str:
    """The journal's status, with an approved wait no process took up yet named as such."""
    if run["status"] == "waiting" and not run.get("waiting"):
        return APPROVED
    if run["status"] == "waiting" and run["waiting"]["stage"] == "batch":
        return BATCHES
    return run["status"]


def _run_seconds(run: dict[str, Any], now: float) -> float:
    end = run.get("finished_at") or (now if run["status"] == "running" else run.get("updated_at") or now)
    return max(0.0, end - run["started_at"])


def run_rows(workspace: Any, *, status: str = "", report: str = "", pipeline: str = "") -> dict[str, Any]:
    """The runs page: runs newest first, filtered, with what each paid, replayed, failed and cost."""
    now = time.time()
    every = workspace.journal.list_runs()
    choices = {
        "status": sorted({_status(r) for r in every} | set(STATUSES), key=_status_order),
        "report": sorted({r["report"] for r in every if r.get("report")}),
        "pipeline": sorted({r["pipeline"] for r in every}),
    }
    counts: dict[str, int] = {}
    for run in every:
        counts[_status(run)] = counts.get(_status(run), 0) + 1
    chosen = [r for r in every if (not status or _status(r) == status) and (not report or r.get("report") == report)
              and (not pipeline or r["pipeline"] == pipeline)]
    rows = []
    for run in chosen[:RUN_LIMIT]:
        t = totals(workspace.journal.iter_steps(run["run_id"]))
        rows.append({"run_id": run["run_id"], "status": _status(run), "question": redact(run["question"]),
                     "pipeline": run["pipeline"], "report": run.get("report"), "started": when(run["started_at"]),
                     "duration": duration(_run_seconds(run, now)), "totals": t,
                     "cost": money(t["cost_usd"], t["cost_complete"]), "saved": money(t["saved_usd"], t["saved_complete"])})
    return {"rows": rows, "choices": choices, "counts": counts, "shown": len(rows), "matched": len(chosen),
            "live": any(r["status"] == "running" for r in rows)}


def _status_order(status: str) -> tuple[int, str]:
    order = ("waiting", APPROVED, BATCHES, "running") + STATUSES
    return (order.index(status) if status in order else len(order), status)


_EXPLAIN = {
    "running": "Running: a process holds this run and is working on it; this page follows it.",
    "waiting": "Waiting for a person's approval before its {stage} stage. Nothing runs and nothing is paid "
               "until someone approves or rejects it.",
    APPROVED: "Approved: a process is taking it up; its completed steps replay and the rest are paid for.",
    BATCHES: "Waiting for the vendors' batch APIs to answer what it handed over. Nothing runs meanwhile; "
             "resuming it collects what is ready and hands over the next stage.",
    "completed": "Completed: the report was written.",
    "failed": "Failed: {error}. Its completed steps are kept; resuming it pays only for what is left.",
    "stopped": "Stopped before a paid call would have gone past its budget: {error}. Resume it with a new budget.",
    "interrupted": "Interrupted: the process running it stopped (it was killed, crashed or was stopped with "
                   "Ctrl-C). Its completed steps are kept; resume it to continue.",
    "rejected": "Rejected: a person ended it at its wait for approval. It pays for nothing more.",
    "expired": "Expired: nobody approved it in time. Start a new run to try again.",
}


def explain(status: str, *, error: str | None, stage: str | None) -> str:
    said = (error or "no reason was recorded").rstrip(".")
    return _EXPLAIN.get(status, status).format(error=said, stage=stage or "next")


def commands(run_id: str, status: str, *, flags: list[str], config: str | None, pipeline: str) -> list[dict[str, str]]:
    """The commands that act on the run from a shell, naming this view's store (and reports file)."""
    tail = f" {shlex.join(flags)}" if flags else ""
    if config and pipeline == "report":
        tail += f" --config {shlex.quote(config)}"
    rid = shlex.quote(run_id)
    if status == "waiting":
        return [{"what": "approve it", "command": f"research approve {rid} --note TEXT{tail}"},
                {"what": "reject it", "command": f"research reject {rid}{tail}"}]
    if status == BATCHES:
        return [{"what": "collect what is ready", "command": f"research resume {rid} --no-wait{tail}"},
                {"what": "wait for its batches here", "command": f"research resume {rid}{tail}"}]
    if status == "stopped":
        return [{"what": "resume it with a new budget", "command": f"research resume {rid} --max-cost USD{tail}"}]
    if status in ("failed", "interrupted", APPROVED):
        return [{"what": "resume it", "command": f"research resume {rid}{tail}"}]
    if status == "running":
        return [{"what": "wait for it, then continue it if it stops", "command": f"research resume {rid} --wait{tail}"}]
    if status == "completed":
        return [{"what": "see it in the terminal", "command": f"research show {rid}{tail}"}]
    return []


def _how(step: dict[str, Any]) -> str:
    return "failed" if step["status"] == "failed" else ("replayed" if step["replayed"] else "paid")


def run_detail(workspace: Any, run_id: str, *, flags: list[str] = (), config: str | None = None) -> dict[str, Any]:
    """One run: its stages and steps, totals, errors in words, the command that resumes it, its webhook
    calls, its wait, and which report files exist."""
    summary = workspace.summary(run_id)
    run = workspace.journal.get_run(run_id)
    status = _status(run)
    steps = []
    stages: dict[str, list[dict[str, Any]]] = {}
    for step in summary["steps"]:
        shown = {**step, "how": _how(step), "name": redact(step["name"]),
                 "error": redact(step["error"]) if step.get("error") else None,
                 "cost": money(step["cost_usd"]) if _how(step) == "paid" else "",
                 "saved": money(step["saved_usd"]) if step["replayed"] else "",
                 "took": duration(step["duration_s"]),
                 "tokens": _tokens(step)}
        steps.append(shown)
        stages.setdefault(step["name"].split(" ", 1)[0] or step["kind"], []).append(step)
    stage_rows = []
    for name, members in stages.items():
        t = totals(members)
        stage_rows.append({"name": name, "totals": t, "cost": money(t["cost_usd"], t["cost_complete"]),
                           "took": duration(sum(s["duration_s"] or 0.0 for s in members))})
    t = summary["totals"]
    waiting = summary.get("waiting")
    error = redact(run["error"]) if run.get("error") else None
    return {
        "run_id": run_id, "status": status, "question": redact(run["question"]), "pipeline": run["pipeline"],
        "report": run.get("report"), "models": summary["models"], "attempts": run["attempts"],
        "started": when(run["started_at"]),
        "finished": when(run["finished_at"]) if status not in ("waiting", APPROVED, "running") else "",
        "duration": duration(_run_seconds(run, time.time())), "holder": run.get("holder"),
        "explain": explain(status, error=error, stage=waiting["stage"] if waiting else None),
        "error": error, "totals": t, "cost": money(t["cost_usd"], t["cost_complete"]),
        "saved": money(t["saved_usd"], t["saved_complete"]), "stages": stage_rows, "steps": steps,
        "waiting": waiting and {"stage": waiting["stage"], "since": when(waiting["since"]),
                                "until": when(waiting["until"]) if waiting.get("until") else "no time limit"},
        "commands": commands(run_id, status, flags=list(flags), config=config, pipeline=run["pipeline"]),
        "effects": [_effect(e) for e in summary.get("effects", [])],
        "files": sorted(report_files(run)),
        "report_path": redact(run["report_path"]) if run.get("report_path") else None,
        "live": run["status"] == "running",
    }


def _tokens(step: dict[str, Any]) -> str:
    if step.get("input_tokens") is None and step.get("output_tokens") is None:
        return ""
    return f"{step.get('input_tokens') or 0:,} in / {step.get('output_tokens') or 0:,} out"


def _effect(effect: dict[str, Any]) -> dict[str, Any]:
    detail = effect.get("detail") or {}
    return {"effect": effect["effect"], "status": effect["status"],
            "attempts": detail.get("attempts", effect["attempts"]), "at": when(effect["at"]),
            "http_status": detail.get("http_status"), "url": redact(str(detail["url"])) if detail.get("url") else "",
            "error": redact(str(detail["error"])) if detail.get("error") else ""}


def report_files(run: dict[str, Any]) -> dict[str, Path]:
    """The run's report files that exist: its report path and the other formats it wrote beside it.

    Only paths the journal names (and their siblings of the same stem) are ever served. A relative
    path is relative to where the run was made; the view looks for it from its own directory.
    """
    if not run.get("report_path"):
        return {}
    base = Path(run["report_path"])
    formats = set((run.get("config") or {}).get("formats") or []) | {base.suffix.lstrip(".")}
    found = {}
    for fmt in FORMATS:
        path = base.with_suffix(f".{fmt}")
        if fmt in formats and path.is_file():
            found[fmt] = path
    return found


def report_markdown(run: dict[str, Any]) -> str | None:
    path = report_files(run).get("md")
    if path is None or path.stat().st_size > MAX_RENDER_BYTES:
        return None
    return path.read_text(encoding="utf-8", errors="replace")


# -- scheduled reports ---------------------------------------------------------------------------

def reports_overview(workspace: Any, config: str | None, now: _dt.datetime) -> dict[str, Any]:
    """Every scheduled report (from the reports file when there is one, and from the journal): its
    schedule and next slot, its nights with what each cost and what changed, and the chart."""
    from agent.errors import UsageError
    from agent.reportfile import load_reports, resolve_config_path
    from agent.schedule import next_slot, slot_label

    specs: dict[str, Any] = {}
    notice = None
    try:
        specs = dict(load_reports(config).reports)
    except UsageError as exc:
        notice = (f"no reports file at {resolve_config_path(config)}: showing the reports the journal knows"
                  if exc.message.startswith("no reports file") else exc.one_line())
    known = {r["report"] for r in workspace.journal.list_runs() if r.get("report")}
    reports = []
    for name in list(specs) + sorted(known - set(specs)):
        spec = specs.get(name)
        runs = workspace.journal.report_runs(name)
        nights = _nights(workspace, runs[:NIGHTS])
        reports.append({
            "name": name, "question": spec.question if spec else (runs[0]["question"] if runs else ""),
            "schedule": spec.schedule if spec else None, "timezone": spec.timezone if spec else None,
            "next_slot": slot_label(next_slot(spec.schedule, spec.timezone, now)) if spec else None,
            "in_file": spec is not None, "nights": nights, "chart": bar_chart(list(reversed(nights))),
            "runs": len(runs),
        })
    return {"reports": reports, "notice": notice}


def _nights(workspace: Any, runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The report's runs, latest slot first, each with its totals and what changed since the one before."""
    nights = []
    for i, run in enumerate(runs):
        t = totals(workspace.journal.iter_steps(run["run_id"]))
        earlier = next((r for r in runs[i + 1:] if r["status"] == "completed" and r.get("outcome")), None)
        changes_md = _changes_section(run)
        nights.append({
            "run_id": run["run_id"], "status": _status(run), "slot": _slot_label(run),
            "cost_usd": t["cost_usd"], "cost": money(t["cost_usd"], t["cost_complete"]),
            "saved": money(t["saved_usd"], t["saved_complete"]), "totals": t,
            "changes_html": markdown_html(changes_md) if changes_md else None,
            "changes": [] if changes_md else _outcome_changes(run, earlier),
        })
    return nights


def _slot_label(run: dict[str, Any]) -> str:
    from agent.schedule import slot_label

    if run.get("slot") is None:
        return run["run_id"]
    return slot_label(_dt.datetime.fromtimestamp(run["slot"], tz=_dt.timezone.utc))


_CHANGES = "## What changed since the last report"


def _changes_section(run: dict[str, Any]) -> str | None:
    """The report file's own "What changed" section, as Markdown, when the file is here to read."""
    try:
        text = report_markdown(run)
    except OSError:
        return None
    if not text or _CHANGES not in text:
        return None
    section = text.split(_CHANGES, 1)[1]
    lines = []
    for line in section.splitlines():
        if line.startswith("## "):
            break
        lines.append(line)
    return "\n".join(lines).strip() or None


def _outcome_changes(run: dict[str, Any], earlier: dict[str, Any] | None) -> list[str]:
    """What changed, from the journal's outcomes when the report file is not at hand."""
    now = run.get("outcome")
    if run["status"] != "completed" or not now:
        return []
    if earlier is None:
        return ["The first report: nothing earlier to compare with."]
    before = earlier["outcome"]
    old = {s["uri"]: s for s in before.get("sources", [])}
    new = {s["uri"]: s for s in now.get("sources", [])}
    said = []
    for label, items in (("New sources", [s for u, s in new.items() if u not in old]),
                         ("Changed sources", [s for u, s in new.items() if u in old and old[u]["digest"] != s["digest"]]),
                         ("Removed sources", [s for u, s in old.items() if u not in new])):
        if items:
            said.append(f"{label}: " + "; ".join(s["title"] or s["uri"] for s in items))
    if not said:
        said.append("No source changed.")
    said.append("The findings are the same as before." if now.get("findings") == before.get("findings")
                else "The findings changed.")
    return said


def bar_chart(nights: list[dict[str, Any]], *, height: int = 140, bar: int = 26, gap: int = 12) -> dict[str, Any]:
    """Geometry of a bar chart of each night's cost, oldest first, for the template to draw as SVG.

    A night with no cost still gets a sliver, so every night shows; an unknown cost (an unpriced
    model) is a hatched bar of its own height marked "?"."""
    left, top_pad, bottom = 56, 16, 34
    plot = height - top_pad - bottom
    known = [n["cost_usd"] for n in nights if n["cost_usd"] is not None]
    top = max(known, default=0.0)
    bars = []
    for i, night in enumerate(nights):
        value = night["cost_usd"]
        if value is None:
            h, kind = plot // 3, "unknown"
        else:
            h, kind = (max(2, round(value / top * plot)) if top > 0 else 2), "cost"
        x = left + gap + i * (bar + gap)
        bars.append({"x": x, "y": top_pad + plot - h, "w": bar, "h": h, "kind": kind, "run_id": night["run_id"],
                     "label": f"{night['slot']}: cost {night['cost']}, saved {night['saved']} ({night['status']})",
                     "day": night["slot"][5:10] if len(night["slot"]) >= 10 else night["slot"][:5],
                     "text_x": x + bar / 2})
    width = left + gap + max(1, len(nights)) * (bar + gap) + 8
    return {"width": width, "height": height, "bars": bars, "left": left, "base": top_pad + plot,
            "top_y": top_pad, "top_label": money(top) if top > 0 else "", "day_y": top_pad + plot + 16}
