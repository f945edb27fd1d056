"""Peak memory of a research run over many large sources, cold and replayed, against a smaller run.

    python bench/bench_memory.py [--sources 1000 100] [--kb 100] [--formats md,json]

For each count N, writes N local Markdown files of about KB kilobytes each (varied prose with figures,
so the offline model and the claim check have real work), then runs ``research run`` over them in a
fresh process with the offline model, first cold, then again under a new run id on the same cache (a
full replay). Prints each run's peak resident memory (the child's ``ru_maxrss``), its wall time and
its steps, and the ratio of the largest count's peaks to the smallest's. The targets: at most 250 MB
for 1,000 x 100 KB, cold and replayed, and at most 1.5x the peak of the same run over 100 sources.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

WORDS = ("harbour crane berth vessel cargo tonnage quay pilot tide freight customs ledger tariff route "
         "schedule terminal warehouse container draught dredging channel mooring tug manifest").split()


def sentence(rng: random.Random) -> str:
    words = [rng.choice(WORDS) for _ in range(rng.randint(8, 18))]
    words.insert(rng.randint(1, len(words) - 1), f"{rng.randint(2, 980)}")
    return " ".join(words).capitalize() + "."


def write_sources(directory: Path, count: int, kb: int) -> None:
    directory.mkdir(parents=True)
    for i in range(count):
        rng = random.Random(i)
        parts = [f"# Port report {i}\n"]
        size = 0
        while size < kb * 1024:
            paragraph = " ".join(sentence(rng) for _ in range(6))
            parts.append(paragraph)
            size += len(paragraph) + 2
        (directory / f"report-{i:05d}.md").write_text("\n\n".join(parts) + "\n", encoding="utf-8")


WRAPPER = """
import resource, subprocess, sys
done = subprocess.run(sys.argv[1:])
peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print("PEAK_KB", peak_kb, file=sys.stderr)
sys.exit(done.returncode)
"""


def measured(args: list[str], env: dict[str, str], root: Path = ROOT) -> tuple[float, float, str]:
    """(peak RSS in MB, seconds, stdout) of ``research ARGS`` in a fresh process, through a wrapper whose
    only child it is (so ``RUSAGE_CHILDREN`` is that run's own peak)."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", WRAPPER, sys.executable, "-m", "agent", *args], env=env or None,
                          cwd=str(root), capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"research {' '.join(args[:2])} failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    peak = next(int(line.split()[1]) for line in done.stderr.splitlines() if line.startswith("PEAK_KB"))
    return peak / 1024, elapsed, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", type=int, nargs="+", default=[1000, 100])
    parser.add_argument("--kb", type=int, default=100)
    parser.add_argument("--formats", default="md,json")
    args = parser.parse_args()

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for count in args.sources:
            sources = Path(tmp) / f"sources-{count}"
            write_sources(sources, count, args.kb)
            cache = Path(tmp) / f"cache-{count}"
            env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
            env.update(RESEARCH_CACHE_DIR=str(cache), PYTHONPATH=str(ROOT))
            for label in ("cold", "replay"):
                peak, elapsed, out = measured(
                    ["run", "What do the port reports say about berth waits?", "--file", str(sources),
                     "--out", str(Path(tmp) / f"out-{count}-{label}"), "--format", args.formats, "--json", "--quiet"],
                    env)
                totals = json.loads(out)["totals"]
                rows.append((count, label, peak, elapsed, totals["this_attempt"]))
    print(f"{args.kb} KB a source, offline model, formats {args.formats}")
    print(f"{'sources':>8} {'run':>7} {'peak RSS':>10} {'seconds':>8} {'paid':>6} {'replayed':>9} {'per step':>9}")
    for count, label, peak, elapsed, attempt in rows:
        steps = attempt["paid"] + attempt["replayed"]
        print(f"{count:>8} {label:>7} {peak:>8.0f} MB {elapsed:>8.1f} {attempt['paid']:>6} {attempt['replayed']:>9} "
              f"{elapsed / max(steps, 1) * 1000:>7.2f}ms")
    big, small = max(args.sources), min(args.sources)
    if big != small:
        for label in ("cold", "replay"):
            peaks = {c: p for c, lab, p, _, _ in rows if lab == label}
            print(f"{label}: {big} sources peak {peaks[big]:.0f} MB = {peaks[big] / peaks[small]:.2f}x the {small}-source peak")


if __name__ == "__main__":
    main()
