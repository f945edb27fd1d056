"""What a batched run costs next to the same run asked one call at a time, and what it sends.

    python bench/bench_batch.py [--sources 40] [--latency 0.2] [--polls 2] [--poll 0.1] [--poll-cap 0.5]
                                [--linger 0.2] [--timeout 600] [--json]

Writes SOURCES Markdown files (a few hundred words each, no two alike) to a temp dir, then runs the same
report twice as real ``research run`` processes (``python -m agent run ... --json``), each in a fresh
cache, with ``openai:gpt-4o-mini`` and ``anthropic:claude-haiku-4-5`` pointed at the test suite's loopback
batch fakes (they answer the synchronous API after LATENCY seconds, and the batch API; a batch ends on
the poll after its POLLS polls): once synchronous, once with ``--batch``. Each run gets fakes of its own,
so their counters are that run's alone.

It reports, from ``research show RUN_ID --json``: each run's model cost, the batched cost as a share of
the synchronous one (the target is at most 55%), the batched run's ``sync_cost_usd`` (what the same
answers cost asked one by one: it should equal the synchronous run's cost) and the wall time of each run;
and from the fakes: synchronous completions answered, batch lines submitted, batches created and batch
API requests by kind (upload, download, create, poll, list, cancel, results).

Exits 1 if the batched run costs more than 55% of the synchronous one, if any batch line was submitted
twice, or if a run fails or has not ended after TIMEOUT seconds.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the loopback fakes live with the tests

from tests.servers import serve  # noqa: E402
from tests.servers.anthropic_batch import AnthropicBatchAPI  # noqa: E402
from tests.servers.openai_batch import KINDS, OpenAIBatchAPI, Plan  # noqa: E402

QUESTION = "What changed in the region's water supply over the decade, and what did it cost?"
MODELS = ["openai:gpt-4o-mini", "anthropic:claude-haiku-4-5"]
KEYS = {"openai": "bench-openai-key-not-secret", "anthropic": "bench-anthropic-key-not-secret"}
TARGET = 0.55  # the batched run's cost, as a share of the synchronous run's
RUN_ID = "bench-batch"

TOWNS = ["Arden", "Belmont", "Corrin", "Dunmore", "Elstow", "Farrow", "Glenholt", "Harwick", "Ilsley",
         "Jarrow", "Kelby", "Lanmouth", "Marlow", "Norwood", "Oakhurst", "Penrith", "Quarley", "Rothley",
         "Selby", "Thornby"]
TOPICS = ["reservoir levels", "leakage in the mains", "metered households", "the desalination plant",
          "groundwater abstraction", "drought restrictions", "tariff changes", "storm overflows",
          "pipe replacement", "treatment works upgrades"]
SENTENCES = [
    "In {year} the utility serving {town} reported that {topic} had shifted by {pct} percent against the year before.",
    "Engineers in {town} logged {n} incidents tied to {topic}, most of them in the dry months of {year}.",
    "The regional council put {money} million into {topic} around {town}, a sum it expected to recover within {k} years.",
    "Residents of {town} were asked in {year} whether {topic} affected them; {pct} percent said it did.",
    "A survey of {n} households near {town} found that {topic} mattered more to older residents than to younger ones.",
    "By {year}, the share of supply in {town} lost to {topic} stood at {pct} percent, down from {pct2} percent.",
    "Inspectors who visited {town} in {year} noted {n} sites where {topic} needed attention within {k} months.",
    "Costs linked to {topic} in {town} rose to {money} million, which the operator passed on in bills from {year}.",
    "The {town} board argued that {topic} explained {pct} percent of the complaints it received that year.",
    "Rainfall near {town} was {pct} percent below average in {year}, which made {topic} the main concern.",
]


def write_sources(directory: Path, count: int, seed: int = 7) -> int:
    """``count`` Markdown files of about 500 words, each with its own town, topics and figures; the words written."""
    rng = random.Random(seed)
    directory.mkdir(parents=True)
    total = 0
    for i in range(count):
        town = f"{TOWNS[i % len(TOWNS)]}{'' if i < len(TOWNS) else ' ' + str(i // len(TOWNS) + 1)}"
        paragraphs = []
        for p in range(4):
            topic = TOPICS[(i + p * 3) % len(TOPICS)]
            lines = []
            for s in rng.sample(SENTENCES, 6):
                lines.append(s.format(town=town, topic=topic, year=2012 + rng.randrange(12), pct=rng.randrange(3, 60),
                                      pct2=rng.randrange(3, 60), n=rng.randrange(20, 900), k=rng.randrange(2, 12),
                                      money=f"{rng.uniform(0.5, 40):.1f}"))
            paragraphs.append(f"## {topic.capitalize()}\n\n" + " ".join(lines))
        text = f"# Water supply in {town}: note {i + 1}\n\n" + "\n\n".join(paragraphs) + "\n"
        total += len(text.split())
        (directory / f"water-{i + 1:03d}.md").write_text(text, encoding="utf-8")
    return total


def run_once(label: str, sources: Path, tmp: Path, args: argparse.Namespace, batch: bool) -> dict:
    """One ``research run`` process against fresh fakes and a fresh cache: its totals, time and what the fakes saw."""
    fakes = {"openai": OpenAIBatchAPI(key=KEYS["openai"], latency=args.latency, default_plan=Plan(polls=args.polls)),
             "anthropic": AnthropicBatchAPI(key=KEYS["anthropic"], latency=args.latency,
                                            default_plan=Plan(polls=args.polls))}
    cache, out = tmp / f"cache-{label}", tmp / f"out-{label}"
    with contextlib.ExitStack() as stack:
        servers = {name: stack.enter_context(serve(fake)) for name, fake in fakes.items()}
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("OPENAI_", "ANTHROPIC_", "GEMINI_", "GOOGLE_", "RESEARCH_"))}
        env.update(OPENAI_API_KEY=KEYS["openai"], OPENAI_BASE_URL=f"{servers['openai'].url}/v1",
                   ANTHROPIC_API_KEY=KEYS["anthropic"], ANTHROPIC_BASE_URL=servers["anthropic"].url,
                   RESEARCH_BATCH_POLL=str(args.poll), RESEARCH_BATCH_POLL_CAP=str(args.poll_cap),
                   RESEARCH_BATCH_LINGER=str(args.linger), PYTHONPATH=str(ROOT))
        command = [sys.executable, "-m", "agent", "run", QUESTION, "--file", str(sources), "--run-id", RUN_ID,
                   "--cache-dir", str(cache), "--out", str(out), "--json", "--quiet"]
        for model in MODELS:
            command += ["--model", model]
        if batch:
            command.append("--batch")
        started = time.perf_counter()
        try:
            done = subprocess.run(command, env=env, cwd=str(ROOT), capture_output=True, text=True,
                                  timeout=args.timeout)
        except subprocess.TimeoutExpired:  # killed by subprocess.run; a hung run is a finding, not a figure
            raise SystemExit(f"the {label} run had not ended after {args.timeout:.0f} s (killed); the fakes got "
                             f"{sum(len(f.answered) for f in fakes.values())} synchronous completions, "
                             f"{sum(len(f.submitted()) for f in fakes.values())} batch lines, "
                             f"{sum(len(f.jobs) for f in fakes.values())} batches") from None
        wall = time.perf_counter() - started
        if done.returncode != 0:
            raise SystemExit(f"the {label} run failed (exit {done.returncode}): {done.stderr.strip()[-2000:]}")
    shown = subprocess.run([sys.executable, "-m", "agent", "show", RUN_ID, "--cache-dir", str(cache), "--json"],
                           env=env, cwd=str(ROOT), capture_output=True, text=True, timeout=300)
    if shown.returncode != 0:
        raise SystemExit(f"research show of the {label} run failed: {shown.stderr.strip()[-2000:]}")
    totals = json.loads(shown.stdout)["totals"]
    vendors = {}
    for name, fake in fakes.items():
        lines = Counter(fake.submitted())
        vendors[name] = {"sync": len(fake.answered), "lines": sum(lines.values()),
                         "repeated": sum(1 for n in lines.values() if n > 1), "batches": len(fake.jobs),
                         "received": dict(fake.received)}
    return {"label": label, "wall_s": round(wall, 3), "totals": totals, "vendors": vendors}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", type=int, default=40, help="Markdown files to read")
    parser.add_argument("--latency", type=float, default=0.2, help="seconds the fakes take per synchronous answer")
    parser.add_argument("--polls", type=int, default=2, help="polls a batch reads 'still running' before it ends")
    parser.add_argument("--poll", type=float, default=0.1, help="RESEARCH_BATCH_POLL: seconds before the first poll")
    parser.add_argument("--poll-cap", type=float, default=0.5, help="RESEARCH_BATCH_POLL_CAP: longest wait between polls")
    parser.add_argument("--linger", type=float, default=0.2, help="RESEARCH_BATCH_LINGER: quiet before a batch goes")
    parser.add_argument("--timeout", type=float, default=600, help="seconds a run may take before it is killed")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the tables")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        words = write_sources(tmp / "sources", args.sources)
        runs = [run_once("sync", tmp / "sources", tmp, args, batch=False),
                run_once("batch", tmp / "sources", tmp, args, batch=True)]
    sync, batched = runs
    sync_cost, batch_cost = sync["totals"]["cost_usd"], batched["totals"]["cost_usd"]
    share = batch_cost / sync_cost if sync_cost else float("inf")
    repeated = sum(v["repeated"] for r in runs for v in r["vendors"].values())
    failures = []
    if share > TARGET:
        failures.append(f"the batched run cost {100 * share:.1f}% of the synchronous one (target at most "
                        f"{100 * TARGET:.0f}%)")
    if repeated:
        failures.append(f"{repeated} batch line(s) were submitted more than once")

    if args.json:
        print(json.dumps({"sources": args.sources, "words": words, "models": MODELS, "latency_s": args.latency,
                          "runs": runs, "batch_share": round(share, 4), "target": TARGET,
                          "sync_cost_matches": abs(batched["totals"].get("sync_cost_usd", -1) - sync_cost) <= 2e-6,
                          "failures": failures}, indent=2))
    else:
        print(f"{args.sources} sources ({words:,} words), models {', '.join(MODELS)}; synchronous answers after "
              f"{args.latency} s, batches end after {args.polls} polls (poll {args.poll} s, cap {args.poll_cap} s, "
              f"linger {args.linger} s)\n")
        print("| run | model cost | share of sync | sync_cost_usd | batched steps | paid steps (reads too) | wall |")
        print("| --- | --- | --- | --- | --- | --- | --- |")
        for r in runs:
            t = r["totals"]
            sync_usd = f"${t['sync_cost_usd']:.6f}" if t.get("sync_cost_usd") is not None else "-"
            print(f"| {r['label']} | ${t['cost_usd']:.6f} | {100 * t['cost_usd'] / sync_cost:.1f}% | {sync_usd} | "
                  f"{t.get('batched', 0)} | {t.get('paid', '?')} | {r['wall_s']:.2f} s |")
        print("\n| run | vendor | sync completions | batch lines | batches | "
              + " | ".join(KINDS) + " |")
        print("| --- | --- | --- | --- | --- | " + " | ".join("---" for _ in KINDS) + " |")
        for r in runs:
            for vendor, v in r["vendors"].items():
                print(f"| {r['label']} | {vendor} | {v['sync']} | {v['lines']} | {v['batches']} | "
                      + " | ".join(str(v["received"].get(k, 0)) for k in KINDS) + " |")
        match = batched["totals"].get("sync_cost_usd")
        print(f"\nbatched cost {100 * share:.1f}% of the synchronous run's (target at most {100 * TARGET:.0f}%); "
              f"its sync_cost_usd {'$%.6f' % match if match is not None else 'missing'} against the synchronous "
              f"run's ${sync_cost:.6f}; batch lines submitted twice: {repeated}")
        for failure in failures:
            print(f"FAILED: {failure}")
    if failures:
        sys.exit(1)


if __name__ == "__main__":
    main()
