"""The benchmark harness in smoke mode (tiny sizes, seconds), so it never rots.

Runs ``python -m benchmarks.run --smoke`` in a subprocess for the hand-written loop and trainwell
(trainwell is left out only while ``trainwell.Model`` does not exist yet) and checks the results.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ["A1", "A2", "B", "C-evaluate", "C-predict", "E"]


def _trainwell_model_exists() -> bool:
    try:
        return hasattr(importlib.import_module("trainwell"), "Model")
    except ImportError:
        return False


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    frameworks = ["handwritten"] + (["trainwell"] if _trainwell_model_exists() else [])
    out = tmp_path_factory.mktemp("bench")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--smoke", "--out", str(out), "--frameworks", *frameworks],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, frameworks


@pytest.mark.parametrize("framework", ["handwritten", "trainwell"])
def test_every_scenario_measured_with_positive_numbers(smoke_run: tuple[Path, list[str]], framework: str) -> None:
    out, frameworks = smoke_run
    if framework not in frameworks:
        pytest.skip("trainwell.Model does not exist yet")
    records = json.loads((out / "results.json").read_text())["records"]
    runs = {(r["framework"], r["scenario"]): r for r in records if r["kind"] == "run"}
    for scenario in SCENARIOS:
        record = runs[(framework, scenario)]
        assert record["status"] == "ok", record
        assert record["samples"] > 0
        assert math.isfinite(record["samples_per_s"]) and record["samples_per_s"] > 0
        assert record["max_rss_mib"] > 0
        assert record["threads"] == 1
    imports = {r["framework"]: r for r in records if r["kind"] == "import"}
    name = "torch" if framework == "handwritten" else framework
    assert imports[name]["status"] == "ok" and imports[name]["seconds"] > 0


def test_markdown_table_has_every_scenario_and_ratios(smoke_run: tuple[Path, list[str]]) -> None:
    out, frameworks = smoke_run
    table = (out / "results.md").read_text()
    assert "Smoke run" in table
    for scenario in SCENARIOS:
        row = next(line for line in table.splitlines() if line.startswith(f"| {scenario} |"))
        ratios = [float(cell) for cell in re.findall(r"\| (\d+\.\d\d) ", row + " ")]
        assert len(ratios) == len(frameworks), row
        assert ratios[0] == 1.0 and all(r > 0 for r in ratios), row
    assert "`import torch`" in table


def test_chart_written_when_matplotlib_is_installed(smoke_run: tuple[Path, list[str]]) -> None:
    import matplotlib  # noqa: F401  (in the dev install: the chart is part of what is checked)

    png = smoke_run[0] / "results.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
