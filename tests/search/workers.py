"""Starting search worker processes (``search_script.py``) and reading what their searches left behind."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).with_name("search_script.py")
ROOT = Path(__file__).resolve().parents[2]


def start(directory: Path, **env: object) -> subprocess.Popen:
    source = str(ROOT / "src")
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([source, os.environ.get("PYTHONPATH", "")]),
        "OMP_NUM_THREADS": "1",
        "NO_PLOTS": "1",
        **{key: str(value) for key, value in env.items()},
    }
    return subprocess.Popen(
        [sys.executable, str(SCRIPT), str(directory)],
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen) -> tuple[list[dict], str]:
    """Waits for a worker; returns its final table and its output."""
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, f"{out[-2000:]}\n{err[-4000:]}"
    table = json.loads(out.split("TABLE ", 1)[1])
    for row in table:
        row.pop("directory")
    return table, out


def final_weights(trial_directory: Path) -> str:
    """sha256 of the newest epoch checkpoint's weights (its tensors, by name)."""
    from safetensors.torch import load_file

    newest = sorted((trial_directory / "checkpoints").glob("epoch_*"))[-1]
    digest = hashlib.sha256()
    for name, tensor in sorted(load_file(newest / "weights.safetensors").items()):
        digest.update(name.encode() + tensor.numpy().tobytes())
    return digest.hexdigest()


def trainings(trial_directory: Path) -> list[dict]:
    """The ``train`` calls that the trial's run.json records (one per process that ran the trial)."""
    return json.loads((trial_directory / "run.json").read_text())["trainings"]
