"""The real ``trainwell`` command in subprocesses: fit from a config with overrides, ``--print_config`` read
back, a real SIGINT (exit 130, checkpoint) then the same command resuming to exactly the uninterrupted run's
weights and log, ``test``, ``show``, ``predict``, a bad config (exit 2) and a SIGTERM while the data loads
(exit 143). The processes that do not depend on each other run at the same time, to keep the wall time down.
The messages of more mistakes, and exit status 1, are checked in-process through the same entry point
(test_main.py).
"""

from __future__ import annotations

import csv
import hashlib
import json
import signal
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from tests.cli.helpers import TINY_CONFIG, run, start
from tests.cli.parts import make_data
from trainwell.cli import main

OVERRIDES = ("--epochs", "2", "--optimizer.lr", "0.02", "--network.init_args.hidden", "12")


def _rows(directory: Path) -> list[dict[str, str]]:
    with (directory / "log.tsv").open(newline="") as handle:
        return [{k: v for k, v in row.items() if k != "time"} for row in csv.DictReader(handle, delimiter="\t")]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _wait_for(process, marker: str) -> list[str]:
    lines = []
    while True:
        line = process.stdout.readline()
        if not line:
            _, err = process.communicate(timeout=60)
            pytest.fail(f"the run ended (rc={process.returncode}) before {marker!r}: {lines[-5:]} {err[-3000:]}")
        lines.append(line.strip())
        if line.startswith(marker):
            return lines


def test_the_command_end_to_end(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A config with a misspelt key, run meanwhile (checked at the end): exit status 2, the key named.
    (workdir / "bad.yaml").write_text(TINY_CONFIG.replace("epochs:", "epochz:").replace("reference", "bad"))
    bad = start("fit", "--config", "bad.yaml", cwd=workdir)
    # And a run whose data takes minutes to load, terminated (SIGTERM) at the end: exit 143, nothing to save.
    waiting = start(
        "fit", "--config", "run.yaml", "--data.class_path", "tests.cli.parts.waiting_data",
        "--directory", "runs/terminated", cwd=workdir,
    )  # fmt: skip
    try:
        _flow(workdir, monkeypatch, capsys)
        _wait_for(waiting, "LOADING DATA")  # long printed by now: the command's own handler is in place
        waiting.send_signal(signal.SIGTERM)
        _, err = waiting.communicate(timeout=60)
    finally:
        if waiting.poll() is None:
            waiting.kill()
            waiting.communicate()
    assert waiting.returncode == 143, err[-3000:]
    assert "terminated (SIGTERM) before training started" in err and "Traceback" not in err

    _, err = bad.communicate(timeout=120)
    assert bad.returncode == 2, err[-3000:]
    assert "Unknown key 'epochz'. Did you mean 'epochs'?" in err and "Traceback" not in err
    assert not (workdir / "runs/bad").exists()


def _flow(workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    # The uninterrupted run (the config and the overrides) trains while the config is printed, then
    # while that printed config runs elsewhere and is interrupted by a real SIGINT in the middle of epoch 2.
    reference = start("fit", "--config", "run.yaml", *OVERRIDES, cwd=workdir)
    printed = run("fit", "--config", "run.yaml", *OVERRIDES, "--print_config", cwd=workdir)
    assert printed.returncode == 0, printed.stderr[-3000:]
    (workdir / "printed.yaml").write_text(printed.stdout)
    resolved = yaml.safe_load(printed.stdout)
    assert resolved["epochs"] == 2 and resolved["optimizer"] == {"optim": "adam", "lr": 0.02}
    assert resolved["network"]["init_args"] == {"hidden": 12, "classes": 3}  # defaults filled in
    assert resolved["data"]["init_args"] == {"samples": 240, "noise": 0.0}

    interrupted = start(
        "fit", "--config", "printed.yaml", "--directory", "runs/resumed", cwd=workdir, env={"TRAINWELL_TEST_SLOW": "1"}
    )
    _wait_for(interrupted, "BATCH 2 3")
    interrupted.send_signal(signal.SIGINT)
    out, err = interrupted.communicate(timeout=120)
    assert interrupted.returncode == 130, err[-3000:]
    assert "checkpoint written to" in out and "Traceback" not in err
    stopped = sorted(p.name for p in (workdir / "runs/resumed/checkpoints").iterdir() if p.name.startswith("step_"))
    assert stopped and int(stopped[-1].removeprefix("step_")) >= 15 + 3  # 15 steps per epoch
    assert [row["epoch"] for row in _rows(workdir / "runs/resumed")] == ["1"]
    out, err = reference.communicate(timeout=240)
    assert reference.returncode == 0, err[-3000:]
    assert "Test results: test_loss:" in out

    reference_dir, resumed_dir = workdir / "runs/reference", workdir / "runs/resumed"
    saved = yaml.safe_load((reference_dir / "config.yaml").read_text())
    assert saved == resolved  # the printed config is the resolved config saved in the run directory

    # The same command on the interrupted directory resumes it, to the uninterrupted run's exact weights;
    # meanwhile `test` and `show` read the reference run.
    resuming = start("fit", "--config", "runs/resumed/config.yaml", cwd=workdir)
    testing = start("test", "runs/reference", "--checkpoint", "last", cwd=workdir)
    shown = run("show", "runs/reference", cwd=workdir)
    assert shown.returncode == 0, shown.stderr[-3000:]
    out, err = testing.communicate(timeout=240)
    assert testing.returncode == 0, err[-3000:]
    _, err = resuming.communicate(timeout=240)
    assert resuming.returncode == 0, err[-3000:]

    last = Path("checkpoints/epoch_0002/weights.safetensors")
    assert _sha(resumed_dir / last) == _sha(reference_dir / last)
    assert _rows(resumed_dir) == _rows(reference_dir)
    trainings = json.loads((resumed_dir / "run.json").read_text())["trainings"]
    assert [call["resumed_from"] for call in trainings] == [None, stopped[-1]]

    with (reference_dir / "test_log.tsv").open(newline="") as handle:
        (row,) = csv.DictReader(handle, delimiter="\t")
    assert row["epoch"] == "2"  # --checkpoint last
    assert f"test_loss: {float(row['test_loss']):.6g}" in out

    # show: the epochs table with the best epoch starred, the test values, the config and the versions.
    table = shown.stdout.split("Epochs (log.tsv; * the best epoch):\n")[1].split("\n\n")[0].splitlines()
    assert table[0].split() == list(_rows(reference_dir)[0])
    best = min(_rows(reference_dir), key=lambda row: float(row["val_loss"]))["epoch"]
    assert [line.split()[0] for line in table[1:] if line.endswith("*")] == [best]
    assert f"Best epoch: {best}" in shown.stdout
    assert "Test (test_log.tsv, epoch " in shown.stdout and "versions: trainwell " in shown.stdout
    assert "class_path: tests.cli.parts.make_network" in shown.stdout

    # predict, in-process (the command's own entry point): the last checkpoint's outputs on the test split,
    # whose cross-entropy is the test loss `trainwell test --checkpoint last` logged.
    monkeypatch.chdir(workdir)
    assert main(["predict", "runs/reference", "--checkpoint", "last"]) == 0
    predictions = load_file(reference_dir / "predictions_test.safetensors")["predictions"]
    _, y_test = make_data()["test"]
    assert predictions.shape == (48, 3)
    assert torch.nn.functional.cross_entropy(predictions, y_test).item() == pytest.approx(float(row["test_loss"]))

    # show DIR1 DIR2, in-process too: one column per run; the configs differ only in their directory.
    capsys.readouterr()  # what predict printed
    assert main(["show", "runs/reference", "runs/resumed"]) == 0
    compared = capsys.readouterr().out.splitlines()
    assert compared[0].split() == ["runs/reference", "runs/resumed"]
    cells = {
        line.rsplit(None, 2)[0]: line.rsplit(None, 2)[1:] for line in compared[1:] if line.split()[0] != "versions"
    }
    assert cells["epochs"] == ["2", "2"] and cells["best epoch"][0] == cells["best epoch"][1] == best
    assert cells["best val_loss"][0] == cells["best val_loss"][1]
    assert not any(label.startswith("config ") for label in cells)
