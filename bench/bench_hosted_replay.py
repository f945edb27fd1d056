"""A fully replayed run with a hosted model, next to the same replay with the offline model.

    python bench/bench_hosted_replay.py [--repeat 7] [--model openai:gpt-4o-mini]

Runs the quickstart question over ``examples/corpus`` (12 steps) once with MODEL against a loopback
fake of its API (the test suite's) and once with ``local:extractive``, each into its own cache; then
replays each REPEAT times, alternately, every replay a fresh ``python -m agent run`` process as a user
would type it, and times it from process start to exit. A replay pays nothing, so it should cost about
the same whichever model made the cache: the target is a hosted replay within 2x of the offline one
(an SDK imported for nothing costs most of a second). Prints the median and best of each, their ratio,
the requests the hosted replays sent (0) and which vendor SDKs a replay imported (none).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the loopback fakes live with the tests

from tests.servers import serve  # noqa: E402
from tests.servers.anthropic_api import AnthropicAPI  # noqa: E402
from tests.servers.gemini_api import GeminiAPI  # noqa: E402
from tests.servers.openai_api import OpenAIAPI  # noqa: E402

QUESTION = "Do heat pumps work well in cold climates, and what do they cost to run?"
SDKS = ("anthropic", "google.genai", "openai")
FAKES = {"openai": OpenAIAPI, "anthropic": AnthropicAPI, "gemini": GeminiAPI}
# The CLI in a fresh process, then which SDKs it imported, on stderr's last line.
RUN = ("import json, sys\nfrom agent.cli import main\ntry:\n    main()\nfinally:\n"
       f"    print(json.dumps(sorted(m for m in {SDKS!r} if m in sys.modules)), file=sys.stderr)\n")


def vendor_env(model: str, url: str) -> dict[str, str]:
    provider = model.split(":", 1)[0]
    if provider == "openai":
        return {"OPENAI_API_KEY": "bench-key-not-secret", "OPENAI_BASE_URL": f"{url}/v1"}
    if provider == "anthropic":
        return {"ANTHROPIC_API_KEY": "bench-key-not-secret", "ANTHROPIC_BASE_URL": url}
    return {"GEMINI_API_KEY": "bench-key-not-secret", "GOOGLE_GEMINI_BASE_URL": url}


def run(model: str, cache: Path, out: Path, env: dict[str, str]) -> tuple[float, dict, list[str]]:
    """Seconds for one ``research run`` process, its JSON summary and the SDKs it imported."""
    args = [sys.executable, "-c", RUN, "run", QUESTION, "--file", str(ROOT / "examples" / "corpus"),
            "--model", model, "--cache-dir", str(cache), "--out", str(out), "--json", "--quiet"]
    started = time.perf_counter()
    done = subprocess.run(args, env=env, cwd=str(ROOT), capture_output=True, text=True, timeout=300)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{model}: exit {done.returncode}: {done.stderr.strip()[-2000:]}")
    return elapsed, json.loads(done.stdout), json.loads(done.stderr.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--model", default="openai:gpt-4o-mini", help="a hosted model: openai:, anthropic: or gemini:")
    args = parser.parse_args()
    fake = FAKES[args.model.split(":", 1)[0]]()
    with serve(fake) as server, tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "ANTHROPIC_", "GEMINI_", "GOOGLE_"))}
        env.update(vendor_env(args.model, server.url), PYTHONPATH=str(ROOT))
        caches = {args.model: Path(tmp) / "hosted", "local:extractive": Path(tmp) / "local"}
        out = Path(tmp) / "reports"
        for model, cache in caches.items():
            _, summary, sdks = run(model, cache, out, env)
            totals = summary["totals"]
            print(f"cold {model}: {totals['calls']} steps, {totals['paid']} paid; SDKs imported: {sdks or 'none'}")
        sent = len(server.requests)
        times: dict[str, list[float]] = {model: [] for model in caches}
        imported: set[str] = set()
        for _ in range(args.repeat):
            for model, cache in caches.items():
                elapsed, summary, sdks = run(model, cache, out, env)
                assert summary["totals"]["paid"] == 0, summary["totals"]
                times[model].append(elapsed)
                imported.update(sdks)
        hosted, local = (statistics.median(times[m]) for m in caches)
        print(f"full replay, {args.repeat} fresh processes each (median, best):")
        for model in caches:
            print(f"  {model:<28} {statistics.median(times[model]):6.3f}s  {min(times[model]):6.3f}s")
        print(f"ratio hosted/offline: {hosted / local:.2f}x (target <= 2x); requests sent by the replays: "
              f"{len(server.requests) - sent}; SDKs a replay imported: {sorted(imported) or 'none'}")


if __name__ == "__main__":
    main()
