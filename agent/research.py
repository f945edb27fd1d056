"""``Research``: the notebook surface.

    from agent import Research

    r = Research(cache_dir="cache", models=["local:extractive"])
    report = r.run("What do we know about X?", files=["notes/"])
    report            # renders as Markdown in Jupyter
    report.cost_usd, report.saved_usd, report.sources

``run`` is synchronous and also works where an event loop is already running (Jupyter): it then runs
the research on a private loop in a worker thread. ``await r.arun(...)`` is the native async form.
Errors are raised as the project's exceptions (``agent.UsageError`` and friends), not printed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from agent.config import env


@dataclass
class ResearchReport:
    """What a run produced: the report text and paths, its sources and what it cost."""

    run_id: str
    status: str
    question: str
    markdown: str
    report_paths: dict[str, str]
    sources: list[dict[str, Any]]
    analyses: list[dict[str, str]]
    failed: list[dict[str, str]]
    totals: dict[str, Any] = field(default_factory=dict)

    @property
    def cost_usd(self) -> float | None:
        """What the run paid; None when its models have no known price (tokens are still counted)."""
        return self.totals.get("cost_usd", 0.0)

    @property
    def saved_usd(self) -> float | None:
        """What its replayed steps cost when first paid; None when that is unknown."""
        return self.totals.get("saved_usd", 0.0)

    def _repr_markdown_(self) -> str:
        return self.markdown

    def __str__(self) -> str:
        return self.markdown


def _model_name(model: "str | dict[str, Any]") -> str:
    """A model id as given, or a model with explicit settings, known from now on by its ``name``.

    ``{"name": "house", "provider": "openai-compatible", "model": "qwen2.5", "base_url": "http://...",
    "api_key": "...", "context_window": 8192, "concurrency": 1, "input_price": 0.1, "output_price": 0.2}``:
    what is not given falls back to the environment, as ``[models.NAME]`` in research.toml does. The
    key stays in this process; only the name reaches the journal.
    """
    if isinstance(model, str):
        return model
    from agent.errors import UsageError
    from agent.providers import register_model
    from agent.reportfile import model_from_table

    spec = dict(model)
    name = spec.pop("name", None)
    if not name or "provider" not in spec:
        raise UsageError("a model given as a dict needs a 'name' and a 'provider'",
                         hint='{"name": "house", "provider": "openai-compatible", "base_url": "http://host:8000/v1"}')
    # The same checks as a [models.NAME] table in research.toml; only here may the key itself be given.
    register_model(model_from_table(name, spec, f"model {name!r}", api_key=True))
    return name


class Research:
    """Research runs from Python, on a cache directory shared with the CLI."""

    def __init__(
        self,
        cache_dir: str | Path | None = None,
        models: Sequence["str | dict[str, Any]"] | None = None,
        *,
        out_dir: str | Path | None = None,
        formats: Sequence[str] = ("md",),
        prompts_dir: str | Path | None = None,
        concurrency: int | None = None,
        timeout: float | None = None,
        max_cost: float | None = None,
        max_age: float | None = None,
        allow_private_hosts: bool = False,
        check_with: "str | dict[str, Any] | None" = None,
        batch: bool = False,
        batch_min: int = 1,
    ) -> None:
        self.cache_dir = str(cache_dir) if cache_dir is not None else None
        self.models = [_model_name(m) for m in models] if models else ["local:extractive"]
        self.out_dir = str(out_dir or env("RESEARCH_REPORT_DIR") or "reports")
        self.formats = list(formats)
        self.prompts_dir = str(prompts_dir) if prompts_dir else None
        self.concurrency = concurrency
        self.timeout = timeout
        self.max_cost = max_cost
        self.max_age = max_age
        self.allow_private_hosts = allow_private_hosts
        self.check_with = _model_name(check_with) if check_with else None
        #: Model calls through the vendors' batch APIs (half price, answered within the day).
        self.batch = batch
        self.batch_min = batch_min

    def _prepare(self, question: str, files: Sequence[str | Path], urls: Sequence[str], search: int,
                 depth: int, breadth: int, run_id: str | None, wait: bool = True) -> tuple[Any, Any]:
        from pipelines.research import ResearchInputs, ResearchOptions

        inputs = ResearchInputs(question=question, files=[str(f) for f in files], urls=list(urls),
                                models=list(self.models), search=search, depth=depth, breadth=breadth,
                                check_with=self.check_with)
        options = ResearchOptions(cache_dir=self.cache_dir, out_dir=self.out_dir, formats=list(self.formats),
                                  prompts_dir=self.prompts_dir, concurrency=self.concurrency, timeout=self.timeout,
                                  max_cost=self.max_cost, max_age=self.max_age, run_id=run_id,
                                  allow_private_hosts=self.allow_private_hosts, batch=self.batch,
                                  batch_min=self.batch_min, no_wait=not wait)
        return inputs, options

    async def arun(self, question: str, *, files: Sequence[str | Path] = (), urls: Sequence[str] = (),
                   search: int = 0, depth: int = 0, breadth: int = 2, run_id: str | None = None,
                   wait: bool = True) -> ResearchReport:
        """Run (or, with the id of an unfinished run, resume) research; see :meth:`run`."""
        from agent.errors import BatchWaiting
        from pipelines.runner import execute

        inputs, options = self._prepare(question, files, urls, search, depth, breadth, run_id, wait)
        try:
            result = await execute("research", inputs, options)
        except BatchWaiting as exc:  # handed over; the same call with this run_id collects the answers
            return ResearchReport(run_id=exc.run_id, status="waiting", question=inputs.question,
                                  markdown=exc.one_line(), report_paths={}, sources=[], analyses=[], failed=[])
        return ResearchReport(
            run_id=result.run_id, status=result.status, question=result.question, markdown=result.markdown,
            report_paths=result.report_paths,
            sources=[{"id": s.id, "title": s.title, "uri": s.uri, "summary": s.summary} for s in result.sources],
            analyses=result.analyses, failed=result.failed, totals=result.totals,
        )

    def run(self, question: str, *, files: Sequence[str | Path] = (), urls: Sequence[str] = (),
            search: int = 0, depth: int = 0, breadth: int = 2, run_id: str | None = None,
            wait: bool = True) -> ResearchReport:
        """Run research on ``question`` and return the report; completed steps replay for free.

        A batched ``Research(batch=True)`` waits for the vendors' batches; with ``wait=False`` it returns
        once they are handed over, ``status == "waiting"``, and the same call with ``run_id=`` that
        report's id collects them (answers that are not ready leave it waiting)."""
        import asyncio  # imported by the runs, not by ``import agent``
        import concurrent.futures

        coro = self.arun(question, files=files, urls=urls, search=search, depth=depth, breadth=breadth, run_id=run_id,
                         wait=wait)
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(coro)
        # A loop is already running in this thread (Jupyter): run on a private loop in a worker.
        with concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="research") as pool:
            return pool.submit(asyncio.run, coro).result()
