"""Replay cost per step on a fully cached run, next to a raw diskcache get of the same values.

    python bench/bench_replay.py [--steps 2000] [--repeat 5]

Fills a temp store with STEPS paid model-step results (about 1 KB of JSON each, like a summary), then
replays all of them through the durable runtime inside a journaled run (key hash, lookup, JSON
decode, journal event), and times a plain ``diskcache.Cache.get`` of the same keys from a stock cache holding the same
bytes. Prints the best of REPEAT rounds for each, per step, and their ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import diskcache

from agent.llm import CompletionRequest, llm_spec
from agent.providers import get_provider
from agent.runs import Workspace
from agent.steps import Paid, StepSpec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    provider = get_provider("local:extractive")
    specs = [llm_spec(provider, CompletionRequest(prompt=f"Summarize source {i}: " + "lorem ipsum " * 40), f"s{i}")
             for i in range(args.steps)]
    value = {"text": "A summary sentence of moderate length. " * 25, "usage": {"input_tokens": 900, "output_tokens": 180},
             "model": "m", "finish_reason": "stop"}

    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace.open(Path(tmp) / "cache")

        async def fill() -> None:
            runtime = ws.start("fill", question="q", inputs={"fill": True}, config={})

            async def work() -> Paid:
                return Paid(value, input_tokens=900, output_tokens=180, cost_usd=0.0004)

            for spec in specs:
                await runtime.step(spec, work)

        asyncio.run(fill())
        raw = diskcache.Cache(str(Path(tmp) / "raw"))
        for spec in specs:
            raw.set(spec.key, ws.store._cache.get(spec.key))

        async def never() -> Paid:
            raise AssertionError("a cached step was executed")

        def replay_round(n: int) -> float:
            runtime = ws.start(f"replay-{n}", question="q", inputs={"n": n}, config={})

            async def go() -> float:
                start = time.perf_counter()
                for spec in specs:
                    # a fresh spec, so the key is hashed again, as a real run does
                    spec = StepSpec(spec.kind, spec.name, spec.provider, spec.endpoint, spec.model, spec.request)
                    result = await runtime.step(spec, never)
                    assert result.replayed
                return time.perf_counter() - start

            return asyncio.run(go())

        def raw_round() -> float:
            start = time.perf_counter()
            for spec in specs:
                assert raw.get(spec.key) is not None
            return time.perf_counter() - start

        replay = min(replay_round(n) for n in range(args.repeat))
        plain = min(raw_round() for _ in range(args.repeat))
        raw.close()
        ws.close()

    per_replay = replay / args.steps * 1e6
    per_raw = plain / args.steps * 1e6
    print(f"steps: {args.steps}, best of {args.repeat} rounds")
    print(f"replay through the durable runtime (journaled run): {per_replay:8.1f} us/step")
    print(f"raw diskcache get of the same values:               {per_raw:8.1f} us/step")
    print(f"ratio: {per_replay / per_raw:.1f}x")


if __name__ == "__main__":
    main()
