"""The ``research`` command line: runs, resumes, listings and the cache.

This is an edge: it turns the project's errors into one line on stderr and an exit code, and is the
only place that prints. Exit codes: 0 done; 2 usage error (bad flag, missing file or key, unknown run);
3 report written but some steps failed (``research show RUN_ID`` lists them); 4 stopped before going
over ``--max-cost`` (resumable); 1 any other failure (the run stays resumable); 130 interrupted.
Heavy modules (pipelines, SDKs) are imported inside commands so ``research --help`` stays fast.
"""

from __future__ import annotations

import contextlib
import json
import sys
from typing import Annotated, Any, Iterator, List, Optional

import typer

try:  # recent typer vendors its own click; its exceptions are the ones raised
    from typer._click import exceptions as click_errors
except ImportError:  # pragma: no cover - older typer on plain click
    from click import exceptions as click_errors

_NoArgsIsHelp = getattr(click_errors, "NoArgsIsHelpError", ())

from agent.errors import ResearchError, RunStopped, RunWaiting, UsageError

app = typer.Typer(
    name="research",
    help="Durable research runs: every model call and every scrape is paid for once.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
cache_app = typer.Typer(help="Inspect or clear the step cache.", no_args_is_help=True)
app.add_typer(cache_app, name="cache")
from agent.cli_report import report_app  # noqa: E402  (imports nothing heavy: commands import on use)

app.add_typer(report_app, name="report")

from agent.cli_options import CacheDir, Debug, JsonOut, Kind, Quiet, StoreUrl, store_location  # noqa: E402
Wait = Annotated[bool, typer.Option("--wait", help="If another process is running this run, wait for it instead of refusing.")]
NoWait = Annotated[bool, typer.Option("--no-wait", help="For a batched run: stop once its batches are handed over (status waiting, exit 0); 'research resume' collects them.")]
ConfigFile = Annotated[Optional[str], typer.Option("--config", metavar="FILE", help="For a scheduled report's run: the reports file holding its webhook [default: $RESEARCH_CONFIG or ./research.toml]", show_default=False)]

EXIT_PARTIAL = 3
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143
EXIT_INTERNAL = 70


def _err(message: str) -> None:
    from agent.secrets import redact

    sys.stderr.write(f"error: {redact(message)}\n")
    sys.stderr.flush()


@contextlib.contextmanager
def _edge(debug: bool) -> Iterator[None]:
    """Every project error becomes one line and an exit code; anything else too, unless --debug."""
    try:
        yield
    except ResearchError as exc:
        if debug:
            _traceback(exc)
            raise typer.Exit(exc.exit_code) from None
        _err(exc.one_line())
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt as exc:
        run_id = getattr(exc, "run_id", None)
        how = f"research resume {run_id}" if run_id else "research resume RUN_ID (see 'research runs')"
        _err(f"{getattr(exc, 'what', 'interrupted')}; completed steps are saved; continue with: {how}")
        raise typer.Exit(getattr(exc, "exit_code", EXIT_INTERRUPTED)) from None
    except (typer.Exit, typer.Abort, click_errors.ClickException):
        raise
    except Exception as exc:  # a bug: say so in one line, keep the traceback for --debug
        if debug:
            _traceback(exc)
            raise typer.Exit(EXIT_INTERNAL) from None
        _err(f"internal error: {type(exc).__name__}: {exc} (rerun with --debug for a traceback)")
        raise typer.Exit(EXIT_INTERNAL) from None


def _traceback(exc: BaseException) -> None:
    """--debug: the whole traceback, chained SDK errors included, with every secret taken out (vendors
    echo keys back in 401 bodies, and those reach the chained exceptions' messages)."""
    import traceback

    from agent.secrets import redact

    sys.stderr.write(redact("".join(traceback.format_exception(exc))))
    sys.stderr.write(f"error: {redact(exc.one_line() if isinstance(exc, ResearchError) else str(exc))}\n")
    sys.stderr.flush()


def _warn(message: str) -> None:
    from agent.secrets import redact

    sys.stderr.write(f"warning: {redact(message)}\n")
    sys.stderr.flush()


def _emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


def _money(value: float | None) -> str:
    return "unknown" if value is None else f"${value:.4f}"


def _totals_line(totals: dict[str, Any]) -> str:
    cost = _money(totals["cost_usd"]) + ("" if totals.get("cost_complete", True) or totals["cost_usd"] is None
                                         else " + unpriced calls")
    saved = _money(totals["saved_usd"]) + ("" if totals.get("saved_complete", True) or totals["saved_usd"] is None
                                           else " + unpriced calls")
    line = (f"{totals['calls']} steps: {totals['paid']} paid, {totals['replayed']} replayed, {totals['failed']} failed;"
            f" cost {cost}, saved {saved}")
    if totals.get("batched"):
        line += f"; {totals['batched']} answered by batch APIs, {_money(totals.get('sync_cost_usd'))} at synchronous prices"
    this = totals.get("this_attempt")
    if this and this["attempt"] > 1:
        # What this attempt did, apart from the run's lifetime: a rerun that paid nothing says so.
        line = (f"attempt {this['attempt']}: {this['paid']} paid, {this['replayed']} replayed, {this['failed']} failed;"
                f" whole run: {line}")
    return line


def _progress(quiet: bool, as_json: bool):
    if quiet or as_json or not sys.stderr.isatty():
        return contextlib.nullcontext(None)
    from agent.progress import RichProgress

    return RichProgress()


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM during a run: the one line names the run to resume."""

    def __init__(self, run_id: str | None, *, terminated: bool = False) -> None:
        super().__init__()
        self.run_id = run_id
        self.what = "terminated (SIGTERM)" if terminated else "interrupted"
        self.exit_code = EXIT_TERMINATED if terminated else EXIT_INTERRUPTED


@contextlib.contextmanager
def _interruptible(run_id: str | None) -> Iterator[None]:
    """SIGTERM ends a run the way Ctrl-C does (completed steps kept, the run marked interrupted).

    During a run (:func:`agent.interrupts.run`) the signal cancels the run's main task from inside its
    loop, which unwinds the run through its own handlers; a second SIGTERM, or one outside a run,
    stops at once."""
    import asyncio
    import signal

    from agent import interrupts

    terminated: list[bool] = []

    def on_term(signum: int, frame: Any) -> None:
        if not terminated:
            terminated.append(True)
            if interrupts.cancel_running():
                return
        raise Interrupted(run_id, terminated=True)

    try:
        previous = signal.signal(signal.SIGTERM, on_term)
    except ValueError:  # not the main thread (an embedding host): leave signals alone
        previous = None
    try:
        yield
    except Interrupted:
        raise
    except asyncio.CancelledError:
        if terminated:
            raise Interrupted(run_id, terminated=True) from None
        raise
    except KeyboardInterrupt:
        raise Interrupted(run_id) from None
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _say(line: str) -> None:
    sys.stderr.write(f"{line}\n")
    sys.stderr.flush()


def _run(pipeline: Any, inputs: Any, options: Any, *, as_json: bool, quiet: bool, wait: bool = False) -> None:
    from agent.runs import new_run_id
    from pipelines.runner import execute

    options.run_id = options.run_id or new_run_id()  # named now, so an interruption can say what to resume
    with _progress(quiet, as_json) as progress:
        try:
            with _interruptible(options.run_id):
                from agent import interrupts
                result = interrupts.run(execute(pipeline, inputs, options, progress=progress, warn=_warn, wait=wait,
                                             say=None if quiet else _say))
        except RunWaiting as exc:  # not a failure: the run waits, durably, for a person or a vendor's batch
            if as_json:
                _emit_json({"run_id": exc.run_id, "status": "waiting", "waiting_for": exc.stage,
                            "report_path": None, "continue": exc.continue_with})
            else:
                sys.stdout.write(f"{exc.one_line()}\n")
            return
        except RunStopped as exc:
            if as_json:
                _emit_json({"run_id": exc.run_id, "status": "stopped" if exc.exit_code == 4 else "failed",
                            "report_path": None, "error": exc.one_line()})
            raise
    failed = result.totals.get("failed", 0)
    if as_json:
        _emit_json({"run_id": result.run_id, "status": result.status,
                    "report_path": result.report_paths.get("md") or next(iter(result.report_paths.values()), None),
                    "report_paths": result.report_paths, "totals": result.totals})
    else:
        for path in result.report_paths.values():
            sys.stdout.write(f"report: {path}\n")
        sys.stdout.write(f"run {result.run_id}: {_totals_line(result.totals)}\n")
        if failed:
            sys.stdout.write(f"{failed} step(s) failed; see: research show {result.run_id}\n")
    if failed:
        raise typer.Exit(EXIT_PARTIAL)


@app.command()
def run(
    question: Annotated[str, typer.Argument(metavar="QUESTION", help="The research question.")],
    file: Annotated[List[str], typer.Option("--file", "-f", metavar="PATH", help="A file or directory of sources (repeatable).")] = [],
    url: Annotated[List[str], typer.Option("--url", "-u", metavar="URL", help="A web page (http, https) or file:// URL to read (repeatable).")] = [],
    urls_file: Annotated[Optional[str], typer.Option("--urls-file", metavar="FILE", help="A file of URLs, one a line (blank lines and # comments skipped).")] = None,
    search: Annotated[int, typer.Option("--search", metavar="N", min=0, help="Search the web for the question and read the top N results (needs Firecrawl).")] = 0,
    depth: Annotated[int, typer.Option("--depth", metavar="D", min=0, help="Rounds of follow-up research: a model proposes queries from what was learned (needs search).")] = 0,
    breadth: Annotated[int, typer.Option("--breadth", metavar="B", min=1, help="Follow-up queries per --depth round.")] = 2,
    model: Annotated[List[str], typer.Option("--model", "-m", metavar="PROVIDER:MODEL", help="PROVIDER:MODEL (repeatable); the first summarizes and writes the report. [default: local:extractive]")] = [],
    run_id: Annotated[Optional[str], typer.Option("--run-id", metavar="ID", help="Name the run; reusing the id of an unfinished run resumes it.")] = None,
    out: Annotated[Optional[str], typer.Option("--out", metavar="DIR", help="Directory for reports. [default: $RESEARCH_REPORT_DIR or ./reports]", show_default=False)] = None,
    fmt: Annotated[List[str], typer.Option("--format", metavar="FORMATS", help="Report formats: md, html, json (comma-separated or repeated).")] = ["md"],
    prompts: Annotated[Optional[str], typer.Option("--prompts", metavar="DIR", help="Directory of prompt templates overriding the packaged ones.")] = None,
    concurrency: Annotated[Optional[int], typer.Option("--concurrency", metavar="N", min=1, help="Model calls in flight per provider. [default: 4]")] = None,
    timeout: Annotated[Optional[float], typer.Option("--timeout", metavar="SECONDS", min=0.1, help="Seconds per model call attempt. [default: 120]")] = None,
    max_cost: Annotated[Optional[float], typer.Option("--max-cost", metavar="USD", min=0.0, help="Stop before a paid call would take the run past this many USD.")] = None,
    max_age: Annotated[Optional[str], typer.Option("--max-age", metavar="AGE", help="Re-read sources older than this (30m, 12h, 7d).")] = None,
    allow_private_hosts: Annotated[bool, typer.Option("--allow-private-hosts", help="Let the built-in fetcher follow redirects (and unnamed hosts) to private and loopback addresses.")] = False,
    approve: Annotated[List[str], typer.Option("--approve", metavar="STAGE", help="Stop before this stage (analyze, report) until 'research approve RUN_ID' (repeatable).")] = [],
    approve_timeout: Annotated[Optional[str], typer.Option("--approve-timeout", metavar="AGE", help="A wait for approval expires after this long (3d, 12h).")] = None,
    check_with: Annotated[Optional[str], typer.Option("--check-with", metavar="PROVIDER:MODEL", help="A model that judges the cited sentences the deterministic check cannot settle.")] = None,
    no_check_claims: Annotated[bool, typer.Option("--no-check-claims", help="Do not hold the report's cited sentences against their sources.")] = False,
    ignore_robots: Annotated[bool, typer.Option("--ignore-robots", help="Read pages even where a site's robots.txt disallows it.")] = False,
    retry_failed: Annotated[bool, typer.Option("--retry-failed", help="Read again pages that failed lastingly (404, unknown host) on an earlier run.")] = False,
    batch: Annotated[bool, typer.Option("--batch", help="Send model calls through the vendors' batch APIs: half price, answered within the day.")] = False,
    batch_min: Annotated[int, typer.Option("--batch-min", metavar="N", min=1, help="With --batch: a stage with fewer model calls than N asks them one by one.")] = 1,
    no_wait: NoWait = False,
    cache_dir: CacheDir = None,
    store: StoreUrl = None,
    wait: Wait = False,
    as_json: JsonOut = False,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Run research on QUESTION over the given sources and write a cited report."""
    with _edge(debug):
        cache_dir = store_location(store, cache_dir)
        from agent.config import env, parse_duration
        from pipelines.research import ResearchInputs, ResearchOptions

        age = None
        if max_age is not None:
            try:
                age = parse_duration(max_age)
            except ValueError:
                raise UsageError(f"--max-age {max_age!r} is not a duration", hint="use a number and a unit: 30m, 12h, 7d") from None
        timeout_s = None
        if approve_timeout is not None:
            try:
                timeout_s = parse_duration(approve_timeout)
            except ValueError:
                raise UsageError(f"--approve-timeout {approve_timeout!r} is not a duration", hint="use a number and a unit: 12h, 3d") from None
        urls = list(url)
        rejected: list[list[str]] = []
        if urls_file is not None:
            from agent.sources.urls import read_urls_file_checked

            listed, bad = read_urls_file_checked(urls_file)
            urls += listed
            rejected = [[f"{urls_file} {reason.split(':', 1)[0]}", f"{line}: {reason.split(': ', 1)[-1]}"]
                        for line, reason in bad]
        inputs = ResearchInputs(question=question, files=list(file), urls=urls, search=search, depth=depth,
                                breadth=breadth, models=list(model) or ["local:extractive"], rejected=rejected,
                                check_with=check_with)
        options = ResearchOptions(cache_dir=cache_dir, out_dir=out or env("RESEARCH_REPORT_DIR") or "reports", formats=list(fmt), prompts_dir=prompts,
                                  concurrency=concurrency, timeout=timeout, max_cost=max_cost, max_age=age,
                                  run_id=run_id, allow_private_hosts=allow_private_hosts,
                                  approve=[a.strip().lower() for a in approve], approve_timeout=timeout_s,
                                  retry_failed=retry_failed, ignore_robots=ignore_robots,
                                  no_check_claims=no_check_claims, batch=batch, batch_min=batch_min, no_wait=no_wait)
        if no_wait and not batch:
            raise UsageError("--no-wait is for batched runs", hint="add --batch, or drop --no-wait")
        _run("research", inputs, options, as_json=as_json, quiet=quiet, wait=wait)


@app.command()
def resume(
    run_id: Annotated[str, typer.Argument(metavar="RUN_ID", help="The run to continue.")],
    max_cost: Annotated[Optional[float], typer.Option("--max-cost", metavar="USD", min=0.0, help="A new budget in USD for the whole run.")] = None,
    out: Annotated[Optional[str], typer.Option("--out", metavar="DIR", help="Write the report to this directory instead of the run's own.")] = None,
    fmt: Annotated[List[str], typer.Option("--format", metavar="FORMATS", help="Report formats instead of the run's own: md, html, json.")] = [],
    config: ConfigFile = None,
    no_wait: NoWait = False,
    cache_dir: CacheDir = None,
    store: StoreUrl = None,
    wait: Wait = False,
    as_json: JsonOut = False,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Continue a run: completed steps replay, the rest are paid for; a batched run collects its batches."""
    with _edge(debug):
        cache_dir = store_location(store, cache_dir)
        _continue(run_id, cache_dir=cache_dir, config=config, as_json=as_json, quiet=quiet, wait=wait,
                  max_cost=max_cost, out_dir=out, formats=list(fmt) or None, no_wait=no_wait or None)


def _continue(run_id: str, *, cache_dir: str | None, config: str | None, as_json: bool, quiet: bool,
              wait: bool = False, **overrides: Any) -> None:
    """The one way a stopped, interrupted or approved run goes on, whichever command asked."""
    from pipelines.runner import resume as rebuild

    pipeline, inputs, options, run = rebuild(cache_dir, run_id, **overrides)
    if pipeline.name == "report":
        from agent.cli_report import continue_report

        continue_report(run, config=config, cache_dir=cache_dir, as_json=as_json, quiet=quiet, **overrides)
        return
    _run(pipeline, inputs, options, as_json=as_json, quiet=quiet, wait=wait)


def _decide(run_id: str, decision: str, note: str | None, cache_dir: str | None) -> None:
    from agent.runs import Workspace

    workspace = Workspace.open(cache_dir)
    try:
        workspace.journal.decide(run_id, decision, note)
    finally:
        workspace.close()


@app.command()
def approve(
    run_id: Annotated[str, typer.Argument(metavar="RUN_ID", help="The waiting run to continue.")],
    note: Annotated[Optional[str], typer.Option("--note", metavar="TEXT", help="A note for the next stage's prompt.")] = None,
    config: ConfigFile = None,
    cache_dir: CacheDir = None,
    store: StoreUrl = None,
    as_json: JsonOut = False,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Approve a run waiting before a stage, and continue it here (its completed steps replay)."""
    with _edge(debug):
        cache_dir = store_location(store, cache_dir)
        _decide(run_id, "approved", note, cache_dir)
        _continue(run_id, cache_dir=cache_dir, config=config, as_json=as_json, quiet=quiet)


@app.command()
def reject(
    run_id: Annotated[str, typer.Argument(metavar="RUN_ID", help="The waiting run to end.")],
    note: Annotated[Optional[str], typer.Option("--note", metavar="TEXT", help="Why, for the journal.")] = None,
    cache_dir: CacheDir = None,
    store: StoreUrl = None,
    debug: Debug = False,
) -> None:
    """Reject a run waiting before a stage: it ends as 'rejected' and pays for nothing more."""
    with _edge(debug):
        cache_dir = store_location(store, cache_dir)
        _decide(run_id, "rejected", note, cache_dir)
        sys.stdout.write(f"run {run_id} rejected\n")


@app.command()
def runs(cache_dir: CacheDir = None, store: StoreUrl = None, as_json: JsonOut = False, debug: Debug = False) -> None:
    """List runs, newest first."""
    with _edge(debug):
        from agent.runs import Workspace

        workspace = Workspace.for_reading(store_location(store, cache_dir))
        try:
            rows = []
            for run_ in workspace.journal.list_runs():
                summary = workspace.summary(run_["run_id"])
                row = {"run_id": run_["run_id"], "status": summary["status"], "started_at": summary["started_at"],
                       "question": run_["question"], "cost_usd": summary["totals"]["cost_usd"],
                       "cost_complete": summary["totals"]["cost_complete"]}
                if summary["totals"].get("batched"):
                    row["sync_cost_usd"] = summary["totals"]["sync_cost_usd"]
                rows.append(row)
        finally:
            workspace.close()
        if as_json:
            _emit_json(rows)
            return
        if not rows:
            sys.stdout.write("no runs yet\n")
        for row in rows:
            money = _money(row["cost_usd"]) + ("+?" if not row["cost_complete"] and row["cost_usd"] is not None else "")
            if "sync_cost_usd" in row:  # batched: what it would have cost asked one by one
                money += f" (sync {_money(row['sync_cost_usd'])})"
            sys.stdout.write(f"{row['run_id']}  {row['status']:<11} {row['started_at']}  {money:>9}  {row['question']}\n")


@app.command()
def show(
    run_id: Annotated[str, typer.Argument(metavar="RUN_ID", help="The run to show.")],
    cache_dir: CacheDir = None,
    store: StoreUrl = None,
    as_json: JsonOut = False,
    debug: Debug = False,
) -> None:
    """Show a run: its status, report and every step."""
    with _edge(debug):
        from agent.runs import Workspace

        workspace = Workspace.for_reading(store_location(store, cache_dir))
        try:
            # The steps are streamed from the journal as they are printed: a run of thousands is never
            # all in memory at once.
            summary = workspace.summary(run_id, with_steps=False)
            from agent.journal import Totals

            counted = Totals()

            def steps() -> Iterator[dict[str, Any]]:  # totalled in the same pass as they are printed
                for step in workspace.journal.iter_steps(run_id):
                    counted.add(step)
                    yield step

            if as_json:
                from agent import jsonstream

                jsonstream.dump(summary, "steps", steps(), sys.stdout, default=str, after={"totals": counted.result})
                return
            out = sys.stdout.write
            out(f"run {summary['run_id']}: {summary['status']}\nquestion: {summary['question']}\n")
            out(f"report: {summary['report_path'] or '(none yet)'}\n")
            if summary["error"]:
                out(f"error: {summary['error']}\n")
            for step in steps():
                how = "failed" if step["status"] == "failed" else ("replayed" if step["replayed"] else "paid")
                said = f"  ({step['error']})" if step.get("error") else ("  (cut at its token limit)" if step.get("truncated") else "")
                out(f"  {how:<8} {step['kind']:<6} {step['name']}{said}\n")
        finally:
            workspace.close()
        for batch in summary.get("batches", []):
            done = ", ".join(f"{n} {what}" for what, n in sorted((batch["detail"] or {}).items()) if isinstance(n, int))
            out(f"  batch {batch['id']}: {batch['stage']}, {batch['count']} request(s) at {batch['provider']}: "
                f"{batch['status']}" + (f" ({done})" if done else "") + "\n")
        waiting = summary.get("waiting")
        if waiting and waiting["stage"] == "batch":
            out(f"waiting for {waiting['batches']} batch(es) at the vendors; collect with: {waiting['continue']}\n")
        elif waiting:
            out(f"waiting for approval before {waiting['stage']}; continue with: {waiting['continue']}\n")
        for effect in summary.get("effects", []):
            detail = effect.get("detail") or {}
            said = f" (HTTP {detail['http_status']})" if detail.get("http_status") else ""
            said += f": {detail['error']}" if detail.get("error") else ""
            out(f"  {effect['effect']}: {effect['status']} after {detail.get('attempts', effect['attempts'])} attempt(s){said}\n")
        out(_totals_line(counted.result()) + "\n")


@cache_app.command("stats")
def cache_stats(cache_dir: CacheDir = None, store: StoreUrl = None, as_json: JsonOut = False,
                debug: Debug = False) -> None:
    """Entries and size of the cache, by kind."""
    with _edge(debug):
        from agent.storage import store_stats

        stats = store_stats(store_location(store, cache_dir))
        if as_json:
            _emit_json(stats)
            return
        sys.stdout.write(f"{stats['directory']}: {stats['entries']} entries, {stats['bytes']:,} bytes\n")
        for kind, row in sorted(stats["kinds"].items()):
            sys.stdout.write(f"  {kind:<8} {row['entries']:>7} entries {row['bytes']:>14,} bytes\n")


@cache_app.command("clear")
def cache_clear(
    kind: Kind = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    cache_dir: CacheDir = None,
    store: StoreUrl = None,
    debug: Debug = False,
) -> None:
    """Remove cached results (the run journal is kept). Cleared steps are paid for again when next needed."""
    with _edge(debug):
        from agent.storage import locate, open_storage

        where = locate(store_location(store, cache_dir))
        what = f"every {kind} result" if kind else "every cached result"
        if not yes:
            if not sys.stdin.isatty():
                raise UsageError(f"refusing to clear {what} without confirmation", hint="pass --yes")
            typer.confirm(f"Remove {what} from {where}?", abort=True)
        results, _ = open_storage(where, journal=False)
        try:
            removed = results.clear(kind)
        finally:
            results.close()
        sys.stdout.write(f"removed {removed} entries from {where}\n")


import agent.cli_cache_io  # noqa: E402,F401  (adds 'cache export' and 'cache import' to cache_app)


from agent.cli_ui import ui  # noqa: E402  (imports no web framework: 'research ui' does when it runs)

app.command()(ui)


def main() -> None:
    """Console entry point: usage errors, too, are one line."""
    try:
        code = app(standalone_mode=False)
    except typer.Abort:
        _err("aborted")
        sys.exit(1)
    except _NoArgsIsHelp as exc:  # bare `research` or `research cache`: show the help
        sys.stdout.write(exc.ctx.get_help() + "\n")
        sys.exit(0)
    except click_errors.UsageError as exc:
        command = exc.ctx.command_path if exc.ctx else "research"
        _err(f"{exc.format_message()} (see '{command} --help')")
        sys.exit(2)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    sys.exit(code if isinstance(code, int) else 0)
