"""Replay cost per step on a fully cached run, next to a raw diskcache get of the same values.

    python bench/bench_replay.py [--steps 2000] [--repeat 7]

Fills a temp store with STEPS paid model-step results (about 1 KB of JSON each, like a summary), then
replays all of them through the durable runtime inside a journaled run (key hash, lookup, JSON
decode, deferred journal event), and times a plain ``diskcache.Cache.get`` of the same keys from a
stock cache holding the same bytes. Beside them, the parts of a replay on their own: the key of a
fresh spec, the store's read of the record (``store.get``), and the journal's deferred event (with
its share of the batched writes). Then the same steps replayed as a run replays a source's summary:
recorded 9 at a time when they were paid (``agent.steps.Recorder``), each group replayed from its
record (``Runtime.replay_recorded``: the recorded keys, the records read together, a journal event each).

The rounds take turns, REPEAT times (each replay round in a new run); it prints the best round of
each, per step, and its ratio to the raw get (the target is a replay at most 2x the raw get).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path
from typing import Callable

import diskcache

from agent.llm import CompletionRequest, llm_spec
from agent.providers import get_provider
from agent.runs import Workspace
from agent.steps import Paid, Recorder, StepSpec, recording, stop_recording


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    provider = get_provider("local:extractive")
    specs = [llm_spec(provider, CompletionRequest(prompt=f"Summarize source {i}: " + "lorem ipsum " * 40), f"s{i}")
             for i in range(args.steps)]
    value = {"text": "A summary sentence of moderate length. " * 25, "usage": {"input_tokens": 900, "output_tokens": 180},
             "model": "m", "finish_reason": "stop"}

    def fresh(spec: StepSpec) -> StepSpec:
        # a fresh spec, so the key is hashed again, as a real run does
        return StepSpec(spec.kind, spec.name, spec.provider, spec.endpoint, spec.model, spec.request)

    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace.open(Path(tmp) / "cache")

        async def fill() -> None:
            runtime = ws.start("fill", question="q", inputs={"fill": True}, config={})

            async def work() -> Paid:
                return Paid(value, input_tokens=900, output_tokens=180, cost_usd=0.0004)

            for start in range(0, len(specs), 9):  # recorded as a summary's parts and combine are
                recorder = Recorder()
                token = recording(recorder)
                for spec in specs[start:start + 9]:
                    await runtime.step(spec, work)
                stop_recording(token)
                groups.append(recorder.steps)

        groups: list[list[list]] = []
        asyncio.run(fill())
        raw = diskcache.Cache(str(Path(tmp) / "raw"))
        for spec in specs:
            raw.set(spec.key, ws.store._cache.get(spec.key))
        keys = [spec.key for spec in specs]

        async def never() -> Paid:
            raise AssertionError("a cached step was executed")

        runs = iter(range(10**9))

        def replay_round() -> None:
            runtime = ws.start(f"replay-{next(runs)}", question="q", inputs={"n": next(runs)}, config={})

            async def go() -> None:
                for spec in specs:
                    result = await runtime.step(fresh(spec), never)
                    assert result.replayed

            asyncio.run(go())
            ws.journal.flush()  # the round's last batch of events is part of its cost

        def recorded_round() -> None:
            runtime = ws.start(f"recorded-{next(runs)}", question="q", inputs={"n": next(runs)}, config={})
            for steps in groups:
                assert runtime.replay_recorded(steps)
            ws.journal.flush()

        def raw_round() -> None:
            for key in keys:
                assert raw.get(key) is not None

        def key_round() -> None:
            for spec in specs:
                fresh(spec).key

        def read_round() -> None:
            for key in keys:
                ws.store.get(key)

        def journal_round() -> None:
            run_id = f"events-{next(runs)}"
            for key in keys:
                ws.journal.record(run_id, 1, {"key": key, "kind": "llm", "name": "s", "status": "completed",
                                              "replayed": 1, "duration_s": 0.00001}, defer=True)
            ws.journal.flush()

        rounds: dict[str, Callable[[], None]] = {
            "replay through the durable runtime": replay_round,
            "replay of recorded steps, 9 a record": recorded_round,
            "raw diskcache get": raw_round,
            "  key of a fresh spec": key_round,
            "  store.get (read and decode)": read_round,
            "  journal event (deferred)": journal_round,
        }
        best = {label: float("inf") for label in rounds}
        for _ in range(args.repeat):
            for label, round_ in rounds.items():
                start = time.perf_counter()
                round_()
                best[label] = min(best[label], time.perf_counter() - start)
        raw.close()
        ws.close()

    floor = best["raw diskcache get"]
    print(f"steps: {args.steps}, best of {args.repeat} rounds")
    print(f"{'':<38} {'us/step':>8} {'x raw get':>10}")
    for label, seconds in best.items():
        print(f"{label:<38} {seconds / args.steps * 1e6:8.1f} {seconds / floor:9.2f}x")
    print("target: replay at most 2.00x the raw get")


if __name__ == "__main__":
    main()
