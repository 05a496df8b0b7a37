"""Experiment / ModelBundle behaviour (Poutyne contract, GUIDE section 2): presets, the run directory, total
epochs, tests and inference from checkpoints, results, retention, NaN guard, bad input, ``logging=False``.

Everything is read back from the real files the experiment writes (log.tsv with the csv module, TensorBoard
events with tensorboard's EventAccumulator, PNG signatures, run.json, safetensors weights), and compared with
values computed independently (a fresh network loaded with a checkpoint's weights).
"""

from __future__ import annotations

import csv
import json
import math
import platform
import re
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

import trainwell
from trainwell import Callback, Model
from trainwell.experiment.experiment import Experiment, ModelBundle

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CLASSIF_COLUMNS = ["epoch", "time", "lr", "loss", "acc", "fscore_macro", "val_loss", "val_acc", "val_fscore_macro"]
FAST_SGD = {"optim": "sgd", "lr": 0.5}  # large enough that the metrics move from epoch to epoch


# -- helpers ------------------------------------------------------------------------------------------------
def _data(n: int = 48, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=generator)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()  # three classes a small network can learn
    return x, y


def _network(seed: int = 1, hidden: int = 8) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, hidden), nn.ReLU(), nn.Linear(hidden, 3))


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def _without_time(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{key: value for key, value in row.items() if key != "time"} for row in rows]


def _epoch(stats: Any) -> int:
    """The epoch of the one-row DataFrame ``load_checkpoint`` returns (Poutyne's return value)."""
    assert len(stats) == 1
    return int(stats["epoch"].item())


def _checkpoint_names(directory: Path) -> list[str]:
    folder = directory / "checkpoints"
    return sorted(path.name for path in folder.iterdir() if not path.name.startswith(".")) if folder.is_dir() else []


def _weights(directory: Path, name: str) -> dict[str, torch.Tensor]:
    return load_file(str(directory / "checkpoints" / name / "weights.safetensors"))


def _network_with(weights: Mapping[str, torch.Tensor]) -> nn.Module:
    network = _network(seed=99)  # other initial weights: only the loaded ones can make results match
    network.load_state_dict(weights)
    return network


def _assert_same_outputs(actual: Any, expected: np.ndarray) -> None:
    """Outputs computed in batches of other sizes: float32 sums in another order differ by a few ulps of the
    largest value (1.6e-6 relative was seen on an output near zero), so the bound scales with the outputs."""
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-5 * float(np.abs(expected).max()))


def _reference_evaluation(weights: Mapping[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> dict[str, Any]:
    """What a plain Model (no experiment) computes with these weights."""
    model = Model(_network_with(weights), None, "cross_entropy", batch_metrics=["accuracy"], epoch_metrics=["f1"])
    return model.evaluate(x, y, batch_size=16, verbose=False, return_dict_format=True)


class InjectScore(Callback):
    """Adds a chosen ``score`` to each epoch's logs, so tests decide which epochs are best."""

    def __init__(self, scores: list[float]) -> None:
        self.scores = scores

    def on_epoch_end(self, epoch_number: int, logs: Any) -> None:
        logs["score"] = self.scores[epoch_number - 1]


def _scored_run(directory: Path, scores: list[float], mode: str = "max", **options: Any) -> Experiment:
    # No metrics: every train call draws one PNG per logged value, the slowest part of these tiny runs.
    experiment = Experiment(
        directory, _network(), loss_function="cross_entropy", monitor_metric="score", monitor_mode=mode
    )
    x, y = _data()
    experiment.train_data(
        x,
        y,
        validation_data=(x, y),
        epochs=len(scores),
        batch_size=16,
        verbose=False,
        disable_tensorboard=True,
        callbacks=[InjectScore(scores)],
        **options,
    )
    return experiment


def _train_with(method: str, experiment: ModelBundle, epochs: int, **options: Any) -> list[dict[str, Any]]:
    """Trains through ``train_data``, ``train_dataset`` or ``train`` on the same data."""
    x, y = _data()
    xv, yv = _data(24, seed=5)
    options = {"epochs": epochs, "verbose": False, **options}
    if method == "train_data":
        return experiment.train_data(x, y, validation_data=(xv, yv), batch_size=16, **options)
    if method == "train_dataset":
        return experiment.train_dataset(TensorDataset(x, y), TensorDataset(xv, yv), batch_size=16, **options)
    loaders = DataLoader(TensorDataset(x, y), batch_size=16), DataLoader(TensorDataset(xv, yv), batch_size=16)
    return experiment.train(*loaders, **options)


def _scalars_by_key(tensorboard: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar of ``tensorboard/``, read back with tensorboard's own reader, by log key."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    found: dict[str, list[tuple[int, float]]] = {}
    for run in sorted(path for path in tensorboard.iterdir() if path.is_dir()):
        accumulator = EventAccumulator(str(run))
        accumulator.Reload()
        for chart in accumulator.Tags()["scalars"]:
            # add_scalars writes series `key` of chart `chart` to the run directory `<chart>_<key>`.
            key = run.name[len(chart) + 1 :]
            found[key] = [(event.step, event.value) for event in accumulator.Scalars(chart)]
    return found


def _is_a_commit_of_this_repository(value: Any) -> bool:
    """The tests run inside trainwell's git checkout: run.json must name one of its commits."""
    if not isinstance(value, str) or not re.fullmatch(r"[0-9a-f]{40}", value):
        return False
    kind = subprocess.run(["git", "cat-file", "-t", value], capture_output=True, text=True, check=False)
    return kind.stdout.strip() == "commit"


TRAINED_OPTIONS: dict[str, Any] = {"save_every_epoch": True, "disable_tensorboard": True}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Experiment]:
    """Three epochs, every epoch's checkpoint kept, monitoring val_acc (max); shared by read-only tests."""
    directory = tmp_path_factory.mktemp("trained")
    experiment = Experiment(directory, _network(), task="classif", optimizer=FAST_SGD)
    _train_with("train_data", experiment, 3, **TRAINED_OPTIONS)
    return directory, experiment


def _same_weights(network: nn.Module, weights: Mapping[str, torch.Tensor]) -> bool:
    state = network.state_dict()
    return state.keys() == weights.keys() and all(torch.equal(state[name], weights[name]) for name in state)


# -- 1. construction: presets, equivalences, errors --------------------------------------------------------
@pytest.mark.parametrize(
    ("task", "loss_type", "metrics", "monitor"),
    [
        ("classif", nn.CrossEntropyLoss, ["acc", "fscore_macro"], ("val_acc", "max")),
        ("classification", nn.CrossEntropyLoss, ["acc", "fscore_macro"], ("val_acc", "max")),  # Poutyne's prefix
        ("reg", nn.MSELoss, [], ("val_loss", "min")),
        ("regression", nn.MSELoss, [], ("val_loss", "min")),
    ],
)
def test_task_presets(tmp_path: Path, task: str, loss_type: type, metrics: list[str], monitor: tuple) -> None:
    experiment = Experiment(tmp_path, _network(), task=task)
    assert isinstance(experiment.model.loss_function, loss_type)
    assert experiment.model.metrics_names == metrics
    assert (experiment.monitor_metric, experiment.monitor_mode) == monitor


def test_explicit_arguments_win_over_the_preset(tmp_path: Path) -> None:
    experiment = Experiment(
        tmp_path,
        _network(),
        task="classif",
        loss_function="multi_margin",
        batch_metrics=["top2"],
        epoch_metrics=[],
        monitor_metric="val_loss",
    )
    assert isinstance(experiment.model.loss_function, nn.MultiMarginLoss)
    assert experiment.model.metrics_names == ["top2"]
    # The preset's 'max' belongs to val_acc: an explicit val_loss is minimized.
    assert (experiment.monitor_metric, experiment.monitor_mode) == ("val_loss", "min")
    assert Experiment(tmp_path, _network(), task="classif", monitor_mode="min").monitor_mode == "min"


def test_experiment_equals_model_bundle_from_network(tmp_path: Path, trained: tuple[Path, Experiment]) -> None:
    directory, experiment = trained
    bundle = ModelBundle.from_network(tmp_path, _network(), task="classif", optimizer=FAST_SGD)
    assert isinstance(experiment, ModelBundle) and type(bundle) is ModelBundle
    assert (bundle.monitor_metric, bundle.monitor_mode) == (experiment.monitor_metric, experiment.monitor_mode)
    _train_with("train_data", bundle, 3, **TRAINED_OPTIONS)
    assert _without_time(_rows(tmp_path / "log.tsv")) == _without_time(_rows(directory / "log.tsv"))
    assert _same_weights(bundle.network, _weights(directory, "epoch_0003"))


def test_model_bundle_from_model(tmp_path: Path) -> None:
    model = Model(_network(), "adam", "cross_entropy", batch_metrics=["accuracy"])
    bundle = ModelBundle.from_model(tmp_path, model, monitor_metric="val_acc")
    assert bundle.model is model and bundle.network is model.network
    history = _train_with("train_data", bundle, epochs=2, disable_tensorboard=True)
    assert [row["epoch"] for row in _rows(tmp_path / "log.tsv")] == ["1", "2"]
    best = max(history, key=lambda logs: logs["val_acc"])["epoch"]  # first of equals, as Monitor
    assert _epoch(bundle.load_checkpoint("best")) == best
    with pytest.raises(TypeError, match="`model` must be a trainwell.Model. Received: model of type Sequential"):
        ModelBundle.from_model(tmp_path, _network())  # type: ignore[arg-type]


def test_bad_task_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"`task` must be 'classif' or 'reg'.*Received: task='segmentation'"):
        Experiment(tmp_path, _network(), task="segmentation")
    with pytest.raises(TypeError, match="`task` must be a string.*Received: task of type int"):
        Experiment(tmp_path, _network(), task=3)
    assert not tmp_path.joinpath("log.tsv").exists()


# -- 2. the run directory -----------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["train_data", "train_dataset", "train"])
def test_directory_contents(tmp_path: Path, method: str) -> None:
    experiment = Experiment(tmp_path, _network(), task="classif", optimizer=FAST_SGD)
    history = _train_with(method, experiment, epochs=2, seed=7)

    # log.tsv: tab-separated, a header in Poutyne's order, one row per epoch holding the history's values
    # and the epoch's learning rate (the history carries no lr, as in Poutyne: the logger writes it).
    lines = (tmp_path / "log.tsv").read_text().splitlines()
    assert lines[0].split("\t") == CLASSIF_COLUMNS
    rows = _rows(tmp_path / "log.tsv")
    assert [row["epoch"] for row in rows] == ["1", "2"]
    assert all("lr" not in logs for logs in history)
    for row, logs in zip(rows, history, strict=True):
        written = {key: float(value) for key, value in row.items()}
        assert written == {**{key: float(logs[key]) for key in row if key != "lr"}, "lr": FAST_SGD["lr"]}

    # tensorboard/: every logged value (the epoch too, as Poutyne writes it), at step = epoch, equal to
    # log.tsv (stored as float32).
    scalars = _scalars_by_key(tmp_path / "tensorboard")
    assert sorted(scalars) == sorted(CLASSIF_COLUMNS)
    for key, series in scalars.items():
        assert [step for step, _ in series] == [1, 2]
        assert [value for _, value in series] == pytest.approx([float(row[key]) for row in rows], rel=1e-6)

    # plots/: a PNG and a PDF per column of log.tsv (time and lr included, as in Poutyne), training and
    # validation on one figure.
    metrics = {column.removeprefix("val_") for column in CLASSIF_COLUMNS if column != "epoch"}
    plots = {path.name: path.read_bytes() for path in (tmp_path / "plots").iterdir()}
    assert sorted(plots) == sorted(f"{metric}.{extension}" for metric in metrics for extension in ("png", "pdf"))
    assert all(
        plots[f"{metric}.png"].startswith(PNG_SIGNATURE) and len(plots[f"{metric}.png"]) > 1000 for metric in metrics
    )
    assert all(plots[f"{metric}.pdf"].startswith(b"%PDF-") for metric in metrics)

    # Poutyne's files: the newest weights and optimizer state (safetensors, the checkpoint's own files), the
    # best epochs' weights, the random states and the last epoch, each readable by trainwell's loaders.
    newest = tmp_path / "checkpoints" / "epoch_0002"
    assert (tmp_path / "checkpoint.ckpt").read_bytes() == (newest / "weights.safetensors").read_bytes()
    assert (tmp_path / "checkpoint.optim").read_bytes() == (newest / "optimizer.safetensors").read_bytes()
    assert (tmp_path / "last.epoch").read_text() == "2\n"
    best = experiment.get_saved_epochs()["epoch"].tolist()
    assert sorted(path.name for path in tmp_path.glob("checkpoint_epoch_*.ckpt")) == [
        f"checkpoint_epoch_{epoch}.ckpt" for epoch in best
    ]
    fresh = Model(_network(seed=3), "sgd", "cross_entropy")
    fresh.load_weights(tmp_path / "checkpoint.ckpt")
    fresh.load_optimizer_state(tmp_path / "checkpoint.optim")
    assert _same_weights(fresh.network, _weights(tmp_path, "epoch_0002"))
    from trainwell.callbacks.checkpoint import load_random_states

    load_random_states(tmp_path / "checkpoint.randomstate")

    # run.json: versions, the seed and arguments of the call, the git commit key.
    record = json.loads((tmp_path / "run.json").read_text())
    assert (record["trainwell"], record["torch"], record["python"]) == (
        trainwell.__version__,
        torch.__version__,
        platform.python_version(),
    )
    (call,) = record["trainings"]
    assert (call["seed"], call["epochs"], call["resumed_from"]) == (7, 2, None)
    assert call["arguments"]["verbose"] is False
    assert _is_a_commit_of_this_repository(call["git_commit"])
    assert record["configuration"]["network"]["0.weight"] == [8, 4]
    assert _checkpoint_names(tmp_path)[-1] == "epoch_0002"


# -- 3. epochs is the total ---------------------------------------------------------------------------------
def test_epochs_is_the_total(tmp_path: Path, trained: tuple[Path, Experiment]) -> None:
    experiment = Experiment(tmp_path, _network(), task="classif", optimizer=FAST_SGD)
    assert [logs["epoch"] for logs in _train_with("train_data", experiment, 1, **TRAINED_OPTIONS)] == [1]
    assert [logs["epoch"] for logs in _train_with("train_data", experiment, 3, **TRAINED_OPTIONS)] == [2, 3]
    rows = _rows(tmp_path / "log.tsv")
    assert [row["epoch"] for row in rows] == ["1", "2", "3"]
    # Same weights and rows as three epochs in one call: the second call really continued the first.
    assert _same_weights(experiment.network, _weights(trained[0], "epoch_0003"))
    assert _without_time(rows) == _without_time(_rows(trained[0] / "log.tsv"))

    assert _train_with("train_data", experiment, 3, **TRAINED_OPTIONS) == []  # nothing left to train
    assert _rows(tmp_path / "log.tsv") == rows
    assert _same_weights(experiment.network, _weights(trained[0], "epoch_0003"))
    calls = json.loads((tmp_path / "run.json").read_text())["trainings"]
    assert [call["resumed_from"] for call in calls] == [None, "epoch_0001", "epoch_0003"]


# -- 4. tests, inference and results from the checkpoints ---------------------------------------------------
def _epoch_of(directory: Path, checkpoint: Any) -> int:
    rows = _rows(directory / "log.tsv")
    if checkpoint == "best":
        values = [float(row["val_acc"]) for row in rows]
        return values.index(max(values)) + 1  # the first of equal values, as the monitor keeps it
    return 3 if checkpoint == "last" else int(checkpoint)


@pytest.mark.parametrize("checkpoint", ["best", "last", 2, "directory", "weights file"])
def test_test_data_evaluates_the_chosen_checkpoint(trained: tuple[Path, Experiment], checkpoint: Any) -> None:
    directory, experiment = trained
    x, y = _data(24, seed=11)
    if checkpoint in ("directory", "weights file"):
        expected_epoch = 1
        path = directory / "checkpoints" / "epoch_0001"
        argument: Any = path if checkpoint == "directory" else path / "weights.safetensors"
    else:
        expected_epoch, argument = _epoch_of(directory, checkpoint), checkpoint
    logs = experiment.test_data(x, y, checkpoint=argument, batch_size=16, verbose=False)

    reference = _reference_evaluation(_weights(directory, f"epoch_{expected_epoch:04d}"), x, y)
    assert sorted(logs) == ["test_acc", "test_fscore_macro", "test_loss", "time"]
    for key in ("test_loss", "test_acc", "test_fscore_macro"):
        assert logs[key] == pytest.approx(reference[key], rel=1e-9)
    (row,) = _rows(directory / "test_log.tsv")
    # Poutyne's layout: the tested epoch's log.tsv row, then the test values; a plain weights file has no epoch.
    if checkpoint == "weights file":
        assert list(row) == ["test_loss", "test_acc", "test_fscore_macro"]
    else:
        (epoch_row,) = (logged for logged in _rows(directory / "log.tsv") if logged["epoch"] == str(expected_epoch))
        assert {key: float(row[key]) for key in epoch_row} == {key: float(value) for key, value in epoch_row.items()}
        assert list(row) == [*CLASSIF_COLUMNS, "test_loss", "test_acc", "test_fscore_macro"]
    assert float(row["test_loss"]) == logs["test_loss"]


def test_test_and_test_dataset_with_a_name(trained: tuple[Path, Experiment]) -> None:
    directory, experiment = trained
    x, y = _data(24, seed=11)
    reference = _reference_evaluation(_weights(directory, "epoch_0002"), x, y)
    from_loader = experiment.test(DataLoader(TensorDataset(x, y), batch_size=16), checkpoint=2, name="valid")
    assert sorted(from_loader) == ["time", "valid_acc", "valid_fscore_macro", "valid_loss"]
    assert from_loader["valid_loss"] == pytest.approx(reference["test_loss"], rel=1e-9)
    assert from_loader["valid_acc"] == pytest.approx(reference["test_acc"], rel=1e-9)
    header, row = (directory / "valid_log.tsv").read_text().splitlines()
    assert header.split("\t") == [*CLASSIF_COLUMNS, "valid_loss", "valid_acc", "valid_fscore_macro"]
    assert row.split("\t")[0] == "2"

    from_dataset = experiment.test_dataset(TensorDataset(x, y), checkpoint="last", batch_size=16, verbose=False)
    last = _reference_evaluation(_weights(directory, "epoch_0003"), x, y)
    assert from_dataset["test_loss"] == pytest.approx(last["test_loss"], rel=1e-9)


def test_infer_from_a_checkpoint(trained: tuple[Path, Experiment]) -> None:
    directory, experiment = trained
    x, y = _data(20, seed=12)
    with torch.no_grad():
        expected = _network_with(_weights(directory, "epoch_0001"))(x).numpy()
        last = _network_with(_weights(directory, "epoch_0003"))(x).numpy()
    _assert_same_outputs(experiment.infer_data(x, checkpoint=1, verbose=False), expected)
    loader = DataLoader(TensorDataset(x, y), batch_size=8)
    predictions = experiment.infer(loader, checkpoint=1, has_ground_truth=True, verbose=False)
    _assert_same_outputs(predictions, expected)
    from_dataset = experiment.infer_dataset(TensorDataset(x, y), checkpoint="last", has_ground_truth=True)
    _assert_same_outputs(from_dataset, last)
    assert not np.allclose(expected, last)  # the checkpoints really differ


def test_stats_saved_epochs_and_load_checkpoint_errors(tmp_path: Path) -> None:
    fresh = Experiment(tmp_path / "fresh", _network(), task="classif")
    with pytest.raises(ValueError, match="has no best checkpoint yet: train first, or pass checkpoint='last'"):
        fresh.load_checkpoint("best")
    with pytest.raises(ValueError, match="has no checkpoint yet: train first"):
        fresh.load_checkpoint("last")
    with pytest.raises(ValueError, match="has no log.tsv yet: train first"):
        fresh.get_stats()

    experiment = _scored_run(tmp_path / "run", scores=[1.0, 3.0, 2.0], mode="min")  # best: 1, newest: 3
    with pytest.raises(ValueError, match=r"No checkpoint of epoch 2 in .*Saved epochs: \[1, 3\]; train with save_"):
        experiment.load_checkpoint(2)
    with pytest.raises(TypeError, match=r"`checkpoint` must be 'best', 'last'.*Received: checkpoint=2.5"):
        experiment.load_checkpoint(2.5)  # type: ignore[arg-type]
    assert _epoch(experiment.load_checkpoint("best")) == 1
    assert _epoch(experiment.load_checkpoint("last")) == 3

    stats = experiment.get_stats()
    rows = _rows(tmp_path / "run" / "log.tsv")
    assert list(stats.columns) == list(rows[0])
    for (_, frame_row), row in zip(stats.iterrows(), rows, strict=True):
        assert {key: float(frame_row[key]) for key in row} == {key: float(value) for key, value in row.items()}
    assert experiment.get_saved_epochs()["epoch"].tolist() == [1]  # epoch 3 is kept only to resume from
    best = experiment.get_best_epoch_stats()
    assert (best["epoch"].tolist(), best["score"].tolist()) == ([1], [1.0])  # min mode


@pytest.mark.parametrize(
    ("options", "kept", "saved"),
    [
        ({}, ["epoch_0001", "epoch_0002", "epoch_0004", "epoch_0005"], [1, 2, 4]),  # every best so far + the newest
        ({"keep_only_last_best": True}, ["epoch_0004", "epoch_0005"], [4]),  # the current best + the newest
        ({"save_every_epoch": True}, [f"epoch_{epoch:04d}" for epoch in range(1, 6)], [1, 2, 3, 4, 5]),
    ],
)
def test_checkpoint_retention(tmp_path: Path, options: dict[str, Any], kept: list[str], saved: list[int]) -> None:
    experiment = _scored_run(tmp_path, scores=[1.0, 3.0, 2.0, 5.0, 4.0], **options)
    assert _checkpoint_names(tmp_path) == kept
    assert _epoch(experiment.load_checkpoint("best")) == 4
    best = experiment.get_best_epoch_stats()
    assert (best["epoch"].tolist(), best["score"].tolist()) == ([4], [5.0])  # max mode
    # get_saved_epochs: the epochs loadable by number for themselves (the newest, kept to resume, is not one).
    assert experiment.get_saved_epochs()["epoch"].tolist() == saved
    # Poutyne's files beside them: checkpoint_epoch_N.ckpt for the same epochs, checkpoint.ckpt for the newest.
    poutyne = sorted(path.name for path in tmp_path.glob("checkpoint_epoch_*.ckpt"))
    assert poutyne == sorted(f"checkpoint_epoch_{epoch}.ckpt" for epoch in saved)
    for epoch in saved:
        assert load_file(str(tmp_path / f"checkpoint_epoch_{epoch}.ckpt")).keys() == _weights(tmp_path, kept[0]).keys()
        assert (tmp_path / f"checkpoint_epoch_{epoch}.ckpt").read_bytes() == (
            tmp_path / "checkpoints" / f"epoch_{epoch:04d}" / "weights.safetensors"
        ).read_bytes()
    assert (tmp_path / "checkpoint.ckpt").read_bytes() == (
        tmp_path / "checkpoints" / "epoch_0005" / "weights.safetensors"
    ).read_bytes()
    assert (tmp_path / "last.epoch").read_text() == "5\n"


def test_classif_with_an_explicit_val_loss_monitor_minimizes_it(tmp_path: Path) -> None:
    experiment = Experiment(tmp_path, _network(), task="classif", monitor_metric="val_loss", optimizer=FAST_SGD)
    _train_with("train_data", experiment, 3, disable_tensorboard=True)
    losses = [float(row["val_loss"]) for row in _rows(tmp_path / "log.tsv")]
    assert len(set(losses)) == 3  # the choice means something
    assert experiment.get_best_epoch_stats()["epoch"].tolist() == [losses.index(min(losses)) + 1]
    assert _epoch(experiment.load_checkpoint("best")) == losses.index(min(losses)) + 1


def test_is_better_than_compares_two_runs(tmp_path: Path, trained: tuple[Path, Experiment]) -> None:
    strong = _scored_run(tmp_path / "strong", scores=[1.0, 5.0])
    weak = _scored_run(tmp_path / "weak", scores=[3.0, 2.0])
    assert strong.is_better_than(weak) and not weak.is_better_than(strong)

    with pytest.raises(ValueError, match="is_better_than compares two runs"):
        strong.is_better_than(strong)
    same_directory = Experiment(tmp_path / "strong", _network(), task="classif", monitor_metric="score")
    with pytest.raises(ValueError, match="is_better_than compares two runs"):
        strong.is_better_than(same_directory)
    with pytest.raises(ValueError, match=r"monitor different things \('score'/max here, 'val_acc'/max there\)"):
        strong.is_better_than(trained[1])
    with pytest.raises(TypeError, match="`other` must be an Experiment. Received: other of type str"):
        strong.is_better_than("weak")  # type: ignore[arg-type]


# -- 6. NaN and Inf -----------------------------------------------------------------------------------------
class _PoisonFrom(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Inputs turn NaN from epoch ``epoch`` on (``current`` is set by :class:`_EpochTeller`)."""

    def __init__(self, epoch: int) -> None:
        self.x, self.y = _data()
        self.epoch, self.current = epoch, 1

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.x[index] * math.nan if self.current >= self.epoch else self.x[index]
        return x, self.y[index]


class _EpochTeller(Callback):
    def __init__(self, dataset: _PoisonFrom) -> None:
        self.dataset = dataset

    def on_epoch_begin(self, epoch_number: int, logs: Any) -> None:
        self.dataset.current = epoch_number


def _all_finite(directory: Path) -> bool:
    return all(
        bool(torch.isfinite(tensor).all())
        for name in _checkpoint_names(directory)
        for tensor in _weights(directory, name).values()
    )


def test_nan_from_some_epoch_stops_and_keeps_the_last_good_checkpoint(tmp_path: Path) -> None:
    dataset = _PoisonFrom(epoch=3)
    experiment = Experiment(tmp_path, _network(), task="classif", optimizer=FAST_SGD)
    with pytest.raises(FloatingPointError, match=r"NaN or infinite by epoch 3, step 1: .*last good checkpoint"):
        experiment.train_dataset(
            dataset,
            TensorDataset(*_data(16)),
            epochs=5,
            batch_size=16,
            verbose=False,
            checkpoint_every_n_steps=1,
            callbacks=[_EpochTeller(dataset)],
            disable_tensorboard=True,
        )
    assert not torch.isfinite(next(experiment.network.parameters())).all()  # the weights in memory are NaN
    assert _all_finite(tmp_path)  # ...but none on disk
    assert _checkpoint_names(tmp_path)[-1] == "epoch_0002"  # nothing was written after the NaN
    assert _epoch(experiment.load_checkpoint("last")) == 2
    assert [row["epoch"] for row in _rows(tmp_path / "log.tsv")] == ["1", "2"]


def test_a_nan_epoch_never_reaches_the_logs_even_without_step_checkpoints(tmp_path: Path) -> None:
    dataset = _PoisonFrom(epoch=2)
    experiment = Experiment(tmp_path, _network(), task="classif", optimizer=FAST_SGD)
    with pytest.raises(FloatingPointError, match=r"NaN or infinite by epoch 2, step \d+: "):
        experiment.train_dataset(
            dataset,
            TensorDataset(*_data(16)),
            epochs=3,
            batch_size=16,
            verbose=False,
            callbacks=[_EpochTeller(dataset)],
            disable_tensorboard=True,
        )
    assert [row["epoch"] for row in _rows(tmp_path / "log.tsv")] == ["1"]  # the guard runs before the loggers
    assert _checkpoint_names(tmp_path) == ["epoch_0001"] and _all_finite(tmp_path)


def test_a_huge_learning_rate_stops_at_the_first_checkpoint_without_writing_it(tmp_path: Path) -> None:
    experiment = Experiment(tmp_path, nn.Linear(4, 1), task="reg", optimizer={"optim": "sgd", "lr": 1e30})
    x, _ = _data()
    with pytest.raises(FloatingPointError, match=r"by epoch 1, step 3: training stopped"):
        experiment.train_data(
            x,
            x.sum(1, keepdim=True),
            validation_data=(x, x.sum(1, keepdim=True)),
            epochs=3,
            batch_size=16,
            verbose=False,
        )
    assert _checkpoint_names(tmp_path) == []


# -- 7. bad input -------------------------------------------------------------------------------------------
def _copy_of(trained: tuple[Path, Experiment], tmp_path: Path) -> Path:
    return Path(shutil.copytree(trained[0], tmp_path / "copy"))


def test_resuming_another_network_is_refused(tmp_path: Path, trained: tuple[Path, Experiment]) -> None:
    directory = _copy_of(trained, tmp_path)
    wider = Experiment(directory, _network(hidden=16), task="classif", optimizer=FAST_SGD)
    with pytest.raises(ValueError, match=r"another configuration: parameter '0.bias' has shape \(8,\) there, \(16,\)"):
        _train_with("train_data", wider, 5)
    assert _rows(directory / "log.tsv") == _rows(trained[0] / "log.tsv")  # nothing was trained or logged
    assert _checkpoint_names(directory) == _checkpoint_names(trained[0])


def test_resuming_with_another_optimizer_is_refused(tmp_path: Path, trained: tuple[Path, Experiment]) -> None:
    directory = _copy_of(trained, tmp_path)
    with pytest.raises(ValueError, match=r"the optimizer is \{'class': 'SGD'.* there, \{'class': 'Adam'.* here"):
        _train_with("train_data", Experiment(directory, _network(), optimizer="adam", task="classif"), 5)


def test_a_monitor_metric_never_logged_lists_the_available_keys(tmp_path: Path) -> None:
    experiment = Experiment(tmp_path, _network(), task="classif", monitor_metric="val_f1")
    with pytest.raises(ValueError, match=r"monitors 'val_f1', which is not in the logs. Available keys: \[.*'val_f"):
        _train_with("train_data", experiment, 2, disable_tensorboard=True)
    assert _checkpoint_names(tmp_path) == []


def test_initial_epoch_is_refused(tmp_path: Path) -> None:
    experiment = Experiment(tmp_path, _network(), task="classif")
    with pytest.raises(TypeError, match="remove `initial_epoch` \\(pass `epochs` as the total number of epochs\\)"):
        _train_with("train_data", experiment, 2, initial_epoch=2)


def test_without_validation_the_default_monitor_falls_back_to_the_training_metric(tmp_path: Path) -> None:
    experiment = Experiment(tmp_path, _network(), task="classif", optimizer=FAST_SGD)
    x, y = _data()
    with pytest.warns(UserWarning, match="No validation data: the best epoch is chosen by 'acc' instead of 'val_acc'"):
        experiment.train_data(x, y, epochs=3, batch_size=16, verbose=False, disable_tensorboard=True)
    accuracies = [float(row["acc"]) for row in _rows(tmp_path / "log.tsv")]
    assert _epoch(experiment.load_checkpoint("best")) == accuracies.index(max(accuracies)) + 1
    assert experiment.get_best_epoch_stats()["epoch"].tolist() == [accuracies.index(max(accuracies)) + 1]

    # An explicit val_ monitor is not second-guessed: it fails with the keys there are.
    explicit = Experiment(tmp_path / "explicit", _network(), task="classif", monitor_metric="val_acc")
    with pytest.raises(ValueError, match=r"'val_acc', which is not in the logs. .*Pass validation data to fit"):
        explicit.train_data(x, y, epochs=1, batch_size=16, verbose=False, disable_tensorboard=True)


# -- 8. logging=False ----------------------------------------------------------------------------------------
def test_logging_false_writes_nothing(tmp_path: Path) -> None:
    directory = tmp_path / "run"
    experiment = Experiment(directory, _network(), task="classif", optimizer=FAST_SGD, logging=False)
    history = _train_with("train_data", experiment, 2)
    assert [logs["epoch"] for logs in history] == [1, 2]
    x, y = _data(24, seed=11)
    weights = experiment.network.state_dict()
    logs = experiment.test_data(x, y, batch_size=16, verbose=False)  # the weights in memory: no checkpoint
    assert logs["test_loss"] == pytest.approx(_reference_evaluation(weights, x, y)["test_loss"], rel=1e-9)
    with torch.no_grad():
        expected = _network_with(weights)(x).numpy()
    _assert_same_outputs(experiment.infer_data(x, verbose=False), expected)
    assert not directory.exists()
    assert list(tmp_path.iterdir()) == []


def test_run_json_records_the_commit_of_the_scripts_repository(tmp_path: Path) -> None:
    """The commit comes from the training script's repository, wherever the process was started."""
    import subprocess
    import sys

    repository = tmp_path / "project"
    repository.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=repository, check=True)
    script = repository / "train.py"
    script.write_text(
        "import torch, sys\n"
        "from trainwell import Experiment\n"
        "x, y = torch.randn(16, 4), torch.randint(0, 2, (16,))\n"
        "Experiment(sys.argv[1], torch.nn.Linear(4, 2), task='classif').train_data(\n"
        "    x, y, epochs=1, verbose=False, disable_tensorboard=True)\n"
    )
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    subprocess.run([*git, "add", "train.py"], cwd=repository, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "script"], cwd=repository, check=True)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repository, capture_output=True, text=True).stdout
    outside = tmp_path / "elsewhere"
    outside.mkdir()  # not a repository: the working directory must not decide
    run = tmp_path / "run"
    subprocess.run([sys.executable, str(script), str(run)], cwd=outside, check=True, capture_output=True)
    record = json.loads((run / "run.json").read_text())
    assert record["trainings"][0]["git_commit"] == commit.strip()


def test_training_testing_and_inference_never_load_pandas(tmp_path: Path) -> None:
    """The experiment reads its own log.tsv with the csv module: pandas (and the pyarrow it brings) is loaded
    only when the user asks for a DataFrame."""
    import sys

    script = (
        "import sys, torch\n"
        "from trainwell import Experiment\n"
        "x, y = torch.randn(32, 4), torch.randint(0, 2, (32,))\n"
        "experiment = Experiment(sys.argv[1], torch.nn.Linear(4, 2), task='classif')\n"
        "experiment.train_data(x, y, validation_data=(x, y), epochs=2, verbose=False, disable_tensorboard=True)\n"
        "experiment.train_data(x, y, validation_data=(x, y), epochs=3, verbose=False, disable_tensorboard=True)\n"
        "experiment.test_data(x, y, verbose=False)\n"
        "experiment.infer_data(x, verbose=False)\n"
        "print(sorted(name for name in ('pandas', 'pyarrow') if name in sys.modules))\n"
    )
    run = tmp_path / "run"
    result = subprocess.run([sys.executable, "-c", script, str(run)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["[]"]
    # The test log still starts with the tested epoch's row, read the same way.
    with open(run / "test_log.tsv", newline="") as handle:
        (row,) = csv.DictReader(handle, delimiter="\t")
    with open(run / "log.tsv", newline="") as handle:
        epochs = {entry["epoch"]: entry for entry in csv.DictReader(handle, delimiter="\t")}
    assert {key: row[key] for key in epochs[row["epoch"]]} == epochs[row["epoch"]]
    assert {(run / "plots" / f"{name}.png").is_file() for name in ("loss", "acc", "lr")} == {True}
