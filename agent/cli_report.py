"""``research report``: scheduled reports from ``research.toml``, for cron, systemd timers and containers.

- ``run NAME [--at T]`` runs the report's slot at or before T (now by default); the same slot again
  resumes or replays it. ``due`` runs every report whose latest slot is not completed, skipping
  older missed slots (and saying so); ``serve`` does that in the foreground, sleeping between slots.
- A slot that another live process is running is left to it: one line, exit 0.
- ``cron`` prints a crontab line and a systemd service and timer; ``list`` shows each report's last
  run and next slot.

Like the rest of the CLI this is an edge: errors become one line and an exit code here.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import shutil
import signal
import sys
import threading
from typing import Annotated, Any, Optional

import typer

report_app = typer.Typer(help="Scheduled reports defined in research.toml.", no_args_is_help=True)

Config = Annotated[Optional[str], typer.Option("--config", metavar="FILE", help="The reports file [default: $RESEARCH_CONFIG or ./research.toml]", show_default=False)]
from agent.cli_options import CacheDir, Debug, JsonOut, Quiet, StoreUrl, store_location  # noqa: E402
Now = Annotated[Optional[str], typer.Option("--now", metavar="DATETIME", help="Act as if it were this time (ISO date-time); for trying a schedule.")]

EXIT_FAILED = 1
#: How often ``report serve`` looks at a slot waiting for its batches.
_BATCH_LOOK_S = 60.0
EXIT_PARTIAL = 3


def _now(text: str | None) -> _dt.datetime:
    from agent.errors import UsageError
    from agent.schedule import parse_at

    if text is None:
        return _dt.datetime.now(_dt.timezone.utc)
    try:
        return parse_at(text, "UTC")
    except ValueError as exc:
        raise UsageError(f"--now {text!r}: {exc}", hint="give 2026-11-23T06:00Z") from None


def _out(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _slot_json(outcome: Any) -> dict[str, Any]:
    from agent.schedule import slot_label

    result = outcome.result
    return {"report": outcome.report, "slot": slot_label(outcome.slot), "run_id": outcome.run_id,
            "status": outcome.status, "report_paths": dict(result.report_paths) if result else {},
            "totals": outcome.totals, "webhook": outcome.webhook,
            "error": outcome.error.one_line() if outcome.error is not None else None}


def _exit_code(outcomes: list[Any]) -> int:
    codes = [EXIT_PARTIAL if o.status == "partial" else getattr(o.error, "exit_code", EXIT_FAILED)
             for o in outcomes if o.status not in ("completed", "busy", "waiting")]
    return max(codes) if codes else 0


def _run_due(reports: Any, now: _dt.datetime, *, cache_dir: str | None, quiet: bool = True,
             say=_out, stop: threading.Event | None = None) -> list[Any]:
    """Run each report whose latest slot at ``now`` is not completed; older missed slots are skipped.
    A set ``stop`` (the server asked to stop) ends the round before the next report."""
    from agent.runs import Workspace
    from agent.schedule import latest_slot, slot_label, slots_between
    from pipelines.scheduled import run_slot, slot_run_id

    outcomes = []
    for spec in reports.reports.values():
        if stop is not None and stop.is_set():
            raise KeyboardInterrupt
        slot = latest_slot(spec.schedule, spec.timezone, now)
        run_id = slot_run_id(spec, slot, cache_dir=cache_dir)
        workspace = Workspace.open(cache_dir)
        try:
            existing = workspace.journal.find_run(run_id)
            earlier = [r for r in workspace.journal.report_runs(spec.name) if r["slot"] is not None
                       and r["slot"] < slot.timestamp()]
        finally:
            workspace.close()
        if existing is not None and existing["status"] == "completed":
            say(f"{run_id}: up to date (completed)")
            continue
        batch_wait = existing is not None and (existing.get("waiting") or {}).get("stage") == "batch"
        if existing is not None and existing["status"] in ("waiting", "rejected", "expired") and not batch_wait:
            what = {"waiting": f"waiting for approval; continue with: research approve {run_id}",
                    "rejected": "rejected", "expired": "its wait for approval expired"}[existing["status"]]
            say(f"{run_id}: {what}")
            continue
        if earlier:
            last = _dt.datetime.fromtimestamp(earlier[0]["slot"], tz=_dt.timezone.utc)
            missed = slots_between(spec.schedule, spec.timezone, last, slot)[:-1]
            if missed:
                shown = ", ".join(slot_label(s) for s in missed[:5]) + (", ..." if len(missed) > 5 else "")
                say(f"{spec.name}: skipped {len(missed)} missed slot{'s' if len(missed) != 1 else ''} ({shown});"
                    f" only the latest, {slot_label(slot)}, runs")
        from agent import interrupts
        from agent.cli import _interruptible

        # 'report serve' (a stop event) handles its signals itself; 'report due' stops as 'run' does.
        with _interruptible(run_id) if stop is None else contextlib.nullcontext():
            # A batched slot never holds up the schedule: handed over now, collected by a later 'due'.
            outcome = interrupts.run(run_slot(spec, slot, cache_dir=cache_dir, wait=False))
        say(outcome.line())
        outcomes.append(outcome)
    return outcomes


def continue_report(run: dict[str, Any], *, config: str | None, cache_dir: str | None, as_json: bool,
                    quiet: bool, **overrides: Any) -> None:
    """``research resume``/``approve`` of a scheduled report's run: the report's own path, webhook included.

    The webhook URL is never journaled (it often carries a token), so it is read from the reports file
    again; without one the run still continues, and says that nobody was told.
    """
    from agent.cli import _emit_json, _progress
    from agent.errors import UsageError
    from agent.reportfile import load_reports
    from pipelines.scheduled import continue_slot

    webhook = None
    try:
        reports = load_reports(config)
        if run["report"] in reports.reports:
            webhook = reports.reports[run["report"]].webhook
    except UsageError as exc:
        sys.stderr.write(f"note: no webhook will be told of {run['run_id']}: {exc.message}\n")
    with _progress(quiet, as_json) as progress:
        from agent import interrupts
        from agent.cli import _interruptible

        with _interruptible(run["run_id"]):
            outcome = interrupts.run(continue_slot(run["run_id"], cache_dir=cache_dir, webhook=webhook,
                                                   progress=progress, **overrides))
    _finish(outcome, as_json)


def _finish(outcome: Any, as_json: bool) -> None:
    from agent.cli import _emit_json

    if as_json:
        _emit_json(_slot_json(outcome))
    else:
        if outcome.status in ("failed", "stopped") and outcome.error is not None:
            raise outcome.error
        for path in (outcome.result.report_paths.values() if outcome.result else []):
            _out(f"report: {path}")
        _out(outcome.line())
    code = _exit_code([outcome])
    if code:
        raise typer.Exit(code)


@report_app.command("run")
def report_run(
    name: Annotated[str, typer.Argument(metavar="NAME", help="The report's name in research.toml.")],
    at: Annotated[Optional[str], typer.Option("--at", metavar="DATETIME", help="Run the slot at or before this time (2026-11-23, 2026-11-23T06:00, ...Z) [default: now].")] = None,
    no_wait: Annotated[bool, typer.Option("--no-wait", help="For a batched report: stop once its batches are handed over; 'report due' or 'resume' collects them.")] = False,
    config: Config = None,
    cache_dir: CacheDir = None,
    store: StoreUrl = None,
    as_json: JsonOut = False,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Run NAME's slot (the latest at or before --at); running a slot again resumes or replays it."""
    from agent.cli import _edge, _emit_json, _progress

    with _edge(debug):
        cache_dir = store_location(store, cache_dir)
        from agent.errors import UsageError
        from agent.reportfile import load_reports
        from agent.schedule import latest_slot, parse_at
        from pipelines.scheduled import run_slot

        spec = load_reports(config).get(name)
        when = _dt.datetime.now(_dt.timezone.utc)
        if at is not None:
            try:
                when = parse_at(at, spec.timezone)
            except ValueError as exc:
                raise UsageError(f"--at {at!r}: {exc}", hint="give 2026-11-23, 2026-11-23T06:00 or 2026-11-23T06:00Z") from None
        slot = latest_slot(spec.schedule, spec.timezone, when)
        from agent.cli import _interruptible
        from pipelines.scheduled import slot_run_id

        with _progress(quiet, as_json) as progress, _interruptible(slot_run_id(spec, slot, cache_dir=cache_dir)):
            from agent import interrupts
            outcome = interrupts.run(run_slot(spec, slot, cache_dir=cache_dir, progress=progress, wait=not no_wait))
        _finish(outcome, as_json)


@report_app.command("due")
def report_due(
    config: Config = None,
    cache_dir: CacheDir = None,
    store: StoreUrl = None,
    now: Now = None,
    as_json: JsonOut = False,
    debug: Debug = False,
) -> None:
    """Run every report whose latest slot is due and not completed (put this in cron every few minutes)."""
    from agent.cli import _edge, _emit_json

    with _edge(debug):
        cache_dir = store_location(store, cache_dir)
        from agent.reportfile import load_reports

        reports = load_reports(config)
        lines: list[str] = []
        outcomes = _run_due(reports, _now(now), cache_dir=cache_dir, say=lines.append if as_json else _out)
        if as_json:
            _emit_json({"notes": lines, "runs": [_slot_json(o) for o in outcomes]})
        code = _exit_code(outcomes)
        if code:
            raise typer.Exit(code)


@report_app.command("serve")
def report_serve(
    config: Config = None,
    cache_dir: CacheDir = None,
    store: StoreUrl = None,
    debug: Debug = False,
) -> None:
    """Run due reports, then sleep until the next slot, in the foreground (a container's command).

    SIGTERM or Ctrl-C between runs stops it cleanly (exit 0); during a run, the run is interrupted,
    its completed steps kept, and the slot resumes at the next start.
    """
    from agent.cli import _edge

    with _edge(debug):
        cache_dir = store_location(store, cache_dir)
        from agent.reportfile import load_reports
        from agent.schedule import next_slot, slot_label

        reports = load_reports(config)
        stop = threading.Event()
        busy = threading.Event()

        def on_term(signum: int, frame: Any) -> None:
            from agent import interrupts

            first = not stop.is_set()
            stop.set()
            # A run in progress: stop it now, durably (cancelled from inside its loop); the slot resumes later.
            if busy.is_set() and not (first and interrupts.cancel_running()):
                raise KeyboardInterrupt

        previous = signal.signal(signal.SIGTERM, on_term)
        try:
            _out(f"serving {len(reports.reports)} report{'s' if len(reports.reports) != 1 else ''} from {reports.path}")
            while not stop.is_set():
                busy.set()
                try:
                    outcomes = _run_due(reports, _now(None), cache_dir=cache_dir, stop=stop)
                finally:
                    busy.clear()
                now = _now(None)
                upcoming = min((next_slot(s.schedule, s.timezone, now), s.name) for s in reports.reports.values())
                waiting = [o.report for o in outcomes if o.status == "waiting" and o.error is not None
                           and o.error.stage == "batch"]
                if waiting:  # batches handed over: look at them again soon, not only at the next slot
                    upcoming = min(upcoming, (now + _dt.timedelta(seconds=_BATCH_LOOK_S), waiting[0]))
                _out(f"next: {upcoming[1]} at {slot_label(upcoming[0])}")
                while not stop.is_set() and _now(None) < upcoming[0]:
                    stop.wait(min(30.0, max(0.05, (upcoming[0] - _now(None)).total_seconds())))
            _out("stopped")
        except BaseException as exc:
            import asyncio

            if not isinstance(exc, (KeyboardInterrupt, asyncio.CancelledError)) or not stop.is_set():
                raise
            from agent.cli import _err

            _err("stopped during a run; its completed steps are kept and the slot resumes at the next start")
            raise typer.Exit(130) from None
        finally:
            signal.signal(signal.SIGTERM, previous)


@report_app.command("cron")
def report_cron(
    every: Annotated[int, typer.Option("--every", metavar="MINUTES", min=1, max=59, help="Minutes between checks for due reports.")] = 5,
    config: Config = None,
    debug: Debug = False,
) -> None:
    """Print a crontab line and a systemd service + timer that run 'research report due'."""
    from agent.cli import _edge

    with _edge(debug):
        import shlex
        from pathlib import Path

        from agent.reportfile import load_reports
        from agent.schedule import crontab_line, systemd_units

        reports = load_reports(config)  # a broken file is reported now, not by cron at 3 am
        exe = shutil.which("research") or f"{sys.executable} -m agent"
        command = f"{exe} report due --config {shlex.quote(str(reports.path.absolute()))}"
        workdir = str(Path.cwd())
        _out("# crontab -e, then add:")
        _out(crontab_line(command, every, workdir=workdir, log=str(Path(workdir) / "research-report.log")))
        for filename, text in systemd_units("research-report", command, workdir, every).items():
            _out("")
            _out(f"# ~/.config/systemd/user/{filename}")
            sys.stdout.write(text)
        _out("")
        _out("# then: systemctl --user enable --now research-report.timer")


@report_app.command("list")
def report_list(
    config: Config = None,
    cache_dir: CacheDir = None,
    store: StoreUrl = None,
    now: Now = None,
    as_json: JsonOut = False,
    debug: Debug = False,
) -> None:
    """Each report: its schedule, its last run (status, cost, saved) and its next slot."""
    from agent.cli import _edge, _emit_json, _money

    with _edge(debug):
        cache_dir = store_location(store, cache_dir)
        from agent.journal import totals
        from agent.reportfile import load_reports
        from agent.runs import Workspace
        from agent.schedule import next_slot, slot_label

        reports = load_reports(config)
        moment = _now(now)
        rows = []
        workspace = Workspace.for_reading(cache_dir)
        try:
            for spec in reports.reports.values():
                runs = workspace.journal.report_runs(spec.name)
                last = None
                if runs:
                    t = totals(workspace.journal.iter_steps(runs[0]["run_id"]))
                    last = {"run_id": runs[0]["run_id"], "status": runs[0]["status"], "cost_usd": t["cost_usd"],
                            "saved_usd": t["saved_usd"], "report_path": runs[0]["report_path"]}
                rows.append({"name": spec.name, "schedule": spec.schedule, "timezone": spec.timezone,
                             "last_run": last, "next_slot": slot_label(next_slot(spec.schedule, spec.timezone, moment))})
        finally:
            workspace.close()
        if as_json:
            _emit_json(rows)
            return
        for row in rows:
            last = row["last_run"]
            told = (f"last {last['run_id']} {last['status']}, cost {_money(last['cost_usd'])}, saved {_money(last['saved_usd'])}"
                    if last else "never run")
            _out(f"{row['name']}  '{row['schedule']}' {row['timezone']}  {told}; next {row['next_slot']}")
