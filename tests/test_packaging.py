"""``pip install .`` ships what the product needs at run time: prompts, price table, pipelines."""

import subprocess
import sys
import zipfile

from tests.helpers import ROOT


def test_wheel_contains_prompts_data_and_pipelines(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), str(ROOT)],
        check=True, capture_output=True, cwd=tmp_path,
    )
    (wheel,) = tmp_path.glob("durable_research-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in ("prompts/summarize.j2", "prompts/analyze.j2", "prompts/report.j2", "prompts/plan.j2",
                   "agent/data/prices.json", "pipelines/research.py", "agent/cli.py"):
        assert needed in names, needed
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "research = agent.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
