"""Running the real ``trainwell`` command in subprocesses, and the tiny config the tests start from."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ENVIRONMENT = {
    **os.environ,
    # The tree under test, and the repository root so that class paths `tests.cli.parts.*` import.
    "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)]),
    "PYTHONUNBUFFERED": "1",  # the step lines must reach the pipe when printed
    "MPLBACKEND": "Agg",
    "OMP_NUM_THREADS": "1",
    "NO_COLOR": "1",
}

TINY_CONFIG = """\
directory: runs/reference
network:
  class_path: tests.cli.parts.make_network
  init_args: {hidden: 8}
data:
  class_path: tests.cli.parts.make_data
loss_function: cross_entropy
monitor_metric: val_loss
optimizer: {optim: adam, lr: 0.05}
epochs: 1
batch_size: 16
verbose: false
disable_tensorboard: true
callbacks:
  - class_path: tests.cli.parts.ReportSteps
    init_args: {seconds: 0.05}
lr_schedulers:
  - class_path: trainwell.StepLR
    init_args: {step_size: 1, gamma: 0.5}
"""


def command(*arguments: str) -> list[str]:
    return [sys.executable, "-m", "trainwell", *arguments]


def run(
    *arguments: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 240
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command(*arguments),
        cwd=cwd,
        env={**ENVIRONMENT, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start(*arguments: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        command(*arguments),
        cwd=cwd,
        env={**ENVIRONMENT, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
