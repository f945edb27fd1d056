"""Durable steps: replay what was paid for, pay only for what is new.

A :class:`Runtime` is the engine under every costly call. Given a :class:`StepSpec` (which yields the
step key) and a coroutine that would do the work, it:

1. replays the result the run's journal pinned for that key, if this is a resumed run;
2. else replays the stored result, if one exists and is fresh enough;
3. else joins an identical call already in flight in this process (single-flight);
4. else claims the key in the journal, or waits while another live process holds it and replays what
   that process stored (one payer per step across processes; a dead holder's claim expires);
5. else pays: runs the work, stores the result *only if it succeeded*, and journals the outcome.

A :class:`Recorder` set with :func:`recording` hears of every step that ends with a result in its
context (the tasks started inside it included): the steps a piece of a pipeline took, which
:meth:`Runtime.replay_recorded` replays later as one, without working their requests out again.

It knows nothing of models, pages or pipelines; adapters and pipelines bring the work.
"""

from __future__ import annotations

import contextvars
import inspect
import json
import threading
import time
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Awaitable, Callable

from agent.errors import ResearchError
from agent.keys import step_key
from agent.secrets import redact
from agent.storage import ResultStore, RunJournal


@dataclass
class StepSpec:
    """What identifies a step. Every field except ``name`` and ``max_age`` is part of its key."""

    kind: str
    name: str
    provider: str = ""
    endpoint: str = ""
    model: str = ""
    request: Any = None
    max_age: float | None = None

    @cached_property
    def key(self) -> str:
        return step_key(self.kind, provider=self.provider, endpoint=self.endpoint, model=self.model,
                        request=self.request)


@dataclass
class Paid:
    """What a step's work returns: the JSON value, and what producing it cost."""

    value: Any
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = 0.0
    usage: dict[str, Any] = field(default_factory=dict)
    #: What the journal should say of this step besides its cost (a model's answer cut at its limit).
    detail: dict[str, Any] | None = None


@dataclass
class StepResult:
    """A step's outcome as the caller sees it, replayed or paid."""

    value: Any
    key: str
    replayed: bool
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = 0.0
    duration_s: float = 0.0
    usage: dict[str, Any] = field(default_factory=dict)
    detail: dict[str, Any] | None = None
    #: The digest of the stored value this result is.
    digest: str | None = None


def _from_record(record: dict[str, Any], key: str, replayed: bool, duration: float) -> StepResult:
    return StepResult(
        value=record["value"], key=key, replayed=replayed,
        input_tokens=record.get("input_tokens"), output_tokens=record.get("output_tokens"),
        cost_usd=record.get("cost_usd"), duration_s=duration, usage=record.get("usage") or {},
        detail=record.get("detail"), digest=record.get("digest"),
    )


def _replayed(key: str, kind: str, name: str, provider: str, model: str, record: dict[str, Any],
              duration: float) -> tuple:
    """The journal's event for a step replayed from ``record``, in the order of
    :data:`agent.journal.EVENT_FIELDS`: free, saving what the step cost when it was paid for."""
    detail = record.get("detail")
    return (key, kind, name, provider, model, "completed", 1, record.get("digest"), record.get("input_tokens"),
            record.get("output_tokens"), 0.0, record.get("cost_usd"), round(duration, 6), None,
            json.dumps(detail) if detail else None)


def _well_formed(steps: Any) -> bool:
    """Whether ``steps`` is a list of what :meth:`Recorder.add` writes."""
    if type(steps) is not list or not steps:
        return False
    for step in steps:
        if type(step) is not list or len(step) != 7:
            return False
        kind, name, provider, model, key, digest, max_age = step
        if not (type(kind) is str and type(name) is str and type(provider) is str and type(model) is str
                and type(key) is str and type(digest) is str
                and (max_age is None or type(max_age) in (int, float))):
            return False
    return True


class Recorder:
    """The steps that ended with a result while it was set (see :func:`recording`), in the order they
    ended, as :meth:`Runtime.replay_recorded` takes them; ``failed`` once any step failed."""

    __slots__ = ("steps", "failed")

    def __init__(self) -> None:
        self.steps: list[list[Any]] = []
        self.failed = False

    def add(self, spec: "StepSpec", result: "StepResult") -> None:
        self.steps.append([spec.kind, spec.name, spec.provider, spec.model, spec.key, result.digest, spec.max_age])


_recorders: contextvars.ContextVar[tuple[Recorder, ...]] = contextvars.ContextVar("research_recorders", default=())


def recording(recorder: Recorder) -> contextvars.Token:
    """Let ``recorder`` hear of the steps of this context from now on (besides any recorder already set);
    undo with :func:`stop_recording`."""
    return _recorders.set(_recorders.get() + (recorder,))


def stop_recording(token: contextvars.Token) -> None:
    _recorders.reset(token)


def _recorded(spec: "StepSpec", result: "StepResult") -> None:
    for recorder in _recorders.get():
        recorder.add(spec, result)


def _spoiled() -> None:
    """A step of this context ended without a result (failed, held back, left waiting): nothing the
    recorders heard can be replayed later as the whole."""
    for recorder in _recorders.get():
        recorder.failed = True


Listener = Callable[[str, StepSpec, "StepResult | None", "BaseException | None"], None]


class Runtime:
    """Runs steps against a store, journaling into one run when there is one.

    ``gate`` is awaited before every paid call (budgets, rate limits live there); listeners hear of
    every outcome (progress displays).
    """

    def __init__(
        self,
        store: ResultStore,
        journal: RunJournal | None = None,
        *,
        run_id: str | None = None,
        attempt: int = 1,
        pins: dict[str, str] | None = None,
        gate: Callable[[StepSpec], Awaitable[None] | None] | None = None,
        holder: str | None = None,
    ) -> None:
        self.store = store
        #: Who this runtime claims steps as (its run's lease holder); None: no claims (no journal).
        self.holder = holder if journal is not None else None
        self.journal = journal
        self.run_id = run_id
        self.attempt = attempt
        self.pins = dict(pins or {})
        self.gate = gate
        self.listeners: list[Listener] = []
        #: Where model calls go when the run sends them through the vendors' batch APIs (agent.batches).
        self.batcher: Any = None
        self.spent_usd = 0.0
        self._inflight: dict[str, asyncio.Future] = {}
        self._sync_inflight: dict[str, threading.Lock] = {}
        self._sync_guard = threading.Lock()

    # -- lookups -----------------------------------------------------------------------------
    def lookup(self, spec: StepSpec) -> dict[str, Any] | None:
        """The stored record this run should replay for ``spec``, if any."""
        key = spec.key
        digest = self.pins.get(key)
        if digest is not None:
            record = self.store.get_pinned(key, digest)
            if record is not None:
                return record
        return self.store.get(key, max_age=spec.max_age)

    # -- journaling --------------------------------------------------------------------------
    def _journal(self, spec: StepSpec, status: str, *, result: StepResult | None = None, digest: str | None = None,
                 error: str | None = None, duration: float = 0.0) -> None:
        """Journal a step paid for or failed, at once (a replay's event is :func:`_replayed`, written later)."""
        if self.journal is None or self.run_id is None:
            return
        # In the order of agent.journal.EVENT_FIELDS.
        self.journal.record_values(self.run_id, self.attempt, (
            spec.key, spec.kind, spec.name, spec.provider, spec.model, status, 0, digest,
            result.input_tokens if result else None, result.output_tokens if result else None,
            result.cost_usd if result else None, None, round(duration, 6), error,
            json.dumps(result.detail) if result is not None and result.detail else None,
        ))

    def _notify(self, event: str, spec: StepSpec, result: StepResult | None, exc: BaseException | None) -> None:
        for listener in self.listeners:
            listener(event, spec, result, exc)

    def _replay(self, spec: StepSpec, record: dict[str, Any], started: float) -> StepResult:
        result = _from_record(record, spec.key, True, time.perf_counter() - started)
        if self.journal is not None and self.run_id is not None:
            self.journal.record_values(self.run_id, self.attempt, _replayed(
                spec.key, spec.kind, spec.name, spec.provider, spec.model, record, result.duration_s), defer=True)
        if self.listeners:
            self._notify("replayed", spec, result, None)
        if _recorders.get():
            _recorded(spec, result)
        return result

    def replay_recorded(self, steps: list[list[Any]]) -> bool:
        """Replay every step a :class:`Recorder` heard, or none: false unless each one's lookup (the run's
        pin, else the store) gives the very result recorded, so nothing is journaled unless all replay."""
        from agent.store import is_stale

        started = time.perf_counter()
        if not _well_formed(steps):  # a record damaged or made by hand: worked out again instead
            return False
        stored = self.store.get_many([step[4] for step in steps])  # one read for them all
        records = []
        for kind, name, provider, model, key, digest, max_age in steps:
            # What lookup would give: the run's pinned version, else the stored one if fresh enough.
            record = stored.get(key)
            pinned = self.pins.get(key)
            if pinned is not None and (record is None or record.get("digest") != pinned):
                record = self.store.get_pinned(key, pinned) or record
                if record is not None and record.get("digest") != pinned and is_stale(record, max_age):
                    record = None
            elif pinned is None and record is not None and is_stale(record, max_age):
                record = None
            if record is None or record.get("digest") != digest:
                return False
            records.append(record)
        duration = time.perf_counter() - started
        if self.journal is not None and self.run_id is not None:
            self.journal.record_many(self.run_id, self.attempt, [
                _replayed(step[4], step[0], step[1], step[2], step[3], record, duration)
                for step, record in zip(steps, records)], defer=True)
        if self.listeners or _recorders.get():
            for (kind, name, provider, model, key, _, max_age), record in zip(steps, records):
                spec = StepSpec(kind, name, provider, model=model, max_age=max_age)
                spec.__dict__["key"] = key  # the key as recorded: its request is not at hand, nor needed
                result = _from_record(record, key, True, duration)
                if self.listeners:
                    self._notify("replayed", spec, result, None)
                if _recorders.get():
                    _recorded(spec, result)
        return True

    def _paid(self, spec: StepSpec, paid: Paid, started: float) -> StepResult:
        meta = {
            "name": spec.name, "provider": spec.provider, "model": spec.model,
            "input_tokens": paid.input_tokens, "output_tokens": paid.output_tokens,
            "cost_usd": paid.cost_usd, "usage": paid.usage,
        }
        if paid.detail:
            meta["detail"] = paid.detail
        duration = time.perf_counter() - started
        meta["duration_s"] = round(duration, 6)
        record = self.store.put(spec.key, paid.value, kind=spec.kind, meta=meta)
        if self.run_id is not None:
            # A run sees what it paid for again, whatever its age; outside a run (``@durable`` on the
            # default runtime) ``max_age`` still holds, and the process does not pin every result it pays.
            self.pins[spec.key] = record["digest"]
        result = _from_record(record, spec.key, False, duration)
        self.spent_usd += paid.cost_usd or 0.0
        self._journal(spec, "completed", result=result, digest=record["digest"],
                      duration=duration)
        self._notify("paid", spec, result, None)
        if _recorders.get():
            _recorded(spec, result)
        return result

    def _failed(self, spec: StepSpec, exc: BaseException, started: float) -> None:
        if isinstance(exc, ResearchError):
            message = exc.one_line()
        else:
            message = f"{type(exc).__name__}: {exc}"
        self._journal(spec, "failed", error=redact(message)[:2000],
                      duration=time.perf_counter() - started)
        self._notify("failed", spec, None, exc)

    # -- running -----------------------------------------------------------------------------
    async def step(self, spec: StepSpec, work: Callable[[], Awaitable[Paid]]) -> StepResult:
        """Replay ``spec`` or pay for it with ``work()``; failures propagate and are never stored."""
        started = time.perf_counter()
        record = self.lookup(spec)
        if record is not None:
            return self._replay(spec, record, started)
        import asyncio  # here, not at the top: a replayed step and a sync caller never need it

        key = spec.key
        pending = self._inflight.get(key)
        if pending is not None:
            try:
                joined = await asyncio.shield(pending)
            except BaseException:
                _spoiled()
                raise
            if _recorders.get():
                _recorded(spec, joined)
            return joined
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        gated = False
        claimed = self.holder is not None  # released in any case below (a no-op if never held)
        try:
            record = await self._claim_or_wait(spec)
            if record is not None:  # another process paid for it while we waited
                result = self._replay(spec, record, started)
                future.set_result(result)
                return result
            if self.gate is not None:
                held = self.gate(spec)
                if inspect.isawaitable(held):
                    await held
            gated = True
            paid = await work()
            result = self._paid(spec, paid, started)
        except BaseException as exc:
            # A call the gate held back (budget, a stopped run) never started: it did not fail.
            # A step left waiting (its request is in a vendor's batch) neither failed nor was paid for.
            if gated and not isinstance(exc, asyncio.CancelledError) and not getattr(exc, "deferred", False):
                self._failed(spec, exc, started)
            _spoiled()
            future.set_exception(exc)
            future.exception()  # joined callers re-raise it; nobody else needs to retrieve it
            raise
        else:
            future.set_result(result)
            return result
        finally:
            self._inflight.pop(key, None)
            if claimed:
                self._release(key)

    #: Seconds between looks at the store while another process pays for a step this one needs.
    CLAIM_POLL_S = 0.1

    async def _claim_or_wait(self, spec: StepSpec) -> dict[str, Any] | None:
        """Claim ``spec``'s key, or wait while another live process holds it; its record if it paid."""
        if self.holder is None:
            return None
        import asyncio

        while True:
            other = self.journal.claim(spec.key, self.holder, self.run_id)
            if other is None:
                # Claimed. A process that paid and released between our lookup and our claim left its result.
                return self.lookup(spec)
            while self.journal.claim_holder(spec.key) is not None:
                await asyncio.sleep(self.CLAIM_POLL_S)
            record = self.lookup(spec)
            if record is not None:
                return record
            # The holder failed or died without a result: try to claim it ourselves.

    def _release(self, key: str) -> None:
        try:
            self.journal.release_claim(key, self.holder)
        except ResearchError:
            pass  # an expired claim frees the step for others anyway

    def step_sync(self, spec: StepSpec, work: Callable[[], Paid]) -> StepResult:
        """:meth:`step` for plain functions; identical calls from several threads run once."""
        started = time.perf_counter()
        record = self.lookup(spec)
        if record is not None:
            return self._replay(spec, record, started)
        with self._sync_guard:
            lock = self._sync_inflight.setdefault(spec.key, threading.Lock())
        with lock:
            record = self.lookup(spec)
            if record is not None:
                return self._replay(spec, record, started)
            if self.gate is not None:  # budgets and fatal stops hold for plain functions too
                held = self.gate(spec)
                if inspect.isawaitable(held):
                    held.close()
                    raise TypeError("this runtime's gate is a coroutine; a plain function's step needs a plain gate")
            try:
                paid = work()
            except BaseException as exc:
                self._failed(spec, exc, started)
                _spoiled()
                raise
            return self._paid(spec, paid, started)


_current: contextvars.ContextVar[Runtime | None] = contextvars.ContextVar("research_runtime", default=None)


def current_runtime() -> Runtime | None:
    """The runtime of the run this code is part of, if any."""
    return _current.get()


def use_runtime(runtime: Runtime | None) -> contextvars.Token:
    return _current.set(runtime)


def reset_runtime(token: contextvars.Token) -> None:
    _current.reset(token)
