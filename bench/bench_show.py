"""``research show RUN --json`` on a run of many steps, next to the same on a run of few.

    python bench/bench_show.py [--steps 10000 100] [--repeat 3]

Writes a journal with a run of STEPS paid steps (a third of them replayed again by a second attempt,
so each is listed once from two events), then times ``research show RUN --json`` (and the text form)
as fresh processes and reads each one's peak resident memory. The steps are streamed from the
journal a page at a time; the target is a peak that does not grow with the steps.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from bench_memory import measured  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, nargs="+", default=[10000, 100])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--root", type=Path, action="append", default=[],
                        help="another checkout of the project to run side by side with this one")
    args = parser.parse_args()
    roots = [HERE.parent, *(r.resolve() for r in args.root)]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for count in args.steps:
            caches = {}
            for n, root in enumerate(roots):
                # Each checkout reads a journal it wrote (an older one cannot open a newer schema).
                caches[root] = Path(tmp) / f"cache-{count}-{n}"
                subprocess.run([sys.executable, "-c", "import sys; from tests.test_scale import _journal_with_steps; "
                                "_journal_with_steps(__import__('pathlib').Path(sys.argv[1]), 'run', int(sys.argv[2]))",
                                str(caches[root]), str(count)], cwd=root, check=True)
            for form in (["--json"], []):
                for root in roots:
                    peaks, times = [], []
                    for _ in range(args.repeat):
                        peak, elapsed, out = measured(["show", "run", "--cache-dir", str(caches[root]), *form], {}, root)
                        peaks.append(peak)
                        times.append(elapsed)
                    rows.append((str(root)[-20:], count, "json" if form else "text", max(peaks),
                                 statistics.median(times), len(out)))
    print(f"{'checkout':>20} {'steps':>7} {'form':>5} {'peak RSS':>9} {'seconds':>8} {'output':>12}")
    for root, count, form, peak, elapsed, size in rows:
        print(f"{root:>20} {count:>7} {form:>5} {peak:>6.0f} MB {elapsed:>8.2f} {size:>10,} B")


if __name__ == "__main__":
    main()
