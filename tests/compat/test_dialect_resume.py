"""Both dialects with ``experiment_dir``: a real script interrupted (SIGKILL, then SIGINT) and run again ends
exactly like an uninterrupted run: same weights (sha256), same recorded values, same epoch count."""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).with_name("resume_script.py")
ROOT = Path(__file__).resolve().parents[2]


def _start(dialect, directory, slow=0.0):
    environment = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "SLOW": str(slow), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, str(SCRIPT), dialect, str(directory)],
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _result(process):
    out, err = process.communicate(timeout=240)
    assert process.returncode == 0, err[-3000:]
    return json.loads(out.split("RESULT ")[1])


def _interrupt(dialect, directory, interruption, rng):
    """Starts the run and interrupts it once it has checkpointed a new epoch, somewhere in the epochs after."""
    before = set(directory.glob("checkpoints/epoch_*"))
    process = _start(dialect, directory, slow=0.03)
    assert process.stdout.readline().strip() == "TRAINING"
    deadline = time.monotonic() + 120
    while set(directory.glob("checkpoints/epoch_*")) <= before and process.poll() is None:
        assert time.monotonic() < deadline, "no epoch was checkpointed in 120 s"
        time.sleep(0.05)
    # 4 epochs of 15 batches of >= 30 ms: the signal lands in training, validation or a checkpoint write.
    time.sleep(rng.uniform(0.0, 0.8))
    assert process.poll() is None, "the run ended before it was interrupted: the test's timing needs adjusting"
    process.send_signal(interruption)
    process.communicate(timeout=120)
    return process.returncode


@pytest.mark.parametrize(
    ("dialect", "interruptions"),
    [("fitloop", [signal.SIGKILL, signal.SIGINT]), ("tinydl", [signal.SIGINT])],
)
def test_an_interrupted_dialect_run_resumes_exactly(tmp_path, dialect, interruptions):
    reference = _result(_start(dialect, tmp_path / "reference"))
    directory = tmp_path / "interrupted"
    rng = random.Random(3)
    codes = [_interrupt(dialect, directory, interruption, rng) for interruption in interruptions]
    # SIGKILL leaves the last checkpoint; SIGINT writes one where it lands and exits with 130.
    assert codes == [-signal.SIGKILL if sig == signal.SIGKILL else 130 for sig in interruptions]
    resumed = _result(_start(dialect, directory))
    assert resumed == reference
    trainings = json.loads((directory / "run.json").read_text())["trainings"]
    assert len(trainings) == len(interruptions) + 1 and trainings[0]["resumed_from"] is None
    assert all(call["resumed_from"] for call in trainings[1:]), trainings


def test_a_finished_directory_trains_nothing_more_and_gives_back_what_was_recorded(tmp_path):
    from torch.utils.data import DataLoader, TensorDataset

    from trainwell.compat.fitloop import FitLoop

    torch.manual_seed(0)
    x, y = torch.randn(64, 8), torch.randint(0, 3, (64,))
    train, valid = DataLoader(TensorDataset(x, y), batch_size=16), DataLoader(TensorDataset(x, y), batch_size=32)

    def fitted():
        network = torch.nn.Linear(8, 3)
        optimizer = torch.optim.SGD(network.parameters(), lr=0.1)
        floop = FitLoop(network, optimizer, torch.nn.CrossEntropyLoss(), train_dl=train, valid_dl=valid,
                        device="cpu", sanity_check=False, experiment_dir=tmp_path)  # fmt: skip
        floop.fit(epochs=3, no_print=True)
        return floop

    first = fitted()
    again = fitted()  # new weights, nothing left to train: all of it comes from the directory
    assert again.epoch_num == first.epoch_num == 3
    assert again.M.train["loss"][0].tolist() == first.M.train["loss"][0].tolist()
    assert len(again.M.train["loss"][0]) == 3
    assert again.best_score == first.best_score
    for mine, theirs in zip(again.model.state_dict().values(), first.model.state_dict().values()):
        assert torch.equal(mine, theirs)
