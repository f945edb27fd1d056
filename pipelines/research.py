"""The research workflow: gather -> scrape -> summarize -> analyze -> report, every costly call durable.

:class:`ResearchWorkflow` runs the stages on a runtime; :mod:`pipelines.runner` opens the run around it and
writes the report. Every model call and every read is a step of :mod:`agent.steps`: a resumed or
repeated run replays what was already paid for, and only new or changed work is paid.
"""

from __future__ import annotations

import asyncio
import functools
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from agent import citations
from agent.errors import ResearchError, SourceError, UsageError
from agent.keys import content_hash
from agent.pricing import price_of
from agent.providers import DEFAULT_MODEL, configured_model, get_provider, parse_model_id
from agent.sources import Document
from agent.sources import files as file_sources
from agent.sources import urls as url_sources
from agent.sources.backend import check_search, search_available
from pipelines import chunking
from pipelines.base import FORMATS, NoProgress, Pipeline, Progress, RunOptions, Stages
from pipelines.spill import LazyTexts, Spill, SpilledText

__all__ = ["FORMATS", "NoProgress", "PIPELINE", "PLAN_SCHEMA", "Progress", "ResearchInputs", "ResearchOptions", "ResearchResult",
           "ResearchWorkflow", "Source", "normalize_inputs", "parse_queries"]

#: Bump when the stages change what a run produces, so the journal can tell which made a run.
VERSION = 1
SUMMARY_WORDS = 200
#: Tokens of a model's context kept for the summarize prompt's own text and the summary it writes.
SUMMARY_RESERVE_TOKENS = 1024
MAX_DEPTH = 5
MAX_BREADTH = 10
MAX_SEARCH = 100
#: The run options of a research run; one type for every pipeline.
ResearchOptions = RunOptions


@dataclass
class ResearchInputs:
    """What a run is about. Its hash identifies the run: reusing a run id needs the same inputs."""

    question: str
    files: list[str] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)
    models: list[str] = field(default_factory=lambda: [DEFAULT_MODEL])
    search: int = 0
    depth: int = 0
    breadth: int = 2
    #: Lines of a URL list that could not be used, as ``[where, why]``: failed sources, not errors.
    rejected: list[list[str]] = field(default_factory=list)
    #: A model that judges the cited sentences the deterministic check could not settle.
    check_with: str | None = None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        # Runs made before these fields existed keep their fingerprint.
        if not data["rejected"]:
            del data["rejected"]
        if data["check_with"] is None:
            del data["check_with"]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "ResearchInputs":
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


@dataclass
class Source:
    id: int
    uri: str
    title: str
    #: The text itself; empty when it was set aside on disk (``spilled``): read it with :meth:`full_text`.
    text: str = ""
    content_type: str = "text/markdown"
    summary: str | None = None
    #: Provenance, where the document gave it (see :class:`agent.sources.Document`).
    site: str = ""
    final_url: str = ""
    fetched_at: str = ""
    author: str = ""
    published: str = ""
    #: Where the text waits on disk while the run goes on, so memory holds summaries, not sources.
    spilled: SpilledText | None = field(default=None, repr=False, compare=False)
    #: The text's content hash (what a later report compares to see a changed source).
    digest: str = ""

    def __post_init__(self) -> None:
        if not self.digest:
            self.digest = content_hash(self.full_text())

    def full_text(self) -> str:
        return self.spilled.read() if self.spilled is not None else self.text

    def to_json(self) -> dict[str, Any]:
        """The source as the JSON report gives it, its full text included."""
        data = {name: getattr(self, name) for name in self.__dataclass_fields__ if name not in ("spilled", "digest")}
        data["text"] = self.full_text()
        return data


@dataclass
class _Read:
    """A source as read: its document (text set aside), the text's hash and place on disk, and whether
    it holds instructions aimed at models."""

    doc: Document
    digest: str
    spilled: SpilledText
    aimed: bool


@dataclass
class ResearchResult:
    run_id: str
    status: str
    question: str
    models: list[str]
    started_at: str
    sources: list[Source] = field(default_factory=list)
    failed: list[dict[str, str]] = field(default_factory=list)
    analyses: list[dict[str, str]] = field(default_factory=list)
    synthesis: str = ""
    notes: list[str] = field(default_factory=list)
    report_paths: dict[str, str] = field(default_factory=dict)
    totals: dict[str, Any] = field(default_factory=dict)
    markdown: str = ""
    #: Set by pipelines that compare with an earlier report: the "What changed" section's Markdown.
    changes: str = ""
    #: Every cited sentence held against its sources (see :mod:`agent.claimcheck`), and their counts.
    claims: list[dict[str, Any]] = field(default_factory=list)
    claims_summary: dict[str, int] = field(default_factory=dict)
    claims_section: str = ""

    def findings(self) -> list[str]:
        """The answer's sentences, citations stripped: what a later report compares itself with. A
        sentence that failed the claim check is no finding."""
        failed = {re.sub(r"\W+", " ", c["text"]).lower().strip() for c in self.claims
                  if c.get("section") == "answer" and c.get("verdict") in ("figure not in source", "found elsewhere",
                                                                            "not found")}
        return [f for f in self._sentences() if re.sub(r"\W+", " ", f).lower().strip() not in failed]

    def _sentences(self) -> list[str]:
        synthesis = re.sub(r" ⚠ \*[^*\n]*\*", "", self.synthesis)  # the claim check's marks are no findings
        answer = re.split(r"^#+ ", synthesis, flags=re.M)
        body = next((part for part in answer if part.lower().startswith("answer")), synthesis)
        body = body.split("\n", 1)[1] if body.lower().startswith("answer") and "\n" in body else body
        text = re.sub(r"\s*\[\d+\]", "", body)
        parts = re.split(r"(?<=[.!?])\s+|\n+(?:[-*]\s+)?", text)
        return [" ".join(p.split()) for p in parts if len(p.split()) >= 3]

    def outcome(self) -> dict[str, Any]:
        """What the journal keeps of a completed run for the next one to compare with."""
        return {
            "sources": [{"uri": s.uri, "title": s.title, "digest": s.digest} for s in self.sources],
            "failed": [f["what"] for f in self.failed],
            "findings": self.findings(),
        }


def _model_id(model_id: str) -> tuple[str, str | None]:
    """A model as runs record it, and its provider: a ``[models]`` name as given (its provider is the
    file's to say), else ``PROVIDER:MODEL`` normalized."""
    if configured_model(model_id) is not None:
        return model_id.strip(), None
    provider, model = parse_model_id(model_id)
    return f"{provider}:{model}", provider


def normalize_inputs(inputs: ResearchInputs) -> ResearchInputs:
    """Validate inputs before anything runs; every problem is a one-line :class:`UsageError`."""
    question = " ".join(inputs.question.split())
    if not question:
        raise UsageError("the question is empty", hint='research run "What do we know about X?" --file notes/')
    models: list[str] = []
    for model_id in inputs.models or [DEFAULT_MODEL]:
        normalized, _ = _model_id(model_id)
        if normalized not in models:
            models.append(normalized)
    if not inputs.files and not inputs.urls and not inputs.search:
        raise UsageError("no sources given", hint="pass --file PATH (files or directories), --url URL or --search N")
    search = int(inputs.search or 0)
    if not 0 <= search <= MAX_SEARCH:
        raise UsageError(f"--search {search} is out of range", hint=f"ask for 1 to {MAX_SEARCH} search results")
    check_search(search)
    depth, breadth = int(inputs.depth or 0), int(inputs.breadth or 2)
    if not 0 <= depth <= MAX_DEPTH:
        raise UsageError(f"--depth {depth} is out of range", hint=f"use 0 to {MAX_DEPTH} rounds of follow-up research")
    if not 1 <= breadth <= MAX_BREADTH:
        raise UsageError(f"--breadth {breadth} is out of range", hint=f"use 1 to {MAX_BREADTH} follow-up queries a round")
    if depth and not search_available():
        raise UsageError("--depth needs a search backend for its follow-up queries and none is configured",
                         hint="set FIRECRAWL_API_KEY (or FIRECRAWL_API_URL for a self-hosted Firecrawl)")
    # One URL spelled two ways is one source; file:// URLs are local files and are read as such.
    urls = url_sources.dedupe(list(inputs.urls))
    local = []
    for url in urls:
        if url_sources.is_file_url(url):
            path = url_sources.file_url_path(url)
            if not Path(path).exists():
                raise UsageError(f"no such file: {url}", hint="check the file:// URL given to --url or --urls-file")
            local.append(path)
    web = [u for u in urls if url_sources.is_web_url(u)]
    paths = list(inputs.files) + local
    files = [str(p) for p in file_sources.expand(paths)] if paths else []
    check_with = None
    if inputs.check_with:
        check_with, provider = _model_id(inputs.check_with)
        if provider == "local":
            raise UsageError("--check-with local:extractive cannot judge claims (it quotes, it does not read)",
                             hint="name a hosted model, e.g. --check-with openai:gpt-4o-mini")
    return ResearchInputs(question=question, files=files, urls=web, models=models,
                          search=search, depth=depth, breadth=breadth,
                          rejected=[list(r) for r in inputs.rejected], check_with=check_with)


#: The planner's answer, asked for through each vendor's structured output.
PLAN_SCHEMA = {
    "title": "search_plan",
    "type": "object",
    "properties": {"queries": {"type": "array", "items": {"type": "string"}}},
    "required": ["queries"],
    "additionalProperties": False,
}
#: A search query longer than this is a sentence the planner wrote, not a query: it is cut to its first words.
MAX_QUERY_WORDS = 32


def parse_queries(text: str, limit: int) -> tuple[list[str], list[str]]:
    """Search queries from a planner's answer, and what had to be done to get them, in words.

    JSON ``{"queries": [...]}`` is what was asked for; an answer that is not (a model that ignored the
    format) gives its lines instead, and a query longer than :data:`MAX_QUERY_WORDS` words is cut.
    """
    notes: list[str] = []
    match = re.search(r"\{.*\}", text, flags=re.S)
    queries: list[str] = []
    if match:
        try:
            data = json.loads(match.group(0))
            queries = [str(q) for q in data.get("queries", []) if isinstance(q, str)]
        except (ValueError, AttributeError):
            queries = []
    if not queries:
        queries = [re.sub(r"^\s*(?:[-*+]|\d+[.)])\s*", "", line).strip().strip('"') for line in text.splitlines()]
        if any(q.strip() for q in queries):
            notes.append("the planner did not answer in the JSON asked for; its lines were read as queries")
    out: list[str] = []
    cut = 0
    for q in (" ".join(q.split()) for q in queries):
        words = q.split()
        if len(words) > MAX_QUERY_WORDS:
            q, cut = " ".join(words[:MAX_QUERY_WORDS]), cut + 1
        if q and q not in out:
            out.append(q)
    if cut:
        notes.append(f"{cut} of its queries {'were' if cut != 1 else 'was'} longer than {MAX_QUERY_WORDS} words "
                     "and cut to their first words")
    return out[:limit], notes


class ResearchWorkflow(Stages):
    """One research run's stages, on a runtime that replays or pays for each step."""

    templates = ("summarize", "analyze", "report", "plan")
    approvable = ("analyze", "report")

    def __init__(self, runtime: Any, inputs: ResearchInputs, options: RunOptions, progress: Progress,
                 started_at: str) -> None:
        super().__init__(runtime, inputs, options, progress, started_at, models=inputs.models)
        self._digests: dict[str, int] = {}
        self._in_hand: asyncio.Semaphore | None = None
        self._spill: Spill | None = None
        self.checker: Any = None  # the --check-with model, made when first needed

    # -- stages ------------------------------------------------------------------------------
    async def gather(self) -> list[str]:
        """Every source to read: files, URLs, then search results not already among them."""
        refs = list(self.inputs.files)
        urls = list(self.inputs.urls)
        for where, why in self.inputs.rejected:
            self.fail("gather", where, SourceError(why))
        if not self.inputs.search:
            self.progress.stage("gather", 1)
            self.progress.advance("gather", "done")
            return refs + urls
        question = self.inputs.question
        (hits,) = await self.each("gather", [question], lambda q: self.search(q, self.inputs.search),
                                 lambda q: f"search {q!r}")
        seen = {url_sources.normalize_url(u) for u in urls}
        for hit in hits or []:
            if not url_sources.is_web_url(hit.url):
                continue
            normalized = url_sources.normalize_url(hit.url)
            if normalized not in seen:
                seen.add(normalized)
                urls.append(hit.url)
        return refs + urls

    async def _summarize_text(self, title: str, text: str, name: str) -> str:
        doc = {"title": title, "text": text}
        return await self.ask(
            self.providers[0], "summarize", name[:120],
            {"task": "summarize", "question": self.inputs.question, "source": doc},
            question=self.inputs.question, source=doc, max_words=SUMMARY_WORDS,
        )

    async def summarize(self, title: str, text: str, label: str, digest: str | None = None) -> str:
        """One summary per source text; a text too long for the model is summarized in parts, then combined.

        Keyed by title and text alone (not the source's number, not where it came from), so a source read
        again unchanged, or the same text at two addresses, is summarized once. The steps a summary took
        are recorded (:meth:`recorded`): its replay replays them without splitting the text and rendering
        every part's prompt again. ``digest`` is the text's :func:`content_hash`, when the caller has it.
        """
        # Half the context for the source, after room for the prompt and the summary itself: an 8k-token
        # server must not get an 8k-token part of a page and no room to answer.
        provider = self.providers[0]
        budget = max(256, (await self.context_window(provider) - SUMMARY_RESERVE_TOKENS) // 2)
        request = {
            "title": title, "text": digest or content_hash(text), "label": label, "budget": budget,
            "question": self.inputs.question, "template": self.prompts.digest("summarize"),
            "model": [provider.name, provider.endpoint, provider.model, provider.reads_offline_hint,
                      provider.max_output_tokens],
        }
        return await self.recorded("summary", request, lambda: self._summarize(title, text, label, budget),
                                   valid=lambda summary: isinstance(summary, str))

    async def _summarize(self, title: str, text: str, label: str, budget: int) -> str:
        if chunking.approx_tokens(text) <= budget:
            return await self._summarize_text(title, text, f"summarize {label}")
        parts = chunking.split(text, budget)
        partials = await asyncio.gather(*(
            self._summarize_text(f"{title} (part {i} of {len(parts)})", part, f"summarize {label} part {i}/{len(parts)}")
            for i, part in enumerate(parts, 1)
        ))
        combined = "\n\n".join(partials)
        for _ in range(3):  # very long sources: reduce the partials again, a bounded number of times
            if chunking.approx_tokens(combined) <= budget:
                break
            groups = chunking.split(combined, budget)
            combined = "\n\n".join(await asyncio.gather(*(
                self._summarize_text(title, group, f"combine {label}") for group in groups
            )))
        return await self._summarize_text(title, combined, f"combine {label}")

    def _summaries(self, sources: list[Source]) -> list[dict[str, Any]]:
        return [{"id": s.id, "title": s.title, "text": s.summary} for s in sources if s.summary is not None]

    async def analyze(self, provider: Any, sources: list[Source], note: str | None = None) -> dict[str, str]:
        summaries = self._summaries(sources)
        text = await self.ask(
            provider, "analyze", f"analyze with {provider.model_id}",
            {"task": "analyze", "question": self.inputs.question, "summaries": summaries},
            question=self.inputs.question, summaries=summaries, note=note,
        )
        return {"model": provider.model_id, "text": text}

    async def synthesize(self, sources: list[Source], analyses: list[dict[str, str]], note: str | None = None) -> str:
        summaries = self._summaries(sources)
        provider = self.providers[0]
        return await self.ask(
            provider, "report", f"report with {provider.model_id}",
            {"task": "report", "question": self.inputs.question, "summaries": summaries, "analyses": analyses},
            question=self.inputs.question, summaries=summaries, analyses=analyses, note=note,
        )

    def _ingest(self, refs: list[str], docs: list["_Read | None"], sources: list[Source]) -> list[Source]:
        """Number the documents read, in the order given, skipping content already among ``sources``."""
        new: list[Source] = []
        for ref, read in zip(refs, docs):
            if read is None:
                continue
            doc, digest = read.doc, read.digest
            if digest in self._digests:
                self.notes.append(f"{ref} has the same content as [{self._digests[digest]}]; it is counted once.")
                continue
            source = Source(id=len(sources) + 1, uri=doc.uri, title=doc.title, spilled=read.spilled, digest=digest,
                            content_type=doc.content_type, site=doc.site, final_url=doc.final_url,
                            fetched_at=doc.fetched_at, author=doc.author, published=doc.published)
            self._digests[digest] = source.id
            sources.append(source)
            new.append(source)
            if read.aimed:
                self.notes.append(f"Source [{source.id}] contains instructions aimed at AI models; treat what it "
                                  "says, and any claim resting on it, with care.")
        return new

    def _hand(self) -> asyncio.Semaphore:
        """Sources read but not yet summarized, at most a few waves of the model's calls: the rest wait to
        be read, so a run over thousands of sources never holds thousands of texts."""
        if self._in_hand is None:
            # A batched run summarizes nothing until every source is read (one batch for them all), so
            # it holds them all: its texts wait on disk, its requests in the batch being gathered.
            bound = max(8, 2 * self.limits.concurrency) if self.runtime.batcher is None else 1 << 30
            self._in_hand = asyncio.Semaphore(bound)
        return self._in_hand

    def spill(self) -> Spill:
        if self._spill is None:
            directory = getattr(self.runtime.store, "directory", None)
            self._spill = Spill(directory)
        return self._spill

    async def _read_and_summarize(self, refs: list[str], sources: list[Source], stage: str = "") -> list[Source]:
        """Read every ref and summarize each as soon as it is read: a slow source delays only itself.

        Numbering waits for all the reads (it follows the order the refs were given, so a resumed run
        numbers alike); the summaries do not, since their keys hold no number.
        """
        pending: dict[str, asyncio.Future] = {}
        hand = self._hand()

        async def read(ref: str) -> _Read:
            await hand.acquire()  # given back when this source's summary is done
            try:
                doc = await self.fetch(ref)
            except BaseException:
                hand.release()
                raise
            # A page's own footnote markers must never read as the report's citations of other sources.
            text = citations.neutralize(doc.text)
            doc.text = ""
            digest = content_hash(text)
            if digest in pending:
                hand.release()
            else:
                task = pending[digest] = asyncio.ensure_future(self.summarize(doc.title, text, ref, digest))
                task.add_done_callback(lambda _: hand.release())
            # Scanning a long text takes milliseconds; the answer for its content is kept for replays.
            aimed = self.remembered("aimed-at-models-1", digest, lambda: citations.aimed_at_models(text))
            return _Read(doc, digest, self.spill().put(text), bool(aimed))

        batcher = self.runtime.batcher
        try:
            if batcher is not None:
                batcher.hold("summaries")  # one batch of summaries, handed over once every source is read
            try:
                docs = await self.each(f"scrape{stage}", refs, read,
                                       lambda ref: f"fetch {ref}" if url_sources.is_web_url(ref) else f"read {ref}")
            finally:
                if batcher is not None:
                    batcher.release("summaries")
            new = self._ingest(refs, docs, sources)
            summaries = await self.each(f"summarize{stage}", new, lambda s: pending[s.digest],
                                        lambda s: f"summarize [{s.id}] {s.uri}")
        finally:
            for task in pending.values():  # a stage that stopped early leaves no summary running
                if not task.done():
                    task.cancel()
            await asyncio.gather(*pending.values(), return_exceptions=True)
        for source, summary in zip(new, summaries):
            # A summary speaks of one source; numbered citations in it would point at nothing.
            source.summary = citations.verify(summary, set())[0] if summary is not None else None
        return new

    async def plan(self, round_: int, sources: list[Source]) -> list[str]:
        """Follow-up search queries proposed by the first model from what the sources said so far."""
        summaries = self._summaries(sources)
        breadth = self.inputs.breadth
        text = await self.ask(
            self.providers[0], "plan", f"plan round {round_}",
            {"task": "plan", "question": self.inputs.question, "summaries": summaries, "breadth": breadth},
            schema=PLAN_SCHEMA, question=self.inputs.question, summaries=summaries, breadth=breadth,
        )
        queries, notes = parse_queries(text, breadth)
        if notes:
            self.notes.append(f"Deep research, round {round_}: {'; '.join(notes)}.")
        return queries

    async def deepen(self, sources: list[Source]) -> None:
        """``--depth`` rounds of plan -> search -> read -> summarize; each step durable, so a resume decides alike."""
        searched: set[str] = {self.inputs.question.lower()}
        seen = {url_sources.normalize_url(s.uri) for s in sources if url_sources.is_web_url(s.uri)}
        per_query = self.inputs.search or 3
        for round_ in range(1, self.inputs.depth + 1):
            (queries,) = await self.each(f"plan {round_}", [round_], lambda r: self.plan(r, sources),
                                          lambda r: f"plan round {r}")
            queries = [q for q in queries or [] if q.lower() not in searched]
            if not queries:
                self.notes.append(f"Round {round_} of deep research proposed no new queries; it stopped there.")
                return
            searched.update(q.lower() for q in queries)
            hits = await self.each(f"search {round_}", queries,
                                    lambda q: self.search(q, per_query),
                                    lambda q: f"search {q!r}")
            refs = []
            for hit in (h for found in hits if found for h in found):
                if url_sources.is_web_url(hit.url) and url_sources.normalize_url(hit.url) not in seen:
                    seen.add(url_sources.normalize_url(hit.url))
                    refs.append(hit.url)
            if refs:
                await self._read_and_summarize(refs, sources, f" {round_}")

    def check_ready(self) -> None:
        super().check_ready()
        if self.inputs.check_with and not self.options.no_check_claims:
            self.checker = get_provider(self.inputs.check_with, limits=self.limits)
            self.checker.check_ready()
        for provider in self.providers + ([self.checker] if self.checker is not None else []):
            if self.options.max_cost is not None and price_of(provider.name, provider.model) is None:
                raise UsageError(f"--max-cost cannot be kept for {provider.model_id}: its price is unknown",
                                 hint="add it to a price file named by RESEARCH_PRICES, or drop --max-cost")

    async def run(self) -> ResearchResult:
        self.check_ready()
        journal = self.runtime.journal
        if not self.runtime.pins and journal is not None and not journal.asked_before(self.inputs.question,
                                                                                     self.runtime.run_id):
            # A question this cache never answered: its analyses are new steps, so paying is certain.
            self.warm()
        refs = await self.gather()
        sources: list[Source] = []
        await self._read_and_summarize(refs, sources)
        if not sources:
            first = f", the first with: {self.failed[0]['error']}" if self.failed else ""
            raise UsageError(f"none of the sources could be read{first}",
                             hint="check the paths and URLs given")
        if all(s.summary is None for s in sources):
            first = next(f for f in self.failed if f["stage"] == "summarize")
            raise ResearchError(f"every summary failed, the first with: {first['error']}",
                                hint=f"fix that, then run: research resume {self.runtime.run_id}")
        if self.inputs.depth:
            await self.deepen(sources)

        note = await self.checkpoint("analyze")
        analyses = [a for a in await self.each("analyze", self.providers, lambda p: self.analyze(p, sources, note),
                                                 lambda p: f"analyze with {p.model_id}") if a is not None]
        valid = {s.id for s in sources if s.summary is not None}
        for analysis in analyses:
            analysis["text"], bad = citations.verify(analysis["text"], valid)
            if bad:
                self.notes.append(f"{analysis['model']} cited source numbers {', '.join(map(str, bad))}, which do not "
                                  "exist; those citations were removed.")
        synthesis = ""
        if analyses:
            note = await self.checkpoint("report")
            (synthesis,) = await self.each("report", [None], lambda _: self.synthesize(sources, analyses, note),
                                            lambda _: "report")
            if synthesis:
                synthesis, bad = citations.verify(synthesis, valid)
                if bad:
                    self.notes.append(f"The synthesis cited source numbers {', '.join(map(str, bad))}, which do not "
                                      "exist; those citations were removed.")
                if not re.search(r"^##\s+Answer\b", synthesis, flags=re.M | re.I):
                    # The model opened with a heading of its own (or none): the report still has its Answer.
                    synthesis = "## Answer\n\n" + re.sub(r"^#\s+.*\n+", "", synthesis, count=1)
                    self.notes.append("The synthesis had no Answer section of its own; its text is shown under one.")
                if not re.search(r"^#+ .*agree", synthesis, flags=re.M | re.I):
                    synthesis = synthesis.rstrip() + "\n\n" + citations.agreement(analyses)
        result = ResearchResult(
            run_id=self.runtime.run_id or "", status="completed", question=self.inputs.question,
            models=list(self.inputs.models), started_at=self.started_at, sources=sources,
            failed=self.failed, analyses=analyses, synthesis=synthesis or "", notes=list(dict.fromkeys(self.notes)),
        )
        if not self.options.no_check_claims:
            await self.check_claims(result)
        return result

    async def aclose(self) -> None:
        await super().aclose()
        if self.checker is not None:
            await self.checker.aclose()

    async def second_pass(self, verdicts: list[Any]) -> dict[int, dict[str, Any]]:
        """The claims the first pass left ``unchecked``, judged by the ``check_with`` model as durable steps
        (keyed by claim and passages, so a replay or an unchanged night is free); by index in ``verdicts``."""
        from agent import claimcheck
        from agent.llm import CompletionRequest, complete

        if self.checker is None:  # check_ready made it when the run has a check_with model
            return {}
        provider = self.checker
        todo = [i for i, v in enumerate(verdicts) if v.verdict == "unchecked" and v.passages]

        async def judge(i: int) -> dict[str, Any]:
            if self.runtime.batcher is not None:
                from agent.batches import stage_var

                stage_var.set("claim check")
            v = verdicts[i]
            system, user, schema = claimcheck.second_pass_prompt(v.claim, v.passages)
            request = CompletionRequest(prompt=user, system=system, max_tokens=300, schema=schema,
                                        context={"task": "check", "claim": v.claim.text})
            completion, _ = await complete(self.runtime, provider, request, name=f"check claim: {v.claim.text[:60]}")
            return {"model": provider.model_id, **claimcheck.parse_second_pass(completion.text, v.passages)}

        judged = await self.each("check claims", todo, judge, lambda i: f"check claim {verdicts[i].claim.text[:60]!r}")
        return {i: j for i, j in zip(todo, judged) if j is not None}

    async def check_claims(self, result: ResearchResult) -> None:
        """Hold every cited sentence of the Answer and the analyses against the sources it cites.

        Deterministic and quick (see :mod:`agent.claimcheck`), so a replay checks alike; each verdict
        goes to the JSON report, and failed ones are marked where they stand in the Markdown.
        """
        from agent import claimcheck

        def text_of(s: Source) -> str:
            return "\n\n".join(filter(None, [s.title, s.author, s.site, s.published, s.full_text()]))

        # Made when a text's verdicts are not stored yet, then shared; it reads the sources' texts from
        # disk a few at a time.
        index = functools.cache(lambda: claimcheck.corpus(LazyTexts({s.id: s for s in result.sources}, text_of)))

        sources = [[s.id, s.digest, s.title, s.author, s.site, s.published] for s in result.sources]

        def first_pass(text: str, start: int = 0, end: int | None = None) -> list[Any]:
            # The same text against the same sources always gets the same verdicts: a replay reads them
            # instead of matching every claim again.
            value = self.remembered(f"claims-{claimcheck.VERSION}-{claimcheck.OTHERS}",
                                    {"text": text, "start": start, "end": end, "sources": sources},
                                    lambda: [v.to_json() for v in claimcheck.check_all(text, index(), start, end)])
            return [claimcheck.Verdict.from_json(v) for v in value]

        texts_checked: list[tuple[str, str, list[Any]]] = []
        if result.synthesis:
            start, end = claimcheck.answer_span(result.synthesis)
            texts_checked.append(("answer", result.synthesis, first_pass(result.synthesis, start, end)))
        for analysis in result.analyses:
            texts_checked.append((f"analysis:{analysis['model']}", analysis["text"], first_pass(analysis["text"])))
        everything = [v for _, _, checked in texts_checked for v in checked]
        judged = await self.second_pass(everything)
        marked: list[str] = []
        offset = 0
        for where, text, checked in texts_checked:
            refuted = []
            for i, v in enumerate(checked):
                j = judged.get(offset + i)
                if j and j.get("verdict") in ("not supported", "contradicted"):
                    cited = ", ".join(f"[{n}]" for n in v.claim.cited)
                    refuted.append((v.claim.end, f" ⚠ *{j['verdict']} by {cited}, says {j['model']}*"))
            marked.append(claimcheck.mark(text, checked, extra=refuted))
            offset += len(checked)
        for (where, _, _), text in zip(texts_checked, marked):
            if where == "answer":
                result.synthesis = text
            else:
                next(a for a in result.analyses if f"analysis:{a['model']}" == where)["text"] = text
        result.claims = []
        i = 0
        for where, _, checked in texts_checked:
            for v in checked:
                entry = {**v.to_json(), "section": where}
                if i in judged:
                    entry["second_pass"] = judged[i]
                result.claims.append(entry)
                i += 1
        result.claims_summary = claimcheck.summary(everything)
        if judged:
            for j in judged.values():
                key = f"second pass: {j.get('verdict') or 'no verdict'}"
                result.claims_summary[key] = result.claims_summary.get(key, 0) + 1
        result.claims_section = claimcheck.section(everything) if everything else ""
        refuted = [(everything[i], j) for i, j in judged.items() if j.get("verdict") in ("not supported", "contradicted")]
        if refuted:
            result.claims_section = result.claims_section.rstrip() + "\n" + "\n".join(
                f"- {j['verdict']} ({j['model']}): “{v.claim.text}”" + (f" — it relied on: “{j['quote']}”"
                                                                         if j.get("quote") and j.get("quote_found") else "")
                for v, j in refuted) + "\n"


PIPELINE = Pipeline(name="research", version=VERSION, inputs=ResearchInputs, normalize=normalize_inputs,
                    workflow=ResearchWorkflow, templates=ResearchWorkflow.templates)
