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


def test_the_dockerfile_serves_scheduled_reports_from_a_volume():
    """No Docker engine runs here, so check what the image would hold: paths it copies exist, the
    default command is the scheduler, and the cache and reports sit on the volume."""
    text = (ROOT / "Dockerfile").read_text()
    copied = [path for line in text.splitlines() if line.startswith("COPY ") for path in line.split()[1:-1]]
    assert "pyproject.toml" in copied and "prompts" in copied
    for path in copied:
        assert (ROOT / path).exists(), path
    assert 'CMD ["research", "report", "serve"]' in text
    assert 'VOLUME ["/data"]' in text
    assert "RESEARCH_CACHE_DIR=/data/cache" in text and "RESEARCH_REPORT_DIR=/data/reports" in text
