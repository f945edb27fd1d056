"""Model calls through the vendors' batch APIs: half price, answered within the day, as a durable wait.

A run made with ``--batch`` (``batch = true`` in ``research.toml``, ``Research(batch=True)``) gives its
runtime a :class:`Batcher`. A model step that has to be paid for then does not call its provider: it
joins the batch being gathered for its provider and stage (summaries, each model's analysis, the
synthesis, deep mode's planning), and waits for its answer like for any other.

A batch goes through the journal's ``batches`` table, so no process killed at any moment makes a second
batch of the same steps:

1. the **intent** (stage, step keys in order, time, count) is journaled before the request;
2. the vendor's id is journaled once it has accepted the batch (``submitted``). A create that failed
   without an answer may still have made it, so the batch is looked up before it is sent again: by its
   tag where the vendor keeps one (OpenAI's metadata, Gemini's display name), else by the time and count
   of requests (Anthropic's), its ``custom_id``s checked when its results arrive;
3. a later process that needs one of its steps finds the batch by key and waits for it instead: an intent
   is looked up at the vendor and adopted, or abandoned if no vendor accepted it (an intent of the last
   hour is looked up again after ``RESEARCH_BATCH_GRACE`` seconds, 20, for a create still in flight);
4. the answers, read back by ``custom_id`` (by position for Gemini), are each step's paid result, in the
   same content-addressed store as a synchronous answer; the batch is then ``collected``.

A line that failed in the batch follows the retry policy: a retryable failure (a 5xx, a 429) is asked
again synchronously under it, any other fails its step. Requests an expired or cancelled batch never ran
go again in a new batch (at most :data:`RESUBMITS` times), and the report says so. A vendor that refuses
the whole batch, or a provider with no batch API (``local:``, most ``openai-compatible`` servers), has its
requests asked one by one, and the run says so once.

Waiting polls with backoff (``RESEARCH_BATCH_POLL`` seconds at first, at most ``RESEARCH_BATCH_POLL_CAP``),
saying how far each batch has got. With ``--no-wait`` the run stops as soon as its batches are accepted,
durably ``waiting``: :class:`agent.errors.BatchWaiting`, and ``research resume`` collects them.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable

from agent.config import env
from agent.errors import BatchWaiting, ProviderError
from agent.llm import Completion, CompletionRequest

#: The stage a model call belongs to, by the template that rendered it: one batch per provider and stage.
STAGES = {"summarize": "summaries", "analyze": "analysis", "report": "synthesis", "plan": "planning",
          "changes": "changes"}
#: How often the requests an expired or cancelled batch never ran are sent again in a new batch.
RESUBMITS = 3
#: Tries at handing a batch over (each after looking for one the last try may have made).
SUBMIT_TRIES = 5
#: An intent younger than this may have a create still on its way to the vendor from a process that
#: died; older, what the vendor does not have, it never got.
INFLIGHT_S = 3600.0

stage_var: contextvars.ContextVar[str] = contextvars.ContextVar("batch_stage", default="requests")


def custom_id(key: str) -> str:
    """The name a step's request has in a batch: its key's hash (64 characters, as every vendor takes)."""
    return key.rsplit(":", 1)[-1]


def _positive(variable: str, default: float) -> float:
    try:
        value = float(env(variable) or default)
    except ValueError:
        return default
    return value if value > 0 else default


@dataclass
class _Entry:
    key: str
    request: CompletionRequest
    future: asyncio.Future
    resubmits: int = 0


@dataclass
class _Group:
    """Requests gathered for one provider and stage, handed over once no more come for a moment."""

    provider: Any
    stage: str
    entries: list[_Entry] = field(default_factory=list)
    last: float = 0.0


class Batcher:
    """Gathers a run's paid model calls into batches, hands them over, waits for and collects them."""

    def __init__(self, runtime: Any, *, wait: bool = True, min_size: int = 1,
                 say: Callable[[str], None] | None = None, notes: list[str] | None = None) -> None:
        self.runtime = runtime
        self.journal = runtime.journal
        self.wait = wait
        self.min_size = max(1, int(min_size))
        self.say = say or (lambda line: None)
        self.notes = notes if notes is not None else []
        self.poll_s = _positive("RESEARCH_BATCH_POLL", 10.0)
        self.poll_cap_s = _positive("RESEARCH_BATCH_POLL_CAP", 300.0)
        self.linger_s = _positive("RESEARCH_BATCH_LINGER", 0.5)
        #: How long a batch not found for an intent is looked for again later (a create in flight at a kill).
        self.grace_s = _positive("RESEARCH_BATCH_GRACE", 20.0)
        self._groups: dict[tuple[int, str], _Group] = {}
        self._holds: Counter[str] = Counter()
        self._watches: dict[str, asyncio.Task] = {}
        self._waiters: dict[str, dict[str, list[_Entry]]] = {}
        self._progress: dict[str, str] = {}
        self._said: set[str] = set()

    # -- gathering ---------------------------------------------------------------------------
    def hold(self, stage: str) -> None:
        """More requests of ``stage`` are coming (its sources are still being read): do not hand it over yet."""
        self._holds[stage] += 1

    def release(self, stage: str) -> None:
        self._holds[stage] -= 1

    async def complete(self, provider: Any, request: CompletionRequest, key: str) -> tuple[Completion, str] | None:
        """The answer to step ``key`` through ``provider``'s batch API, and its batch's id; None when the
        request is to be asked synchronously instead (no batch API, a refused batch, a small stage)."""
        if not getattr(provider, "batch_api", False):
            self._once(provider.model_id, f"no batch API at {provider.model_id}: its requests were asked one by one "
                                          "at the usual price")
            return None
        future = asyncio.get_running_loop().create_future()
        self._join(provider, stage_var.get(), _Entry(key, request, future))
        return await future

    def _join(self, provider: Any, stage: str, entry: _Entry) -> None:
        loop = asyncio.get_running_loop()
        group = self._groups.get((id(provider), stage))
        if group is None:
            group = self._groups[(id(provider), stage)] = _Group(provider, stage)
            asyncio.ensure_future(self._hand_over_when_quiet(group))
        group.entries.append(entry)
        group.last = loop.time()

    async def _hand_over_when_quiet(self, group: _Group) -> None:
        loop = asyncio.get_running_loop()
        while self._holds[group.stage] > 0 or loop.time() - group.last < self.linger_s:
            await asyncio.sleep(self.linger_s / 2)
        del self._groups[(id(group.provider), group.stage)]
        try:
            await self._hand_over(group.provider, group.stage, group.entries)
        except BaseException as exc:
            for entry in group.entries:
                if not entry.future.done():
                    entry.future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise

    # -- handing over ------------------------------------------------------------------------
    async def _hand_over(self, provider: Any, stage: str, entries: list[_Entry]) -> None:
        fresh: list[_Entry] = []
        resolved: dict[str, dict[str, Any] | None] = {}
        carried = self.journal.open_batches_of([entry.key for entry in entries])
        for entry in entries:
            row = carried.get(entry.key)
            if row is not None and row["id"] not in resolved:
                resolved[row["id"]] = await self._resolve(provider, row)
            row = resolved.get(row["id"]) if row is not None else None
            if row is not None:
                self._attach(provider, row, entry)
            else:
                fresh.append(entry)
        if not fresh:
            return
        if len(fresh) < self.min_size:
            for entry in fresh:
                entry.future.set_result(None)
            return
        for part in self._parts(provider, fresh):  # within what the vendor takes in one batch
            await self._submit(provider, stage, part)

    def _parts(self, provider: Any, entries: list[_Entry]) -> list[list[_Entry]]:
        most = provider.batch_max_requests
        if env("RESEARCH_BATCH_MAX"):  # a lower limit of the user's own
            most = min(most, int(_positive("RESEARCH_BATCH_MAX", most)))
        parts: list[list[_Entry]] = [[]]
        size = 0
        for entry in entries:
            length = len(entry.request.prompt.encode()) + len(entry.request.system.encode()) + 1024
            if parts[-1] and (len(parts[-1]) >= most or size + length > provider.batch_max_bytes):
                parts.append([])
                size = 0
            parts[-1].append(entry)
            size += length
        return parts

    async def _resolve(self, provider: Any, row: dict[str, Any]) -> dict[str, Any] | None:
        """A batch found carrying a step this run needs: as it is when submitted; an intent is looked up at
        the vendor (adopted if found, else abandoned: None)."""
        if row["status"] == "submitted":
            return row
        found = await self._find(provider, row)
        # A create sent just before its process died may still be on its way to the vendor (or an upload
        # before it, for minutes): give it a moment before deciding that no batch was made, and making one.
        if found is None and time.time() - row["created_at"] < INFLIGHT_S:
            await asyncio.sleep(self.grace_s)
            found = await self._find(provider, row)
        if found is None:
            self.journal.batch_update(row["id"], "abandoned")
            return None
        self.journal.batch_update(row["id"], "submitted", vendor_id=found)
        return self.journal.batch(row["id"])

    async def _find(self, provider: Any, row: dict[str, Any]) -> str | None:
        def find() -> Any:
            return provider.batch_find(row["id"], count=row["count"], created_after=row["created_at"],
                                       taken=self.journal.adopted(row["endpoint"]))

        return await self._retrying(find, tries=SUBMIT_TRIES)

    async def _retrying(self, call: Callable[[], Any], *, tries: int | None = None) -> Any:
        """``await call()``, made again after a retryable ProviderError (a 429, a 5xx, no answer): after the
        server's wait if it gave one, else a delay doubling up to the poll cap; ``tries`` at most (None:
        until it answers: a batch does not go away because its vendor was busy for a while)."""
        delay = self.poll_s
        attempt = 0
        while True:
            attempt += 1
            try:
                return await call()
            except ProviderError as exc:
                if exc.fatal or not exc.retryable or (tries is not None and attempt >= tries):
                    raise
                await asyncio.sleep(max(exc.retry_after or 0.0, delay))
                delay = min(delay * 2, self.poll_cap_s)

    def _take(self, batch_id: str) -> list[_Entry]:
        """The entries waiting on a batch, no longer waiting on it."""
        return [entry for entries in self._waiters.pop(batch_id, {}).values() for entry in entries]

    async def _submit(self, provider: Any, stage: str, entries: list[_Entry]) -> None:
        from agent.providers.base import BatchItem

        run_id = self.runtime.run_id
        # The batch's id is its tag at the vendor too: the run and the stage it is of, made unique.
        tag = f"research:{run_id}:{stage}:{uuid.uuid4().hex[:12]}"
        row = self.journal.batch_intent(tag, run_id=run_id, stage=stage, provider=provider.model_id,
                                        endpoint=provider.endpoint, keys=[entry.key for entry in entries])
        items = [BatchItem(custom_id(entry.key), entry.request) for entry in entries]
        tried = False

        async def hand_over() -> str:
            nonlocal tried
            if tried:  # the last try may have made the batch without saying so
                found = await self._find(provider, row)
                if found is not None:
                    return found
            tried = True
            return await provider.batch_submit(items, row["id"])

        try:
            vendor_id = await self._retrying(hand_over, tries=SUBMIT_TRIES)
        except ProviderError as exc:
            if exc.retryable and not exc.fatal:
                self.journal.batch_update(row["id"], "intent")  # still unknown: the next run looks it up
                raise
            self.journal.batch_update(row["id"], "failed", detail={"error": exc.one_line()})
            if exc.fatal or exc.status in (401, 403):
                raise
            # Refused as a batch (a model the batch API does not serve): asked one by one instead.
            self._once(f"refused {provider.model_id}",
                       f"the batch API of {provider.model_id} refused the {stage} batch ({exc.message}); "
                       "its requests were asked one by one at the usual price")
            for entry in entries:
                entry.future.set_result(None)
            return
        self.journal.batch_update(row["id"], "submitted", vendor_id=vendor_id)
        self.say(f"{stage}: batch of {len(entries)} request{'s' if len(entries) != 1 else ''} handed to "
                 f"{provider.model_id}")
        row = self.journal.batch(row["id"])
        for entry in entries:
            self._attach(provider, row, entry)

    # -- waiting and collecting --------------------------------------------------------------
    def _attach(self, provider: Any, row: dict[str, Any], entry: _Entry) -> None:
        self._waiters.setdefault(row["id"], {}).setdefault(entry.key, []).append(entry)
        if row["id"] not in self._watches:
            self._watches[row["id"]] = asyncio.ensure_future(self._watch(provider, row))

    async def _watch(self, provider: Any, row: dict[str, Any]) -> None:
        from agent.providers.base import ForeignBatch

        try:
            answers = await self._wait_for(provider, row)
            if answers is not None:
                self._collect(provider, row, answers)
        except ForeignBatch as exc:
            # Adopted by count and time, but another's: its requests were never sent, so send them now.
            self.journal.batch_update(row["id"], "abandoned", detail={"error": exc.one_line()})
            for entry in self._take(row["id"]):
                self._join(provider, row["stage"], entry)
        except BaseException as exc:
            for entry in self._take(row["id"]):
                if not entry.future.done():
                    entry.future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
        finally:
            self._watches.pop(row["id"], None)

    async def _wait_for(self, provider: Any, row: dict[str, Any]) -> list[Any] | None:
        """Poll the batch until it ends (its answers), or once when not waiting (then the run waits)."""
        delay = self.poll_s
        seen = None
        while True:
            state = await self._retrying(lambda: provider.batch_status(row["vendor_id"]))  # a 429: wait, poll again
            # The journal knows how many requests it holds (not every vendor says while it runs).
            line = f"{row['stage']}: batch {min(state.done, row['count'])}/{row['count']} done at {provider.model_id}"
            self._progress[row["id"]] = line
            if (state.done, state.status) != seen:
                seen = (state.done, state.status)
                self.say(line)
            if state.status == "ended":
                return await self._retrying(lambda: provider.batch_results(
                    row["vendor_id"], [custom_id(key) for key in row["keys"]]))
            if state.status == "failed":
                self.journal.batch_update(row["id"], "failed", detail={"error": state.detail})
                self._once(f"failed {row['id']}", f"the {row['stage']} batch at {provider.model_id} failed "
                                                  f"({state.detail or 'no reason given'}); its requests were asked "
                                                  "one by one at the usual price")
                for entry in self._take(row["id"]):
                    entry.future.set_result(None)
                return None
            if not self.wait:
                waiting = self.waiting()
                for entry in self._take(row["id"]):
                    entry.future.set_exception(waiting)
                return None
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, self.poll_cap_s)

    def _collect(self, provider: Any, row: dict[str, Any], answers: list[Any]) -> None:
        # Each entry leaves the batch's waiters as its answer is handed out; those left are the requests the
        # batch never ran. If the store or the journal fails part-way, every entry still waiting hears the
        # error from ``_watch`` (``_take``).
        waiters = self._waiters.get(row["id"], {})
        counts: Counter[str] = Counter()
        for key, answer in zip(row["keys"], answers):
            if answer.completion is not None:
                # Stored before any step hears of it: if the store cannot take it (a full disk), the batch
                # is not marked collected, and the next run downloads its answers again instead of paying
                # for its requests a second time.
                self._keep(provider, row, key, answer.completion)
                counts["answered"] += 1
                for entry in waiters.pop(key, []):
                    entry.future.set_result((answer.completion, row["id"]))
            elif answer.error is not None:
                counts["failed"] += 1
                for entry in waiters.pop(key, []):
                    # Worth another try: asked again on its own, under the usual retry policy.
                    if answer.error.retryable:
                        entry.future.set_result(None)
                    else:
                        entry.future.set_exception(answer.error)
            else:
                counts[answer.unanswered or "missing"] += 1  # left waiting: sent again below
        self.journal.batch_update(row["id"], "collected", detail=dict(counts))
        for entry in self._take(row["id"]):
            if entry.resubmits < RESUBMITS:
                entry.resubmits += 1
                self._join(provider, row["stage"], entry)
            else:
                entry.future.set_result(None)

    def _keep(self, provider: Any, row: dict[str, Any], key: str, completion: Completion) -> None:
        """A batch's answer, stored as it comes: the step waiting for it stores it again as its own paid
        result, and an answer no step of this process waits for (its run stopped before asking again)
        is kept all the same, so nobody pays for it again."""
        from dataclasses import asdict

        from agent.pricing import cost_of

        usage = completion.usage
        self.runtime.store.put(key, completion.to_json(), kind="llm", meta={
            "name": f"{row['stage']} (from batch {row['id']})", "provider": provider.name, "model": provider.model,
            "input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens,
            "cost_usd": cost_of(provider.name, provider.model, usage, batch=True), "usage": asdict(usage),
            "detail": {"batch": row["id"]}})

    # -- saying ------------------------------------------------------------------------------
    def waiting(self) -> BatchWaiting:
        """The run's wait for its batches, with how far each has got."""
        return BatchWaiting(self.runtime.run_id, sorted(self._progress.values()) or ["handed over"])

    def _once(self, what: str, line: str) -> None:
        if what in self._said:
            return
        self._said.add(what)
        self.say(line)
        self.notes.append(line[0].upper() + line[1:] + ".")  # lines start with a word, never a model id


def batch_notes(journal: Any, run_id: str) -> list[str]:
    """What the report says of the run's batches that did not go as asked: requests an expired or
    cancelled batch never ran (sent again), and lines that failed; from the journal, so a resumed run
    says the same as an uninterrupted one."""
    notes = []
    for row in journal.batches(run_id):
        detail = row.get("detail") or {}
        unrun = {why: detail.get(why, 0) for why in ("expired", "cancelled", "missing") if detail.get(why)}
        if unrun:
            what = ", ".join(f"{n} {why}" for why, n in unrun.items())
            notes.append(f"The {row['stage']} batch at {row['provider']} ended before all its requests ran "
                         f"({what}); those were sent again.")
        if detail.get("failed"):
            notes.append(f"{detail['failed']} request{'s' if detail['failed'] != 1 else ''} of the {row['stage']} "
                         f"batch at {row['provider']} failed in the batch and followed the retry policy.")
    return notes
