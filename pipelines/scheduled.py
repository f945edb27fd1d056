"""Scheduled reports: the research pipeline once per schedule slot, saying what changed since the last one.

A report named in ``research.toml`` runs as pipeline ``report``: the research stages, then a "What
changed since the last report" section comparing tonight with the previous *completed* slot of the
same report. Which sources are new, changed (their text differs) or gone comes from the journal's
record of that run; whether the findings changed is its own durable model step (``changes.j2``),
skipped when neither the sources nor the findings changed, so an unchanged night pays nothing.

The run id is the report name and its slot (``nightly@2026-11-23T06:00Z``), so a slot run twice, by
a crash or by two schedulers, resumes or replays rather than paying again; the run's lease makes the
second of two simultaneous schedulers step aside. Reports go to ``OUT/NAME/2026-11-23.md`` with a
``latest.md`` copy; a webhook, if configured, is told of each outcome once (see :func:`notify`).
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent import schedule
from agent.errors import BatchWaiting, ResearchError, RunStopped, RunWaiting
from agent.journal import RunBusy, totals
from agent.reportfile import ReportSpec
from pipelines.base import Pipeline, Progress, RunOptions
from pipelines.research import ResearchInputs, ResearchResult, ResearchWorkflow, normalize_inputs

VERSION = 1


@dataclass
class ReportInputs(ResearchInputs):
    """A research question plus the report and slot it answers for."""

    report: str = ""
    slot: float = 0.0  # the slot's instant, seconds since the epoch (UTC)
    timezone: str = "UTC"  # the schedule's, for the report's date


def normalize_report_inputs(inputs: ReportInputs) -> ReportInputs:
    base = normalize_inputs(inputs)
    return ReportInputs(**{**base.to_json(), "report": inputs.report, "slot": float(inputs.slot),
                           "timezone": inputs.timezone})  # base.to_json() carries check_with when set


def _label(ts: float) -> str:
    return schedule.slot_label(_dt.datetime.fromtimestamp(ts, tz=_dt.timezone.utc))


class ReportWorkflow(ResearchWorkflow):
    """The research stages, then the comparison with the report's previous completed slot."""

    templates = ResearchWorkflow.templates + ("changes",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The report is dated by its slot, not by when a (possibly resumed) attempt started.
        from zoneinfo import ZoneInfo

        slot = _dt.datetime.fromtimestamp(self.inputs.slot, tz=ZoneInfo(self.inputs.timezone))
        self.started_at = slot.strftime("%Y-%m-%d %H:%M %Z")

    def previous(self) -> dict[str, Any] | None:
        """The latest completed run of this report for an earlier slot, if any."""
        journal = self.runtime.journal
        if journal is None:
            return None
        for run in journal.report_runs(self.inputs.report):
            if run["status"] == "completed" and run["slot"] is not None and run["slot"] < self.inputs.slot \
                    and run.get("outcome"):
                return run
        return None

    async def run(self) -> ResearchResult:
        result = await super().run()
        result.changes = await self.changes(result, self.previous())
        return result

    async def changes(self, result: ResearchResult, previous: dict[str, Any] | None) -> str:
        lines = ["## What changed since the last report", ""]
        if previous is None:
            lines += [f"This is the first report of `{self.inputs.report}`: there is no earlier one to compare with.", ""]
            return "\n".join(lines)
        before = previous["outcome"]
        lines += [f"Compared with the report for {_label(previous['slot'])} (run `{previous['run_id']}`).", ""]
        old = {s["uri"]: s for s in before.get("sources", [])}
        now = {s.uri: s for s in result.sources}
        failed_now = {f["what"].split(" ", 1)[-1] for f in result.failed}
        added = [s for uri, s in now.items() if uri not in old]
        changed = [s for uri, s in now.items() if uri in old and old[uri]["digest"] != s.digest]
        gone = [s for uri, s in old.items() if uri not in now]
        for title, items in (("New sources", [f"[{s.id}] {s.title}" for s in added]),
                             ("Changed sources", [f"[{s.id}] {s.title}" for s in changed])):
            if items:
                lines += [f"- {title}: " + "; ".join(items)]
        unread = [s for s in gone if s["uri"] in failed_now]
        removed = [s for s in gone if s["uri"] not in failed_now]
        if removed:
            lines += ["- Removed sources: " + "; ".join(f"{s['title']} ({s['uri']})" for s in removed)]
        if unread:
            lines += ["- Could not be read this time: " + "; ".join(f"{s['title']} ({s['uri']})" for s in unread)]
        if not (added or changed or gone):
            lines += ["- No source changed."]
        lines.append("")
        current, earlier = result.findings(), list(before.get("findings", []))
        if current == earlier:
            lines += ["The findings are the same as in the last report.", ""]
            return "\n".join(lines)
        if not current:
            lines += ["No findings could be compared: this report has no answer (see what failed below).", ""]
            return "\n".join(lines)
        (text,) = await self.each("changes", [None], lambda _: self.compare(earlier, current), lambda _: "what changed")
        if text is None:
            lines += ["The findings could not be compared with the last report's (see what failed below).", ""]
        else:
            lines += ["Findings:", "", text.strip(), ""]
        return "\n".join(lines)

    async def compare(self, previous: list[str], current: list[str]) -> str:
        provider = self.providers[0]
        return await self.ask(
            provider, "changes", f"changes with {provider.model_id}",
            {"task": "changes", "question": self.inputs.question, "previous": previous, "current": current},
            question=self.inputs.question, previous=previous, current=current,
        )


PIPELINE = Pipeline(name="report", version=VERSION, inputs=ReportInputs, normalize=normalize_report_inputs,
                    workflow=ReportWorkflow, templates=ReportWorkflow.templates)


# -- running a report's slot -------------------------------------------------------------------

@dataclass
class SlotRun:
    """What became of one slot: its run, its report files, and the webhook's delivery."""

    report: str
    slot: _dt.datetime
    run_id: str
    status: str  # completed, partial (report written, some steps failed), failed, stopped, busy
    result: ResearchResult | None = None
    error: ResearchError | None = None
    totals: dict[str, Any] = field(default_factory=dict)
    webhook: dict[str, Any] | None = None

    def line(self) -> str:
        """One line for logs: which slot, how it went, what it cost."""
        t = self.totals
        def usd(value: float | None) -> str:
            return "unknown" if value is None else f"${value:.4f}"

        money = f"cost {usd(t.get('cost_usd'))}, saved {usd(t.get('saved_usd'))}" if t else ""
        steps = f"{t['paid']} paid, {t['replayed']} replayed, {t['failed']} failed; " if t else ""
        this = t.get("this_attempt")
        if this and this["attempt"] > 1:
            steps = (f"attempt {this['attempt']}: {this['paid']} paid, {this['replayed']} replayed, {this['failed']} failed;"
                     f" whole run: {steps}")
        where = f" -> {self.result.report_paths.get('md') or next(iter(self.result.report_paths.values()), '')}" \
            if self.result and self.result.report_paths else ""
        why = f": {self.error.one_line()}" if self.error is not None and self.status != "busy" else ""
        if self.status == "busy":
            why = f": {self.error.message}; this process leaves it to that one" if self.error else ""
        return f"{self.run_id}: {self.status}{why}" + (f" ({steps}{money})" if t else "") + where


def slot_run_id(spec: ReportSpec, slot: _dt.datetime, *, cache_dir: str | None = None) -> str:
    """``NAME@SLOT``; or, when that run was made from another definition of the report (the file was
    edited since), ``NAME@SLOT+HASH`` of the new inputs, so every process with the same file agrees."""
    from agent.keys import content_hash
    from agent.runs import Workspace

    base = f"{spec.name}@{schedule.slot_label(slot)}"
    fingerprint = content_hash(normalize_report_inputs(slot_inputs(spec, slot)).to_json())
    workspace = Workspace.open(cache_dir)
    try:
        run = workspace.journal.find_run(base)
    finally:
        workspace.close()
    if run is None or run["fingerprint"] == fingerprint:
        return base
    return f"{base}+{fingerprint.rsplit(':', 1)[-1][:8]}"


def slot_inputs(spec: ReportSpec, slot: _dt.datetime) -> ReportInputs:
    return ReportInputs(question=spec.question, files=list(spec.files), urls=list(spec.urls), models=list(spec.models),
                        search=spec.search, depth=spec.depth, breadth=spec.breadth, report=spec.name,
                        slot=slot.timestamp(), timezone=spec.timezone, check_with=spec.check_with)


def slot_options(spec: ReportSpec, slot: _dt.datetime, *, cache_dir: str | None, run_id: str) -> RunOptions:
    # Without a max_age every slot reads its web sources again; unchanged pages replay their summaries.
    return RunOptions(cache_dir=cache_dir, out_dir=str(Path(spec.out_dir) / spec.name), formats=list(spec.formats),
                      max_cost=spec.max_cost, max_age=spec.max_age if spec.max_age is not None else 0.0,
                      run_id=run_id, stem=schedule.slot_stem(spec.schedule, spec.timezone, slot),
                      latest=True, keep=spec.keep, allow_private_hosts=spec.allow_private_hosts,
                      approve=list(spec.approve), approve_timeout=spec.approve_timeout,
                      batch=spec.batch, batch_min=spec.batch_min)


async def run_slot(spec: ReportSpec, slot: _dt.datetime, *, cache_dir: str | None = None,
                   progress: Progress | None = None, wait: bool = True) -> SlotRun:
    """Run (resume, or replay) ``spec``'s run for ``slot``, then tell its webhook once.

    Never raises for the run's own failures: they are the returned :class:`SlotRun`'s status, so a
    scheduler goes on to its next report. A slot another live process holds comes back ``busy``.
    """
    run_id = slot_run_id(spec, slot, cache_dir=cache_dir)
    options = slot_options(spec, slot, cache_dir=cache_dir, run_id=run_id)
    options.no_wait = spec.batch and not wait  # a batched slot handed over: a later 'report due' collects it
    return await _slot(spec.name, slot, run_id, slot_inputs(spec, slot), options,
                       webhook=spec.webhook, cache_dir=cache_dir, progress=progress)


async def continue_slot(run_id: str, *, cache_dir: str | None = None, webhook: str | None = None,
                        progress: Progress | None = None, **overrides: Any) -> SlotRun:
    """Continue a report's run from its journal row (``research resume`` and ``research approve`` of a
    scheduled report come here): the same path as :func:`run_slot`, webhook included."""
    from pipelines.runner import resume

    _, inputs, options, run = resume(cache_dir, run_id, **overrides)
    slot = _dt.datetime.fromtimestamp(run["slot"] or inputs.slot, tz=_dt.timezone.utc)
    return await _slot(inputs.report, slot, run_id, inputs, options, webhook=webhook, cache_dir=cache_dir,
                       progress=progress)


async def _slot(report: str, slot: _dt.datetime, run_id: str, inputs: ReportInputs, options: RunOptions, *,
                webhook: str | None, cache_dir: str | None, progress: Progress | None) -> SlotRun:
    from pipelines.runner import execute

    try:
        result = await execute(PIPELINE, inputs, options, progress=progress, report=report, slot=slot.timestamp())
    except RunBusy as exc:
        return SlotRun(report, slot, run_id, "busy", error=exc)
    except RunWaiting as exc:
        outcome = SlotRun(report, slot, run_id, "waiting", error=exc, totals=_run_totals(cache_dir, run_id))
    except ResearchError as exc:
        status = "stopped" if isinstance(exc, RunStopped) and exc.exit_code == 4 else "failed"
        outcome = SlotRun(report, slot, run_id, status, error=exc, totals=_run_totals(cache_dir, run_id))
    else:
        status = "partial" if result.totals.get("failed") else "completed"
        outcome = SlotRun(report, slot, run_id, status, result=result, totals=result.totals)
    outcome.webhook = notify(webhook, outcome, cache_dir=cache_dir)
    return outcome


def _run_totals(cache_dir: str | None, run_id: str) -> dict[str, Any]:
    from agent.runs import Workspace

    workspace = Workspace.open(cache_dir)
    try:
        return totals(workspace.journal.iter_steps(run_id)) if workspace.journal.find_run(run_id) else {}
    finally:
        workspace.close()


def payload(outcome: SlotRun) -> dict[str, Any]:
    """The webhook's JSON: which report and slot, how it ended, where the report is, what it cost and changed."""
    result = outcome.result
    return {
        "report": outcome.report,
        "slot": schedule.slot_label(outcome.slot),
        "run_id": outcome.run_id,
        "status": outcome.status,
        "paths": dict(result.report_paths) if result else {},
        "cost_usd": outcome.totals.get("cost_usd"),
        "saved_usd": outcome.totals.get("saved_usd"),
        "failed_steps": outcome.totals.get("failed"),
        "changes": [line[2:] for line in (result.changes.splitlines() if result else []) if line.startswith("- ")][:20],
        "error": outcome.error.one_line() if outcome.error is not None and outcome.status != "waiting" else None,
        "waiting_for": outcome.error.stage if outcome.status == "waiting" else None,
        "continue": outcome.error.continue_with if outcome.status == "waiting" else None,
    }


def notify(webhook: str | None, outcome: SlotRun, *, cache_dir: str | None = None) -> dict[str, Any] | None:
    """POST the outcome to the report's webhook, once per event, recorded in the journal before it fires.

    A completed slot is one event however often it is replayed; each failed attempt is its own. A
    failing webhook never fails the run: its delivery is recorded (``research show`` has it).
    """
    if not webhook:
        return None
    if outcome.status == "waiting" and isinstance(outcome.error, BatchWaiting):
        return None  # waiting on a vendor is no news for people: its completion will be
    from agent.runs import Workspace
    from agent.webhook import deliver, redact_url

    workspace = Workspace.open(cache_dir)
    try:
        run = workspace.journal.find_run(outcome.run_id)
        attempt = run["attempts"] if run else 0
        if outcome.status in ("completed", "partial"):
            effect = "webhook:completed"
        elif outcome.status == "waiting":
            effect = f"webhook:waiting:{outcome.error.stage}"  # once per wait, however often it is looked at
        else:
            effect = f"webhook:{outcome.status}:{attempt}"
        if not workspace.journal.begin_effect(outcome.run_id, effect):
            return {"effect": effect, "status": "already sent"}
        delivery = deliver(webhook, payload(outcome), event_id=f"{outcome.run_id}/{effect}")
        detail = {**delivery.to_json(), "url": redact_url(webhook)}
        workspace.journal.end_effect(outcome.run_id, effect, delivery.status, detail)
        return {"effect": effect, **detail}
    finally:
        workspace.close()
