"""Real signals sent to a real training subprocess (``signal_script.py``).

SIGINT finishes the current step, writes a checkpoint and exits 130; SIGTERM does the same with 143; a
second SIGINT aborts at once with Python's KeyboardInterrupt. Running the same training again resumes and
ends with exactly the weights (sha256) and log.tsv rows of a run that was never interrupted.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("signal_script.py")
ROOT = Path(__file__).resolve().parents[2]


def _start(directory: Path, slow: float = 0.0) -> subprocess.Popen[str]:
    # Unbuffered: the handler's "Received signal" line must reach the pipe when it is printed.
    environment = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1", "SLOW": str(slow)}
    return subprocess.Popen(
        [sys.executable, str(SCRIPT), str(directory)],
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _read_until(process: subprocess.Popen[str], marker: str) -> list[str]:
    """Reads stdout lines until one starts with ``marker``; fails if the process ends first."""
    assert process.stdout is not None
    lines: list[str] = []
    while True:
        line = process.stdout.readline()
        if not line:
            _, err = process.communicate(timeout=30)
            pytest.fail(f"the run ended (rc={process.returncode}) before {marker!r}: {lines[-5:]} {err[-2000:]}")
        lines.append(line.strip())
        if line.startswith(marker):
            return lines


def _finish(directory: Path) -> str:
    process = _start(directory)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err[-3000:]
    return out.split("WEIGHTS ")[1].strip()


def _rows(directory: Path) -> list[dict[str, str]]:
    with (directory / "log.tsv").open(newline="") as handle:
        return [
            {key: value for key, value in row.items() if key != "time"}
            for row in csv.DictReader(handle, delimiter="\t")
        ]


def _checkpoints(directory: Path) -> list[str]:
    return sorted(path.name for path in (directory / "checkpoints").iterdir() if not path.name.startswith("."))


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, list[dict[str, str]]]:
    """The uninterrupted run: final weights' sha256 and log.tsv rows (without wall times)."""
    directory = tmp_path_factory.mktemp("reference")
    return _finish(directory), _rows(directory)


def _interrupt(directory: Path, marker: str, signal_number: int) -> tuple[int, str, str]:
    """Starts the run, sends ``signal_number`` once stdout shows ``marker``; returns (rc, stdout, stderr)."""
    process = _start(directory, slow=0.05)
    _read_until(process, marker)
    process.send_signal(signal_number)
    out, err = process.communicate(timeout=60)
    return process.returncode, out, err


def test_sigint_then_sigterm_checkpoint_exit_and_the_run_resumes_exactly(
    tmp_path: Path, reference: tuple[str, list[dict[str, str]]]
) -> None:
    weights, rows = reference
    stops = []
    for marker, signal_number, exit_code, epochs_logged in (
        ("BATCH 2 4", signal.SIGINT, 130, ["1"]),  # mid-epoch 2: epoch 1's checkpoint exists, epoch 2's does not
        ("BATCH 3 9", signal.SIGTERM, 143, ["1", "2"]),  # the resumed run, stopped again in epoch 3
    ):
        code, out, err = _interrupt(tmp_path, marker, signal_number)
        assert code == exit_code, err[-3000:]
        assert f"Received signal {int(signal_number)}: finishing the current step" in out
        assert "checkpoint written to" in out and "run the same command again to resume" in out
        assert "Traceback" not in err
        # The step in progress was finished, then checkpointed: a step checkpoint at or past the marker's
        # batch (15 batches per epoch), and log.tsv holds the finished epochs only.
        epoch, batch = (int(part) for part in marker.split()[1:])
        newest = _checkpoints(tmp_path)[-1]
        assert newest.startswith("step_") and int(newest.removeprefix("step_")) >= 15 * (epoch - 1) + batch, newest
        assert [row["epoch"] for row in _rows(tmp_path)] == epochs_logged
        stops.append(newest)

    assert _finish(tmp_path) == weights  # bit-for-bit the uninterrupted run's final weights
    assert _rows(tmp_path) == rows  # every epoch exactly once, with the uninterrupted values
    calls = json.loads((tmp_path / "run.json").read_text())["trainings"]
    assert [call["resumed_from"] for call in calls] == [None, *stops]


def test_a_second_sigint_aborts_at_once(tmp_path: Path) -> None:
    process = _start(tmp_path, slow=30.0)  # a step that would take 30 s to finish
    _read_until(process, "BATCH 1 1")
    process.send_signal(signal.SIGINT)
    _read_until(process, "Received signal 2")  # the first one asked for a graceful stop...
    started = time.monotonic()
    process.send_signal(signal.SIGINT)  # ...the second one does not wait for the step to end
    _, err = process.communicate(timeout=20)

    assert time.monotonic() - started < 10
    assert process.returncode not in (0, 130), process.returncode
    assert "Traceback" in err and "KeyboardInterrupt" in err.splitlines()[-1]
    assert not (tmp_path / "checkpoints").exists() or _checkpoints(tmp_path) == []  # nothing half-saved
