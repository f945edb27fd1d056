"""Running any pipeline as a journaled run: open or resume it, gate its paid calls, write its report.

``execute`` is what the CLI, the scheduler and the notebook class call, whatever the pipeline. It
opens the cache directory, starts (or reopens) the run in the journal under its lease, gives the
pipeline's stages a runtime whose gate enforces ``--max-cost``, stops calls after a fatal error or a
lost lease, writes the report files, and records how the run ended and what it found (the outcome a
later scheduled report compares itself with). ``resume`` rebuilds a run from its journal row, routed
by the pipeline that made it.
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import os
import shutil
from pathlib import Path
from typing import Any, Callable, Iterable

from agent.errors import (BudgetExceeded, ProviderError, ResearchError, RunRejected, RunStopped, RunWaiting, SourceError,
                          UsageError)
from agent.journal import RunBusy, totals
from agent.runs import Workspace, new_run_id
from agent.secrets import redact
from agent.steps import StepSpec, reset_runtime, use_runtime
from pipelines import get_pipeline
from pipelines.base import FORMATS, NoProgress, Pipeline, Progress, RunOptions


def check_formats(formats: Iterable[str]) -> list[str]:
    out = []
    for fmt in formats:
        for part in fmt.split(","):
            part = part.strip().lower()
            if not part:
                continue
            if part not in FORMATS:
                raise UsageError(f"unknown report format {part!r}", hint=f"--format takes {', '.join(FORMATS)}")
            if part not in out:
                out.append(part)
    return out or ["md"]


def check_out_dir(out_dir: str) -> Path:
    """Fail before any paid call, not after all of them, if reports could not be written to ``out_dir``.

    Nothing is created here (bad input writes nothing): the directory, or the nearest ancestor that
    exists, must be a writable directory.
    """
    path = Path(out_dir)
    probe = path
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    problem = None
    if not probe.is_dir():
        problem = f"{probe} is not a directory"
    elif not os.access(probe, os.W_OK | os.X_OK):
        problem = f"{probe} is not writable"
    if problem:
        raise UsageError(f"cannot write reports to {out_dir}: {problem}", hint="pass --out with a writable directory")
    return path


def _write(path: Path, write: Callable[[Any], None]) -> None:
    """What ``write(file)`` writes, to ``path``: whole or not at all."""
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", encoding="utf-8") as out:
        write(out)
    tmp.replace(path)


def _copy(source: Path, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    shutil.copyfile(source, tmp)
    tmp.replace(path)


def write_outputs(result: Any, options: RunOptions) -> dict[str, str]:
    """``DIR/STEM.FMT`` for each format (and ``DIR/latest.FMT``); ``keep`` prunes the oldest stems."""
    from pipelines.report import write

    out_dir = Path(options.out_dir)
    stem = options.stem or result.run_id
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        paths = {}
        for fmt in options.formats:
            path = out_dir / f"{stem}.{fmt}"
            # Written to the file as made: the JSON report streams its sources' texts, never all at once.
            _write(path, lambda out, fmt=fmt: write(result, fmt, out))
            paths[fmt] = str(path)
            if options.latest:
                _copy(path, out_dir / f"latest.{fmt}")
        if options.keep:
            prune(out_dir, options.keep, protect=stem)
    except OSError as exc:
        raise UsageError(f"cannot write the report to {out_dir}: {exc.strerror or exc}",
                         hint="pass --out with a writable directory") from exc
    return paths


def prune(out_dir: Path, keep: int, *, protect: str | None = None) -> list[Path]:
    """Remove all but the newest ``keep`` reports (by stem, which sorts by date) in ``out_dir``.

    Only report files this project writes are touched (``STEM.md|html|json``, never ``latest.*``),
    and never ``protect`` (the report just written, even when it is an old slot run again); the cache
    is never pruned: an old report's steps still replay for free.
    """
    stems = sorted({p.stem for p in out_dir.iterdir()
                    if p.is_file() and p.suffix[1:] in FORMATS and p.stem != "latest" and not p.name.startswith(".")})
    removed = []
    for stem in (s for s in (stems[:-keep] if keep < len(stems) else []) if s != protect):
        for fmt in FORMATS:
            path = out_dir / f"{stem}.{fmt}"
            if path.exists():
                path.unlink()
                removed.append(path)
    return removed


def _finish(workspace: Workspace, run_id: str, status: str, **fields: Any) -> None:
    """Record how a run ended; when the journal itself cannot be written, the error that got us here
    is the one to report, not this one."""
    lease = workspace.leases.get(run_id)
    try:
        workspace.journal.finish_run(run_id, status, holder=lease.holder if lease is not None else None, **fields)
    except ResearchError:
        pass


def lost_results(workspace: Workspace, run_id: str, pins: dict[str, str]) -> tuple[int, float]:
    """Completed steps of ``run_id`` whose stored results are gone, and what paying for them again costs."""
    missing = {key for key, digest in pins.items() if workspace.store.get_pinned(key, digest) is None}
    if not missing:
        return 0, 0.0
    cost = sum(s["cost_usd"] or 0.0 for s in workspace.journal.iter_steps(run_id) if s["key"] in missing)
    return len(missing), cost


async def execute(pipeline: Pipeline | str, inputs: Any, options: RunOptions, *, progress: Progress | None = None,
                  report: str | None = None, slot: float | None = None,
                  warn: Callable[[str], None] | None = None, wait: bool = False,
                  say: Callable[[str], None] | None = None) -> Any:
    """Run (or resume) one run of ``pipeline`` and write its report; see the module docstring."""
    if isinstance(pipeline, str):
        pipeline = get_pipeline(pipeline)
    inputs = pipeline.normalize(inputs)
    options.formats = check_formats(options.formats)
    check_out_dir(options.out_dir)
    workspace = Workspace.open(options.cache_dir)
    run_id = options.run_id or new_run_id()
    lease = None
    try:
        workflow_ref: list[Any] = []

        def gate(spec: StepSpec) -> None:
            """Before every paid call, async or plain (``@durable`` functions in a run go through it too)."""
            workflow = workflow_ref[0]
            if workflow.fatal is not None:
                raise workflow.fatal
            if lease is not None and lease.lost:
                lost = ResearchError(f"run {run_id} was taken over by another process after its lease expired")
                workflow.fatal = RunStopped(lost.message, run_id=run_id, cause=lost, hint="let that process finish it")
                raise workflow.fatal
            if options.max_cost is not None and spec.kind == "llm":
                from agent.budget import estimate

                spent = prior_cost + runtime.spent_usd
                guess = estimate(spec)
                if spent + guess > options.max_cost:
                    raise BudgetExceeded(
                        f"the next call ({spec.name}) could cost up to ${guess:.4f}; ${spent:.4f} of the "
                        f"${options.max_cost:.4f} budget is spent",
                    )

        while True:
            try:
                runtime = workspace.start(run_id, question=inputs.question, inputs=inputs.to_json(),
                                          config=options.to_json(), gate=gate, pipeline=pipeline.name,
                                          pipeline_version=pipeline.version, report=report, slot=slot)
                break
            except RunBusy:
                if not wait:
                    raise
                await asyncio.sleep(1.0)  # the holder finishes, or its lease runs out
        # What earlier attempts of this run spent (a holder we waited for included) counts against its budget.
        prior_cost = totals(workspace.journal.iter_steps(run_id))["cost_usd"] or 0.0
        lease = workspace.leases[run_id]
        if report is not None and slot is not None and options.latest:
            # latest.* is the newest slot's report: an older slot run again must not take its place.
            options.latest = not any(r["status"] == "completed" and (r["slot"] or 0) > slot
                                     for r in workspace.journal.report_runs(report))
        if runtime.pins:
            lost, lost_cost = lost_results(workspace, run_id, runtime.pins)
            if lost:
                # Said before anything is paid: the cache lost what the journal says this run completed.
                message = (f"{lost} completed step{'s' if lost != 1 else ''} of run {run_id} lost their stored "
                           f"results (the cache was emptied or replaced); paying for them again costs about "
                           f"${lost_cost:.4f}")
                if options.max_cost is not None and prior_cost + lost_cost > options.max_cost:
                    _finish(workspace, run_id, "stopped", error=message)
                    raise RunStopped(f"run {run_id} stopped: {message}, past the ${options.max_cost:.4f} budget",
                                     run_id=run_id, cause=BudgetExceeded(message), exit_code=BudgetExceeded.exit_code,
                                     hint=f"resume with a larger budget: research resume {run_id} --max-cost USD")
                if warn is not None:
                    warn(message)
        run = workspace.journal.get_run(run_id)
        started = _dt.datetime.fromtimestamp(run["started_at"], tz=_dt.timezone.utc).strftime("%Y-%m-%d")
        if progress is not None and hasattr(progress, "on_step"):
            runtime.listeners.append(progress.on_step)
        token = use_runtime(runtime)
        try:
            workflow = pipeline.workflow(runtime, inputs, options, progress or NoProgress(), started)
        except BaseException as exc:
            _finish(workspace, run_id, "failed", error=redact(str(exc)))
            reset_runtime(token)
            raise
        workflow_ref.append(workflow)
        if say is not None:
            workflow.say = say
        try:
            result = await workflow.run()
            workspace.journal.flush()
            if options.batch:  # what did not go as asked, from the journal: a resumed run says it alike
                from agent.batches import batch_notes

                result.notes = list(dict.fromkeys(result.notes + batch_notes(workspace.journal, run_id)))
            result.totals = totals(workspace.journal.iter_steps(run_id))
            result.totals["this_attempt"] = workspace.journal.attempt_counts(run_id, runtime.attempt)
            # A source that failed without a step (remembered from an earlier run) is a failure all the same.
            result.totals["failed"] = max(result.totals["failed"], len(getattr(result, "failed", [])))
            result.report_paths = write_outputs(result, options)
        except BudgetExceeded as exc:
            _finish(workspace, run_id, "stopped", error=redact(exc.one_line()))
            raise RunStopped(f"run {run_id} stopped before going over budget: {exc.message}", run_id=run_id,
                             cause=exc, exit_code=BudgetExceeded.exit_code,
                             hint=f"completed steps are kept; continue with: research resume {run_id} --max-cost USD") from exc
        except RunWaiting:
            _finish(workspace, run_id, "waiting")
            raise
        except RunRejected as exc:
            _finish(workspace, run_id, exc.status)
            raise
        except RunStopped as exc:
            _finish(workspace, run_id, "failed", error=redact(exc.one_line()))
            raise
        except (ProviderError, SourceError) as exc:  # a source error gets here only when it is fatal
            _finish(workspace, run_id, "failed", error=redact(exc.one_line()))
            raise RunStopped(f"run {run_id} stopped: {exc.message}", run_id=run_id, cause=exc) from exc
        except ResearchError as exc:
            _finish(workspace, run_id, "failed", error=redact(exc.one_line()))
            raise
        except BaseException as exc:
            interrupted = isinstance(exc, (KeyboardInterrupt, asyncio.CancelledError))
            _finish(workspace, run_id, "interrupted" if interrupted else "failed",
                                         error=redact(f"{type(exc).__name__}: {exc}"))
            raise
        finally:
            reset_runtime(token)
            await workflow.aclose()
        outcome = result.outcome() if hasattr(result, "outcome") else None
        _finish(workspace, run_id, "completed", report_path=result.report_paths.get("md")
                                     or next(iter(result.report_paths.values()), None), outcome=outcome)
        return result
    finally:
        workspace.close()


def resume(cache_dir: str | None, run_id: str, **overrides: Any) -> tuple[Pipeline, Any, RunOptions, dict[str, Any]]:
    """The pipeline, inputs and options a run was started with, to run it again under the same id."""
    workspace = Workspace.open(cache_dir)
    try:
        run = workspace.journal.get_run(run_id)
    finally:
        workspace.close()
    pipeline = get_pipeline(run["pipeline"])
    inputs = pipeline.inputs.from_json(run["inputs"])
    options = RunOptions.from_json(run["config"], cache_dir=cache_dir, run_id=run_id, **overrides)
    return pipeline, inputs, options, run
