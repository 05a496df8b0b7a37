"""The examples a user copies from run as their docstrings say, each checked for what it promises.

``examples/digits.py`` (the demo) is run by test_seed_workflows.py and ``examples/gan.py`` by
tests/engine/test_custom_steps.py; here the Experiment example, whose promise is that the same command
gives the same run: two fresh processes end with the same weights and the same log rows.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "examples" / "digits_experiment.py"


def _run(directory: Path, epochs: int) -> str:
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    result = subprocess.run(
        [sys.executable, str(SCRIPT), str(directory), str(epochs)],
        cwd=ROOT / "examples",
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def _rows(directory: Path) -> list[dict[str, str]]:
    with (directory / "log.tsv").open() as handle:
        return [
            {key: value for key, value in row.items() if key != "time"}
            for row in csv.DictReader(handle, delimiter="\t")
        ]


def test_two_fresh_runs_of_the_experiment_example_are_the_same_run(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    output = _run(first, 2)
    _run(second, 2)
    accuracy = float(output.split("test accuracy ")[1].split("%")[0])
    assert accuracy > 50  # 2 epochs of the digits CNN: far above the 10% of chance
    for name in ("log.tsv", "test_log.tsv", "run.json", "plots", "tensorboard", "checkpoints"):
        assert (first / name).exists(), name
    assert _rows(first) == _rows(second) and len(_rows(first)) == 2
    weights = sorted((first / "checkpoints").glob("*/weights.safetensors"))
    assert weights, "no checkpoint weights were written"
    for path in weights:
        twin = second / path.relative_to(first)
        a, b = load_file(path), load_file(twin)
        assert a.keys() == b.keys() and all((a[key] == b[key]).all() for key in a), path
