"""What every pipeline shares: its options, progress hooks, and the stage machinery on a runtime.

A pipeline is a named module (see :mod:`pipelines`) that subclasses :class:`Stages` for its work and
describes itself with a :class:`Pipeline`. Everything costly goes through the helpers here, so every
pipeline gets the same behaviour for free: :meth:`Stages.each` runs a stage's items concurrently with
failures isolated and recorded, :meth:`Stages.ask` renders a prompt template and asks a model as a
durable step, :meth:`Stages.fetch` reads a file or a web page as a durable step. Opening and resuming
the run, the gate (budget, fatal stops, a lost lease) and writing the report live in
:mod:`pipelines.runner`, also once for all pipelines.
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable, ClassVar, Protocol

from agent.answers import tidy
from agent.config import Limits
from agent.errors import BudgetExceeded, ResearchError, RunWaiting, UsageError
from agent.keys import step_key
from agent.llm import CompletionRequest, complete
from agent.providers import get_provider
from agent.secrets import redact
from agent.sources import Document
from agent.sources import files as file_sources
from agent.sources import scrape as web_steps
from agent.sources import urls as url_sources
from agent.sources.backend import web_backend
from agent.steps import Paid, Recorder, Runtime, StepSpec, recording, stop_recording
from agent.templates import Prompts

FORMATS = ("md", "html", "json")
#: Output tokens for a template without a ``max_tokens`` block, and the most a cut answer is retried with.
DEFAULT_MAX_TOKENS = 2048
MAX_RETRY_TOKENS = 8192


#: The notes lists of the pieces of work being recorded in this context (see :meth:`Stages.recorded`).
_recorded_notes: contextvars.ContextVar[tuple[list[str], ...]] = contextvars.ContextVar("research_notes", default=())
_FINGERPRINTS: dict[tuple[type, ...], str] = {}


def code_fingerprint(*classes: type) -> str:
    """A hash of the code that turns a pipeline's inputs into its steps: every module of the ``agent``
    and ``pipelines`` packages, the modules defining ``classes`` and their bases, and the template
    engine's version. Worked out once per process; any edit to that code changes it. Files are named
    by module, not by where they are installed, so two checkouts of one release agree."""
    found = _FINGERPRINTS.get(classes)
    if found is not None:
        return found
    import hashlib
    import os
    import sys

    import jinja2

    import agent
    import pipelines

    files: dict[str, str] = {}
    for package in (agent, pipelines):
        for directory in package.__path__:
            for path in Path(directory).rglob("*.py"):
                files[f"{package.__name__}/{path.relative_to(directory).as_posix()}"] = str(path)
    for cls in classes:
        for base in cls.__mro__:
            where = getattr(sys.modules.get(base.__module__), "__file__", None)
            if where and base.__module__ != "builtins":
                files.setdefault(base.__module__, where)
    digest = hashlib.sha256(f"jinja2 {jinja2.__version__}, python {sys.version_info[:2]}".encode())
    if not any(name.startswith("agent/") for name in files):  # installed without sources: nothing to vouch for
        digest.update(os.urandom(16))
    for name in sorted(files):
        try:
            data = Path(files[name]).read_bytes()
        except OSError:  # code that cannot be read cannot be vouched for: nothing recorded before matches
            data = os.urandom(16)
        digest.update(f"{len(name)}:{name}{len(data)}:".encode())
        digest.update(data)
    found = _FINGERPRINTS[classes] = digest.hexdigest()
    return found


class Progress(Protocol):
    def stage(self, name: str, total: int) -> None: ...
    def advance(self, name: str, outcome: str) -> None: ...


class NoProgress:
    def stage(self, name: str, total: int) -> None:
        pass

    def advance(self, name: str, outcome: str) -> None:
        pass


@dataclass
class RunOptions:
    """How a run goes about its work. None of this changes what any step returns.

    ``stem`` names the report files (the run id by default); ``latest`` also writes ``latest.*``
    beside them, and ``keep`` prunes all but that many reports in the output directory.
    """

    cache_dir: str | None = None
    out_dir: str = "reports"
    formats: list[str] = field(default_factory=lambda: ["md"])
    prompts_dir: str | None = None
    concurrency: int | None = None
    timeout: float | None = None
    max_cost: float | None = None
    max_age: float | None = None
    run_id: str | None = None
    stem: str | None = None
    latest: bool = False
    keep: int | None = None
    allow_private_hosts: bool = False
    approve: list[str] = field(default_factory=list)
    approve_timeout: float | None = None
    retry_failed: bool = False
    ignore_robots: bool = False
    no_check_claims: bool = False
    #: Send model calls through the vendors' batch APIs (half price, answered within the day).
    batch: bool = False
    #: A stage with fewer model calls than this asks them one by one even in a batched run.
    batch_min: int = 1
    #: Stop, durably waiting, as soon as the batches are handed over (this invocation only, never journaled).
    no_wait: bool = False

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("run_id")
        data.pop("cache_dir")
        data.pop("no_wait")
        if not data["batch"]:  # runs made before batches existed keep their config as it was
            del data["batch"], data["batch_min"]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any], **overrides: Any) -> "RunOptions":
        values = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


@dataclass(frozen=True)
class Pipeline:
    """A named pipeline: what the journal records of a run, and how ``resume`` rebuilds it.

    ``inputs`` is a dataclass with ``to_json``/``from_json`` and a ``question``; ``normalize``
    validates inputs before anything runs; ``workflow`` makes the :class:`Stages` subclass that does
    the work. ``version`` is recorded with each run, so a later release can tell what made it.
    """

    name: str
    version: int
    inputs: type
    normalize: Callable[[Any], Any]
    workflow: Callable[..., "Stages"]
    templates: tuple[str, ...] = ()


class Stages:
    """The machinery a pipeline's stages run on: a runtime, providers, prompts, sources, failures."""

    #: The template names this pipeline renders.
    templates: ClassVar[tuple[str, ...]] = ()
    #: A directory of this pipeline's own templates (a third-party pipeline ships its prompts there).
    template_dir: ClassVar[str | None] = None
    #: Stages a run can be told to wait before for a person's approval (``--approve STAGE``).
    approvable: ClassVar[tuple[str, ...]] = ()

    def __init__(self, runtime: Runtime, inputs: Any, options: RunOptions, progress: Progress,
                 started_at: str, *, models: list[str]) -> None:
        self.runtime = runtime
        self.inputs = inputs
        self.options = options
        self.progress = progress
        self.started_at = started_at
        self.limits = Limits.from_env(concurrency=options.concurrency, timeout_s=options.timeout)
        self.prompts = Prompts(options.prompts_dir, pipeline_dir=self.template_dir)
        self.providers = [get_provider(m, limits=self.limits) for m in models]
        self.web: Any = None  # made on first use, only when there are URLs or a search
        self.fatal: ResearchError | None = None
        self.failed: list[dict[str, str]] = []
        self.notes: list[str] = []
        runtime.listeners.append(self._warm_on_read)
        self._contexts: dict[int, asyncio.Future] = {}
        #: Where lines for the person running this go (batch progress); the CLI prints them on stderr.
        self.say: Callable[[str], None] = lambda line: None
        if options.batch and runtime.journal is not None:
            from agent.batches import Batcher

            runtime.batcher = Batcher(runtime, wait=not options.no_wait, min_size=options.batch_min,
                                      say=lambda line: self.say(line), notes=self.notes)

    # -- failures and concurrency --------------------------------------------------------------
    def fail(self, stage: str, what: str, exc: BaseException) -> None:
        """Record a failed item for the report; a fatal error (a rejected key, the budget) stops the run."""
        message = redact(exc.one_line() if isinstance(exc, ResearchError) else f"{type(exc).__name__}: {exc}")
        source = getattr(exc, "source", "")
        if source and message.startswith(f"{source}: "):
            # the report line already names the source (``what``); saying it twice helps nobody
            message = message[len(source) + 2:]
        self.failed.append({"stage": stage, "what": what, "error": message})
        if getattr(exc, "fatal", False) or isinstance(exc, BudgetExceeded):
            self.fatal = self.fatal or exc

    async def each(self, stage: str, items: list[Any], job: Callable[[Any], Awaitable[Any]],
                   label: Callable[[Any], str]) -> list[Any]:
        """Run ``job`` over ``items`` concurrently; failures are recorded and come back as ``None``."""
        self.progress.stage(stage, len(items))

        waits: list[BaseException] = []

        async def one(item: Any) -> Any:
            if self.fatal is not None:
                return None
            try:
                result = await job(item)
            except RunWaiting as exc:  # handed over to a batch: the others go on until theirs are too
                waits.append(exc)
                return None
            except UsageError:
                raise
            except (ResearchError, OSError) as exc:
                self.fail(stage, label(item), exc)
                self.progress.advance(stage, "failed")
                return None
            self.progress.advance(stage, "done")
            return result

        tasks = [asyncio.ensure_future(one(item)) for item in items]
        try:
            results = await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        if self.fatal is not None:
            raise self.fatal
        if waits:
            from agent.errors import BatchWaiting

            batcher = self.runtime.batcher
            if batcher is not None and all(isinstance(w, BatchWaiting) for w in waits):
                raise batcher.waiting()  # every batch handed over so far, with how far each has got
            raise waits[0]
        return list(results)

    # -- models --------------------------------------------------------------------------------
    def warm(self, providers: list[Any] | None = None) -> None:
        """A paid model call is certain: start the providers' slow setup (an SDK's import, its client)
        in the background, so it is done by the time the first source is ready to summarize.

        Called only when paying is certain or nearly so (a question this cache never saw, a source read
        afresh), never on a replay: a fully replayed run imports no SDK.
        """
        for provider in self.providers if providers is None else providers:
            provider.warm()

    async def context_window(self, provider: Any) -> int:
        """Tokens ``provider``'s model reads at once: its settings, else what its server reports (asked
        once, and kept as a free step so every later run splits sources alike), else its default."""
        if provider.settings.context_window:
            return provider.context_window
        pending = self._contexts.get(id(provider))
        if pending is None:
            pending = self._contexts[id(provider)] = asyncio.ensure_future(self._probe_context(provider))
        return await asyncio.shield(pending)

    async def _probe_context(self, provider: Any) -> int:
        spec = StepSpec(kind="probe", name=f"context window of {provider.model_id}", provider=provider.name,
                        endpoint=provider.endpoint, model=provider.model, request={"probe": "context_window"})
        found = None
        if self.runtime.lookup(spec) is None:
            found = await provider.probe_context()
            if not found:  # the server cannot say: the default, nothing stored (it may say next time)
                return provider.context_window

        async def work() -> Paid:  # not called when the answer is stored: the step replays it
            if found is None:
                raise RuntimeError("the stored context window went away while the run looked it up")
            return Paid({"context_window": found}, cost_usd=0.0)

        value = (await self.runtime.step(spec, work)).value
        window = value.get("context_window") if isinstance(value, dict) else None
        return window if isinstance(window, int) and window > 0 else provider.context_window

    def _warm_on_read(self, event: str, spec: Any, result: Any, exc: Any) -> None:
        # A source read afresh most likely holds new text, and so a summary to pay for.
        if event == "paid" and spec.kind == "scrape" and self.providers:
            try:
                self.warm(self.providers[:1])
            except RuntimeError:
                pass  # heard outside an event loop (a plain @durable function): nothing to warm for

    async def ask(self, provider: Any, template: str, name: str, context: dict[str, Any], *,
                  schema: dict[str, Any] | None = None, **variables: Any) -> str:
        """Render ``template`` and ask ``provider`` as a durable step; the answer's text.

        ``context`` carries the structured inputs behind the prompt (hosted models ignore it); the
        template's ``offline`` setting tells the offline model which of its generic operations answers.
        ``schema`` asks for a JSON object answer through the vendor's structured output. What the
        provider had to do differently (a server that refused the format) joins the report's notes.
        """
        rendered = self.prompts.render_template(template, **variables)
        limit = rendered.max_tokens or DEFAULT_MAX_TOKENS
        if provider.max_output_tokens:
            limit = min(limit, provider.max_output_tokens)
        request = CompletionRequest(prompt=rendered.user, system=rendered.system, max_tokens=limit,
                                    context=context, offline=rendered.offline, schema=schema)
        if self.runtime.batcher is not None:  # this task's calls: one batch per provider and stage
            from agent.batches import STAGES, stage_var

            stage_var.set(STAGES.get(template, template))
        completion, _ = await complete(self.runtime, provider, request, name=name)
        if completion.finish_reason == "length" and limit < min(MAX_RETRY_TOKENS, provider.max_output_tokens or MAX_RETRY_TOKENS):
            # Cut at its limit: asked once more with twice the room (its own step, so it replays too).
            bigger = min(limit * 2, MAX_RETRY_TOKENS, provider.max_output_tokens or MAX_RETRY_TOKENS)
            retried, _ = await complete(self.runtime, provider, dataclasses.replace(request, max_tokens=bigger),
                                        name=f"{name} (again, {bigger} tokens)")
            if retried.finish_reason == "length":
                self.note(f"The answer of {name} was cut at its {bigger}-token limit, also when asked again "
                          f"with twice its first {limit}; it is shown as it stopped.")
            completion = retried
        for note in getattr(completion, "notes", []) or []:
            self.note(f"{name}: {note}")
        text, trims = tidy(completion.text)
        if trims:
            self.note(f"The answer of {name}: {'; '.join(trims)}.")
        return text

    def note(self, text: str) -> None:
        """A line for the report's notes; a piece of work being recorded (:meth:`recorded`) keeps it too,
        so its replay says it again."""
        self.notes.append(text)
        for notes in _recorded_notes.get():
            notes.append(text)

    async def recorded(self, name: str, request: dict[str, Any], make: Callable[[], Awaitable[Any]], *,
                       valid: Callable[[Any], bool] = lambda result: True) -> Any:
        """``await make()``, whose steps and result are fixed by ``request`` and this pipeline's code, kept
        so that a replay of it is the replay of its steps, without working out their requests again.

        The first time, the steps ``make()`` takes are recorded as they end (see
        :class:`agent.steps.Recorder`) and kept in the store with its JSON result and notes, under
        ``name``, ``request`` and the code's fingerprint (:func:`code_fingerprint`: an edit to the code
        makes every record a miss). Later, if each recorded step would replay the very result it had
        (the run's pin, else the store), all are replayed and journaled as themselves, the notes said
        again and the result returned; otherwise ``make()`` runs as usual (and pays for what is gone).
        Nothing is kept when a step failed, waited or was held back, or when ``make()`` raised; a kept
        result that ``valid`` refuses (a record damaged or made by hand) is worked out again.
        """
        key = step_key("memo", provider="pipeline", model=name,
                       request={"code": code_fingerprint(type(self)), "request": request})
        runtime = self.runtime
        kept = runtime.store.get(key)
        value = kept["value"] if kept is not None else None
        if (isinstance(value, dict) and "result" in value and valid(value["result"])
                and isinstance(value.get("notes"), list) and all(isinstance(n, str) for n in value["notes"])
                and runtime.replay_recorded(value.get("steps"))):
            for text in value["notes"]:
                self.note(text)
            return value["result"]
        recorder = Recorder()
        notes: list[str] = []
        token, notes_token = recording(recorder), _recorded_notes.set(_recorded_notes.get() + (notes,))
        try:
            result = await make()
        finally:
            _recorded_notes.reset(notes_token)
            stop_recording(token)
        if not recorder.failed and recorder.steps:
            try:
                runtime.store.put(key, {"steps": recorder.steps, "notes": notes, "result": result}, kind="memo")
            except ResearchError:
                pass  # not kept: the next replay works the requests out again
        return result

    def remembered(self, name: str, request: Any, compute: Callable[[], Any]) -> Any:
        """A deterministic, free result (a claim check's verdicts, a scan of a text) kept in the store
        under ``name`` and ``request``, so a replay reads it instead of working it out again. Not a step
        of the run: nothing is paid, and a store that cannot take it only means working it out next time."""
        key = step_key("check", provider="pipeline", model=name, request=request)
        store = self.runtime.store
        record = store.get(key)
        if record is not None:
            return record["value"]
        value = compute()
        try:
            store.put(key, value, kind="check")
        except ResearchError:
            pass
        return value

    # -- sources -------------------------------------------------------------------------------
    def trusted_hosts(self) -> set[str]:
        """Hosts the user named themselves: the built-in fetcher may reach them even on a private address."""
        from urllib.parse import urlsplit

        return {host for host in (urlsplit(u).hostname for u in getattr(self.inputs, "urls", [])) if host}

    def web_backend(self) -> Any:
        if self.web is None:
            # Search results, planner-chosen pages and redirects to other hosts are not trusted.
            self.web = web_backend(self.limits, max_age=self.options.max_age, trusted_hosts=self.trusted_hosts(),
                                   allow_private=self.options.allow_private_hosts,
                                   ignore_robots=self.options.ignore_robots)
        return self.web

    async def fetch(self, ref: str) -> Document:
        """A web page or a local file, as a durable step."""
        if url_sources.is_web_url(ref):
            return await web_steps.scrape(self.runtime, self.web_backend(), ref, max_age=self.options.max_age,
                                          retry_failed=self.options.retry_failed)
        return await self.read(ref)

    async def read(self, path: str) -> Document:
        fp = file_sources.file_fingerprint(Path(path))
        spec = StepSpec(kind="scrape", name=f"read {path}", provider="file", request=fp,
                        max_age=self.options.max_age)

        async def work() -> Paid:
            doc = await asyncio.to_thread(file_sources.read_file, Path(path))
            return Paid(doc.to_json(), cost_usd=0.0)

        result = await self.runtime.step(spec, work)
        return Document.from_json(result.value)

    async def search(self, query: str, limit: int) -> list[Any]:
        return await web_steps.search(self.runtime, self.web_backend(), query, limit, max_age=self.options.max_age)

    # -- waits for people ----------------------------------------------------------------------
    async def checkpoint(self, stage: str) -> str | None:
        """Before ``stage``: go on if it needs no approval or was approved (the note, if any, comes back);
        else stop the run durably as ``waiting`` (nothing is held in memory: any process may continue it)."""
        from agent.errors import RunRejected, RunWaiting

        if stage not in self.options.approve or self.runtime.journal is None:
            return None
        wait = self.runtime.journal.wait_for(self.runtime.run_id, stage, timeout_s=self.options.approve_timeout)
        if wait["status"] == "approved":
            return wait["note"]
        if wait["status"] in ("rejected", "expired"):
            raise RunRejected(self.runtime.run_id, wait["status"], stage)
        raise RunWaiting(self.runtime.run_id, stage, wait["since"], wait["until"])

    # -- lifecycle -----------------------------------------------------------------------------
    def check_ready(self) -> None:
        """Fail before any paid call if a provider lacks its key (or anything else a run needs up front)."""
        for provider in self.providers:
            provider.check_ready()
        for stage in self.options.approve:
            if stage not in self.approvable:
                raise UsageError(f"--approve {stage}: this pipeline has no such stage to wait before",
                                 hint=f"use one of: {', '.join(self.approvable) or '(none)'}")

    async def run(self) -> Any:  # pragma: no cover - every pipeline defines its own
        raise NotImplementedError

    async def aclose(self) -> None:
        for provider in self.providers:
            await provider.aclose()
        if self.web is not None:
            await self.web.aclose()
