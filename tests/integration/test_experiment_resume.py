"""A real training subprocess killed with SIGKILL at random moments, then resumed, ends bit-for-bit like an
uninterrupted run: same final weights (sha256), same log.tsv rows (but the wall times)."""

import csv
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("train_script.py")
ROOT = Path(__file__).resolve().parents[2]


def _run(directory, **env):
    environment = {**os.environ, "PYTHONPATH": str(ROOT), **{key: str(value) for key, value in env.items()}}
    return subprocess.Popen(
        [sys.executable, str(SCRIPT), str(directory)],
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(directory, **env):
    process = _run(directory, **env)
    out, err = process.communicate(timeout=240)
    assert process.returncode == 0, err[-3000:]
    return out.split("WEIGHTS ")[1].strip()


def _rows(directory):
    with open(Path(directory) / "log.tsv", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    return [{key: value for key, value in row.items() if key != "time"} for row in rows]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    directory = tmp_path_factory.mktemp("reference")
    return _finish(directory, STEPS=3), _rows(directory)


def _kill_at_random_moments(directory, kills, rng, **env):
    """Starts the run, SIGKILLs it after a random delay, again and again; returns how many kills landed."""
    landed = 0
    for _ in range(kills):
        process = _run(directory, SLOW=0.02, **env)
        assert process.stdout.readline().strip() == "TRAINING"
        # 60 batches of >= 20 ms, checkpoints every 3 steps and each epoch: anywhere in a batch, in
        # validation or in a checkpoint write.
        time.sleep(rng.uniform(0.05, 1.0))
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            landed += 1
        process.communicate(timeout=60)
    return landed


def test_sigkill_at_random_moments_then_resume_matches_the_uninterrupted_run(tmp_path, reference):
    weights, rows = reference
    landed = _kill_at_random_moments(tmp_path, kills=3, rng=random.Random(7), STEPS=3)
    assert landed == 3, "a run ended before its kill: the timing of the test needs adjusting"
    assert _finish(tmp_path, STEPS=3) == weights
    resumed_from = [call["resumed_from"] for call in json.loads((tmp_path / "run.json").read_text())["trainings"]]
    assert any(name and name.startswith("step_") for name in resumed_from), resumed_from  # a mid-epoch resume
    assert _rows(tmp_path) == rows  # every epoch exactly once, same values
    assert [row["epoch"] for row in _rows(tmp_path)] == ["1", "2", "3", "4"]
    assert not [p for p in (tmp_path / "checkpoints").iterdir() if p.name.startswith(".")]  # no leftovers


def test_negative_control_without_restoring_the_rng_differs(tmp_path, reference):
    weights, _ = reference
    env = {"STEPS": 3, "EPOCHS": 2}
    _finish(tmp_path, **env)  # two epochs...
    assert _finish(tmp_path, STEPS=3, NO_RNG_RESTORE=1) != weights  # ...then two more with the wrong RNG
