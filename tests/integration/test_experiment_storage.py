"""An Experiment's checkpoints on a hostile disk: damage is refused on explicit load and set aside on resume
(which then ends exactly like an uninterrupted run), a full disk keeps the last good checkpoint, and a
pickle planted in any file of a checkpoint is never run."""

from __future__ import annotations

import csv
import errno
import io
import json
import os
import pickle
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from trainwell.experiment.checkpoints import STATE, WEIGHTS, read_state
from trainwell.experiment.experiment import Experiment
from trainwell.storage.checkpoints import MANIFEST, CorruptCheckpointError, read_checkpoint, write_checkpoint

EPOCHS = 3
PREVIOUS_INTACT = (
    r"Could not write the checkpoint .*epoch_0002 \(No space left on device\)\. The previous checkpoints are intact"
)


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(48, 6, generator=generator)
    return x, (x[:, 0] + x[:, 1] > 0).long() + (x[:, 2] > 0.5).long()


def _experiment(directory: Path) -> Experiment:
    torch.manual_seed(1)  # the same initial weights in every run
    network = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 3))
    return Experiment(directory, network, task="classif", optimizer="adam")


def _train(experiment: Experiment, epochs: int) -> list[dict[str, Any]]:
    x, y = _data()
    return experiment.train_data(
        x,
        y,
        validation_data=(x[:16], y[:16]),
        epochs=epochs,
        batch_size=8,
        verbose=False,
        save_every_epoch=True,
        disable_tensorboard=True,
    )


def _weights(experiment: Experiment) -> dict[str, torch.Tensor]:
    return {name: tensor.clone() for name, tensor in experiment.network.state_dict().items()}


def _rows(directory: Path) -> list[dict[str, str]]:
    with open(directory / "log.tsv", newline="") as handle:
        return [{k: v for k, v in row.items() if k != "time"} for row in csv.DictReader(handle, delimiter="\t")]


def _resumed_from(directory: Path) -> list[str | None]:
    return [call["resumed_from"] for call in json.loads((directory / "run.json").read_text())["trainings"]]


def _assert_same_weights(actual: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    assert actual.keys() == expected.keys()
    for name, tensor in expected.items():
        assert torch.equal(actual[name], tensor), name


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, torch.Tensor], list[dict[str, str]]]:
    """The uninterrupted run: its final weights and log.tsv rows."""
    directory = tmp_path_factory.mktemp("reference")
    experiment = _experiment(directory)
    _train(experiment, EPOCHS)
    return _weights(experiment), _rows(directory)


@pytest.fixture(scope="module")
def two_epochs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory that trained 2 of the 3 epochs, with both epochs' checkpoints; copied by each test."""
    directory = tmp_path_factory.mktemp("two_epochs")
    _train(_experiment(directory), 2)
    return directory


@pytest.fixture
def run(two_epochs: Path, tmp_path: Path) -> Path:
    shutil.copytree(two_epochs, tmp_path / "run")
    return tmp_path / "run"


# -- kinds of damage ---------------------------------------------------------------------------------------------
def _truncate_weights(path: Path) -> None:
    (path / WEIGHTS).write_bytes((path / WEIGHTS).read_bytes()[:-5])


def _flip_a_weight_bit(path: Path) -> None:
    data = bytearray((path / WEIGHTS).read_bytes())
    data[-3] ^= 0x01  # inside the tensors' bytes: the file still parses, only its hash tells
    (path / WEIGHTS).write_bytes(bytes(data))


def _remove_state(path: Path) -> None:
    (path / STATE).unlink()


def _garble_manifest(path: Path) -> None:
    (path / MANIFEST).write_bytes((path / MANIFEST).read_bytes()[:40])


def _remove_manifest(path: Path) -> None:
    (path / MANIFEST).unlink()


DAMAGE: dict[str, Callable[[Path], None]] = {
    "truncated-weights": _truncate_weights,
    "bit-flipped-weights": _flip_a_weight_bit,
    "missing-state": _remove_state,
    "garbled-manifest": _garble_manifest,
    "missing-manifest": _remove_manifest,
}
DAMAGE_MESSAGE = {
    "truncated-weights": r"epoch_0002 is damaged: weights.safetensors has \d+ bytes",
    "bit-flipped-weights": r"epoch_0002 is damaged: weights.safetensors has \d+ bytes and another sha256",
    "missing-state": r"epoch_0002 is missing state.safetensors",
    "garbled-manifest": r"epoch_0002 has no readable manifest.json",
    "missing-manifest": r"epoch_0002 has no readable manifest.json",
}


def _explicit_cases() -> list[Any]:
    cases = []
    for damage in DAMAGE:
        for which in ("last", 2, "path"):
            cases.append(pytest.param(damage, which, id=f"{damage}-{which}"))
    return cases


@pytest.mark.parametrize(("damage", "which"), _explicit_cases())
def test_explicit_load_of_a_damaged_checkpoint_raises(run: Path, damage: str, which: Any) -> None:
    DAMAGE[damage](run / "checkpoints" / "epoch_0002")
    experiment = _experiment(run)
    before = _weights(experiment)
    checkpoint = run / "checkpoints" / "epoch_0002" if which == "path" else which
    with pytest.raises(CorruptCheckpointError, match=DAMAGE_MESSAGE[damage]):
        experiment.load_checkpoint(checkpoint)
    _assert_same_weights(_weights(experiment), before)  # nothing half-loaded


def test_best_and_test_data_refuse_a_damaged_checkpoint(run: Path) -> None:
    experiment = _experiment(run)
    best = int(experiment.get_best_epoch_stats()["epoch"].iloc[0])
    _flip_a_weight_bit(run / "checkpoints" / f"epoch_{best:04d}")
    message = rf"epoch_{best:04d} is damaged: weights.safetensors"
    with pytest.raises(CorruptCheckpointError, match=message):
        experiment.load_checkpoint("best")
    x, y = _data()
    with pytest.raises(CorruptCheckpointError, match=message):
        experiment.test_data(x, y, checkpoint=best, verbose=False)
    with pytest.raises(CorruptCheckpointError, match=message):
        experiment.test_data(x, y, verbose=False)  # 'best' by default
    assert not (run / "test_log.tsv").exists()  # no result was written for weights that were never loaded


# -- resume -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_resume_sets_a_damaged_newest_checkpoint_aside_and_ends_like_an_uninterrupted_run(
    run: Path, reference: tuple[dict[str, torch.Tensor], list[dict[str, str]]], damage: str
) -> None:
    weights, rows = reference
    DAMAGE[damage](run / "checkpoints" / "epoch_0002")
    experiment = _experiment(run)
    with pytest.warns(RuntimeWarning, match=DAMAGE_MESSAGE[damage] + r".* moved to corrupt-epoch_0002"):
        _train(experiment, EPOCHS)
    assert _resumed_from(run)[-1] == "epoch_0001"  # epoch 2 is simply trained again
    _assert_same_weights(_weights(experiment), weights)
    assert _rows(run) == rows  # every epoch once, with the uninterrupted run's values
    names = sorted(path.name for path in (run / "checkpoints").iterdir())
    assert names == ["corrupt-epoch_0002", "epoch_0001", "epoch_0002", "epoch_0003"]
    # The damaged one is kept for inspection, never listed again: a further resume does not warn.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _train(_experiment(run), EPOCHS) == []


def test_resume_with_every_checkpoint_damaged_starts_over(
    run: Path, reference: tuple[dict[str, torch.Tensor], list[dict[str, str]]]
) -> None:
    weights, rows = reference
    _flip_a_weight_bit(run / "checkpoints" / "epoch_0002")
    _truncate_weights(run / "checkpoints" / "epoch_0001")
    experiment = _experiment(run)
    with pytest.warns(RuntimeWarning, match="corrupt-epoch_000") as caught:
        _train(experiment, EPOCHS)
    assert sorted(str(w.message).split(" It was moved to ")[1][:18] for w in caught) == [
        "corrupt-epoch_0001",
        "corrupt-epoch_0002",
    ]
    assert _resumed_from(run)[-1] is None
    _assert_same_weights(_weights(experiment), weights)
    assert _rows(run) == rows


# -- a full disk during training -----------------------------------------------------------------------------------
def _fail_checkpoint_fsyncs_of(name: str, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Makes every fsync of a file of the checkpoint ``name`` being written fail as a full disk does."""
    real_fsync = os.fsync
    failed: list[str] = []

    def fsync(descriptor: int) -> None:
        target = os.readlink(f"/proc/self/fd/{descriptor}")
        if f"/.partial-{name}-" in target:
            failed.append(target)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(descriptor)

    monkeypatch.setattr(os, "fsync", fsync)
    return failed


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="finds a descriptor's file through /proc")
def test_a_full_disk_keeps_the_last_good_checkpoint_and_a_later_train_resumes_from_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reference: tuple[dict[str, torch.Tensor], list[dict[str, str]]]
) -> None:
    weights, rows = reference
    failed = _fail_checkpoint_fsyncs_of("epoch_0002", monkeypatch)
    with pytest.raises(OSError, match=PREVIOUS_INTACT) as caught:
        _train(_experiment(tmp_path), EPOCHS)
    assert caught.value.errno == errno.ENOSPC and failed
    monkeypatch.undo()

    checkpoints = tmp_path / "checkpoints"
    assert sorted(path.name for path in checkpoints.iterdir()) == ["epoch_0001"]  # nothing half-written
    meta, state = read_state(checkpoints / "epoch_0001")  # verified against its manifest
    assert meta["epoch"] == 1 and state["next_epoch"] == 2
    assert int(_experiment(tmp_path).load_checkpoint("last")["epoch"].iloc[0]) == 1  # its log.tsv row

    experiment = _experiment(tmp_path)  # as a new process would
    _train(experiment, EPOCHS)
    assert _resumed_from(tmp_path) == [None, "epoch_0001"]
    _assert_same_weights(_weights(experiment), weights)
    assert _rows(tmp_path) == rows  # the row of the epoch whose checkpoint failed was written again, once


# -- pickle payloads -------------------------------------------------------------------------------------------
class _Payload:
    """Unpickling it creates the marker file: the proof that a pickle ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.marker), "w"))


def _pickled(marker: Path) -> bytes:
    return pickle.dumps({"weight": _Payload(marker)})


def _torch_zip(marker: Path) -> bytes:
    buffer = io.BytesIO()
    torch.save({"weight": _Payload(marker)}, buffer)  # torch's zip format, with the payload in its data.pkl
    return buffer.getvalue()


PAYLOADS = {"pickle": _pickled, "torch-zip": _torch_zip}


@pytest.mark.parametrize("make", sorted(PAYLOADS))
def test_the_payloads_are_live(tmp_path: Path, make: str) -> None:
    # The control: loaded the unsafe way, each payload does create its marker.
    marker = tmp_path / "PWNED"
    payload = PAYLOADS[make](marker)
    if make == "pickle":
        pickle.loads(payload)
    else:
        torch.load(io.BytesIO(payload), weights_only=False)
    assert marker.exists()


def _plant(checkpoint: Path, file_name: str, payload: bytes) -> None:
    """Replaces one file of a checkpoint with ``payload`` and writes a manifest that vouches for it."""
    meta, files = read_checkpoint(checkpoint)
    if file_name == MANIFEST:
        (checkpoint / MANIFEST).write_bytes(payload)
        return
    write_checkpoint(checkpoint.parent, checkpoint.name, {**files, file_name: payload}, meta)
    assert read_checkpoint(checkpoint)[1][file_name] == payload  # the hash check passes


@pytest.mark.parametrize("make", sorted(PAYLOADS))
@pytest.mark.parametrize("file_name", [WEIGHTS, STATE, MANIFEST])
def test_a_pickle_planted_in_any_file_is_never_run(
    run: Path, reference: tuple[dict[str, torch.Tensor], list[dict[str, str]]], file_name: str, make: str
) -> None:
    marker = run.parent / "PWNED"
    checkpoint = run / "checkpoints" / "epoch_0002"
    _plant(checkpoint, file_name, PAYLOADS[make](marker))
    message = (
        r"epoch_0002 has no readable manifest.json"
        if file_name == MANIFEST
        else rf"epoch_0002 is damaged: {file_name} is not a safetensors file \(trainwell checkpoints hold no pickles\)"
    )
    experiment = _experiment(run)
    with pytest.raises(CorruptCheckpointError, match=message):
        read_state(checkpoint)
    if file_name != STATE:  # loading weights reads the weights file (and verifies the manifest)
        for which in ("path", 2):
            with pytest.raises(CorruptCheckpointError, match=message):
                experiment.load_checkpoint(checkpoint if which == "path" else which)
    # Resuming refuses it too: set aside, and epoch 2 trained again from epoch 1.
    with pytest.warns(RuntimeWarning, match=message + r".* moved to corrupt-epoch_0002"):
        _train(experiment, EPOCHS)
    assert not marker.exists()
    _assert_same_weights(_weights(experiment), reference[0])
