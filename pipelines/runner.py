"""Running a research workflow as a journaled run: open or resume it, execute it, write the report.

``execute`` is what the CLI and the notebook class call. It opens the cache directory, starts (or
reopens) the run in the journal, gives the workflow a runtime whose gate enforces ``--max-cost`` and
stops calls after a fatal error, writes the report files, and records how the run ended.
"""

from __future__ import annotations

import asyncio
import datetime as _dt
from pathlib import Path
from typing import Any, Iterable

from agent.config import resolve_cache_dir
from agent.errors import BudgetExceeded, ProviderError, ResearchError, RunStopped, SourceError, UsageError
from agent.journal import totals
from agent.runs import Workspace, new_run_id
from agent.secrets import redact
from agent.steps import StepSpec, reset_runtime, use_runtime
from pipelines.report import render
from pipelines.research import (
    FORMATS,
    NoProgress,
    Progress,
    ResearchInputs,
    ResearchOptions,
    ResearchResult,
    Workflow,
    normalize_inputs,
)


def _write_outputs(result: ResearchResult, options: ResearchOptions) -> dict[str, str]:
    out_dir = Path(options.out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        paths = {}
        for fmt in options.formats:
            path = out_dir / f"{result.run_id}.{fmt}"
            tmp = path.with_suffix(path.suffix + ".tmp")
            tmp.write_text(render(result, fmt), encoding="utf-8")
            tmp.replace(path)
            paths[fmt] = str(path)
    except OSError as exc:
        raise UsageError(f"cannot write the report to {out_dir}: {exc.strerror or exc}",
                         hint="pass --out with a writable directory") from exc
    return paths


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


async def execute(inputs: ResearchInputs, options: ResearchOptions, *, progress: Progress | None = None) -> ResearchResult:
    """Run (or resume) one research run and write its report; see the module docstring."""
    inputs = normalize_inputs(inputs)
    options.formats = check_formats(options.formats)
    workspace = Workspace.open(resolve_cache_dir(options.cache_dir))
    run_id = options.run_id or new_run_id()
    try:
        # What earlier attempts of this run spent counts against its budget (0 for a new run).
        prior_cost = totals(workspace.journal.steps(run_id))["cost_usd"]
        workflow_ref: list[Workflow] = []

        async def gate(spec: StepSpec) -> None:
            workflow = workflow_ref[0]
            if workflow.fatal is not None:
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

        runtime = workspace.start(run_id, question=inputs.question, inputs=inputs.to_json(),
                                  config=options.to_json(), gate=gate)
        run = workspace.journal.get_run(run_id)
        started = _dt.datetime.fromtimestamp(run["started_at"], tz=_dt.timezone.utc).strftime("%Y-%m-%d")
        if progress is not None and hasattr(progress, "on_step"):
            runtime.listeners.append(progress.on_step)
        token = use_runtime(runtime)
        try:
            workflow = Workflow(runtime, inputs, options, progress or NoProgress(), started)
        except BaseException as exc:
            workspace.journal.finish_run(run_id, "failed", error=redact(str(exc)))
            reset_runtime(token)
            raise
        workflow_ref.append(workflow)
        try:
            result = await workflow.run()
            result.totals = totals(workspace.journal.steps(run_id))
            result.report_paths = _write_outputs(result, options)
        except BudgetExceeded as exc:
            workspace.journal.finish_run(run_id, "stopped", error=redact(exc.one_line()))
            raise RunStopped(f"run {run_id} stopped before going over budget: {exc.message}", run_id=run_id,
                             cause=exc, exit_code=BudgetExceeded.exit_code,
                             hint=f"completed steps are kept; continue with: research resume {run_id} --max-cost USD") from exc
        except (ProviderError, SourceError) as exc:  # a source error gets here only when it is fatal
            workspace.journal.finish_run(run_id, "failed", error=redact(exc.one_line()))
            raise RunStopped(f"run {run_id} stopped: {exc.message}", run_id=run_id, cause=exc) from exc
        except ResearchError as exc:
            workspace.journal.finish_run(run_id, "failed", error=redact(exc.one_line()))
            raise
        except BaseException as exc:
            workspace.journal.finish_run(run_id, "interrupted" if isinstance(exc, (KeyboardInterrupt, asyncio.CancelledError)) else "failed",
                                         error=redact(f"{type(exc).__name__}: {exc}"))
            raise
        finally:
            reset_runtime(token)
            await workflow.aclose()
        workspace.journal.finish_run(run_id, "completed", report_path=result.report_paths.get("md")
                                     or next(iter(result.report_paths.values()), None))
        return result
    finally:
        workspace.close()


def resume_inputs(cache_dir: str | None, run_id: str) -> tuple[ResearchInputs, dict[str, Any]]:
    """The inputs and config a run was started with, to run it again under the same id."""
    workspace = Workspace.open(resolve_cache_dir(cache_dir))
    try:
        run = workspace.journal.get_run(run_id)
    finally:
        workspace.close()
    return ResearchInputs.from_json(run["inputs"]), run["config"]
