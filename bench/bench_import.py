"""Start-up cost: ``research --help`` and ``import agent`` next to a bare ``import typer``, fresh processes.

    python bench/bench_import.py [--rounds 20] [--root OTHER_CHECKOUT ...]

Each round starts one fresh interpreter per case, in turn (so the cases share the machine's load):

- ``import typer``: the floor, ``python -c "import typer"`` (what any typer command line pays);
- ``research --help``: the installed console script (run by this interpreter, so no shell shim is
  timed), falling back to ``python -m agent`` when it is not installed;
- ``import agent``: the library as a notebook or a script imports it;
- ``python -c pass``: the interpreter alone, for reference.

It prints the best and the median wall time of ROUNDS rounds for each and their ratios to the floor
(the target is ``research --help`` at most 1.5x ``import typer``). ``--root`` runs the agent cases from
other checkouts too (an older commit, say), side by side in the same rounds.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def help_command() -> list[str]:
    script = Path(sysconfig.get_path("scripts")) / "research"
    if script.is_file():
        return [sys.executable, str(script), "--help"]
    return [sys.executable, "-m", "agent", "--help"]


def timed(command: list[str], cwd: Path) -> float:
    # Bytecode is written and read as on a user's machine: with PYTHONDONTWRITEBYTECODE set (as in some
    # sandboxes) every start compiles the project's sources again while the installed typer's are cached.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = str(cwd)
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--root", action="append", default=[], help="another checkout to time beside this one")
    args = parser.parse_args()
    roots = [ROOT, *(Path(r).resolve() for r in args.root)]
    cases: list[tuple[str, list[str], Path]] = [
        ("python -c pass", [sys.executable, "-c", "pass"], ROOT),
        ("import typer", [sys.executable, "-c", "import typer"], ROOT),
    ]
    for root in roots:
        tag = "" if root == ROOT else f" [{root.name}]"
        cases.append((f"research --help{tag}", help_command(), root))
        cases.append((f"import agent{tag}", [sys.executable, "-c", "import agent"], root))
    for _, command, cwd in cases:  # warm the file system cache and the bytecode
        timed(command, cwd)
    times: dict[str, list[float]] = {label: [] for label, _, _ in cases}
    for _ in range(args.rounds):
        for label, command, cwd in cases:
            times[label].append(timed(command, cwd))

    floor_best = min(times["import typer"])
    floor_median = statistics.median(times["import typer"])
    print(f"fresh processes, {args.rounds} rounds, python {sys.version.split()[0]}")
    print(f"{'case':<32} {'best ms':>8} {'median ms':>10} {'best x':>7} {'median x':>9}")
    for label, values in times.items():
        best, median = min(values), statistics.median(values)
        print(f"{label:<32} {best * 1e3:8.1f} {median * 1e3:10.1f} {best / floor_best:6.2f}x {median / floor_median:8.2f}x")
    print("x: against import typer (the target is research --help at most 1.50x)")


if __name__ == "__main__":
    main()
