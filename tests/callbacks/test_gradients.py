import csv
import math
import sys

import numpy as np
import pytest
import torch
from torch import nn

from tests.callbacks.test_tensorboard import read_scalars
from trainwell import Callback, Model
from trainwell.callbacks.gradients import GradientTracker, TensorBoardGradientTracker
from trainwell.callbacks.gradients_norms import (
    CSVGradientNormLogger,
    MemoryGradientNormLogger,
    TensorBoardGradientNormLogger,
)


class CaptureGradients(Callback):
    """Copies every gradient the optimizer is about to apply, with the epoch it belongs to."""

    def __init__(self):
        self.steps = []  # (epoch, {name: gradient})

    def on_train_begin(self, logs):
        self.model._steps.before_optimizer_step.append(self.capture)

    def capture(self):
        gradients = {name: p.grad.clone() for name, p in self.model.network.named_parameters() if p.grad is not None}
        self.steps.append((self.model.state.epoch, gradients))


class CollectStatistics(GradientTracker):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.epochs = {}

    def _on_gradient_statistics(self, epoch, statistics):
        self.epochs[epoch] = statistics


def _network():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))


def _data(n):
    torch.manual_seed(1)
    return torch.randn(n, 3), torch.randint(0, 2, (n,))


def _fit(callbacks, n=4, batch_size=4, epochs=1, batches_per_step=1, network=None):
    model = Model(network or _network(), "sgd", "cross_entropy")
    x, y = _data(n)
    model.fit(
        x,
        y,
        batch_size=batch_size,
        epochs=epochs,
        batches_per_step=batches_per_step,
        verbose=False,
        callbacks=callbacks,
    )
    return model


def _expected_statistics(gradients):
    """The statistics of one layer over a list of per-step gradients, computed directly."""
    means = torch.stack([g.abs().mean() for g in gradients])
    every = torch.cat([g.flatten() for g in gradients])
    return {
        "mean": means.mean().item(),
        "std": means.std().item() if len(gradients) > 1 else 0.0,
        "min": every.min().item(),
        "max": every.max().item(),
        "abs_min": every.abs().min().item(),
        "abs_max": every.abs().max().item(),
        "norm": torch.stack([g.norm() for g in gradients]).mean().item(),
    }


def _assert_statistics(actual, gradients):
    expected = _expected_statistics(gradients)
    assert actual == pytest.approx(expected, rel=1e-5, abs=1e-7)


@pytest.mark.parametrize("keep_bias", [False, True])
def test_statistics_of_a_one_batch_step_equal_the_gradients(keep_bias):
    capture, tracker = CaptureGradients(), CollectStatistics(keep_bias=keep_bias)
    hooks_at_end = []

    class AfterTracker(Callback):
        def on_train_end(self, logs):
            hooks_at_end.extend(self.model._steps.before_optimizer_step)

    _fit([capture, tracker, AfterTracker()])
    [(epoch, gradients)] = capture.steps
    assert epoch == 1
    names = ["0.weight", "0.bias", "2.weight", "2.bias"] if keep_bias else ["0.weight", "2.weight"]
    assert list(tracker.epochs) == [1] and list(tracker.epochs[1]) == names
    for name in names:
        _assert_statistics(tracker.epochs[1][name], [gradients[name]])
        assert tracker.epochs[1][name]["std"] == 0.0
    assert tracker.last_statistics == tracker.epochs[1]
    assert hooks_at_end == [capture.capture]  # the tracker removed its own hook at on_train_end


def test_statistics_accumulate_over_the_optimizer_steps_of_each_epoch():
    # 10 samples in batches of 2 with batches_per_step=2: steps after batches 2, 4 and (partial) 5.
    capture, tracker = CaptureGradients(), CollectStatistics()
    _fit([capture, tracker], n=10, batch_size=2, epochs=2, batches_per_step=2)
    assert [epoch for epoch, _ in capture.steps] == [1, 1, 1, 2, 2, 2]
    for epoch in (1, 2):
        steps = [gradients for step_epoch, gradients in capture.steps if step_epoch == epoch]
        for name in ("0.weight", "2.weight"):
            _assert_statistics(tracker.epochs[epoch][name], [gradients[name] for gradients in steps])
        assert tracker.epochs[epoch]["0.weight"]["std"] > 0


class SometimesBranch(nn.Module):
    """A second layer that only takes part in the forward pass when `use_extra` is set."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.main = nn.Linear(3, 2)
        self.extra = nn.Linear(3, 2)
        self.unused = nn.Linear(3, 2)
        self.use_extra = False

    def forward(self, x):
        return self.main(x) + self.extra(x) if self.use_extra else self.main(x)


def test_a_layer_is_counted_only_at_the_steps_where_it_has_a_gradient():
    network = SometimesBranch()

    class Toggle(Callback):
        def on_train_batch_begin(self, batch_number, logs):
            network.use_extra = batch_number == 2

    capture, tracker = CaptureGradients(), CollectStatistics()
    _fit([Toggle(), capture, tracker], n=9, batch_size=3, network=network)
    assert sorted(tracker.epochs[1]) == ["extra.weight", "main.weight"]  # never a gradient: left out
    for name in ("extra.weight", "main.weight"):
        seen = [gradients[name] for _, gradients in capture.steps if name in gradients]
        assert len(seen) == (1 if name == "extra.weight" else 3)
        _assert_statistics(tracker.epochs[1][name], seen)


def test_tensorboard_gradient_tracker_writes_poutyne_charts(tmp_path):
    capture = CaptureGradients()
    _fit([capture, TensorBoardGradientTracker(tmp_path)], n=8, batch_size=4, epochs=2)
    for epoch in (1, 2):
        steps = [gradients["2.weight"] for step_epoch, gradients in capture.steps if step_epoch == epoch]
        expected = _expected_statistics(steps)
        series = {
            "gradient_distributions_2.weight_mean": expected["mean"],
            "gradient_distributions_2.weight_mean_std_dev_up": expected["mean"] + expected["std"],
            "gradient_distributions_2.weight_mean_std_dev_down": expected["mean"] - expected["std"],
            "other_gradient_stats_2.weight_min": expected["min"],
            "other_gradient_stats_2.weight_max": expected["max"],
        }
        for directory, value in series.items():
            [points] = read_scalars(tmp_path / directory).values()
            assert points[epoch - 1][0] == epoch
            assert points[epoch - 1][1] == pytest.approx(value, rel=1e-5)
        norms = read_scalars(tmp_path)["gradient_norm_mean/2.weight"]
        assert norms[epoch - 1] == (epoch, pytest.approx(expected["norm"], rel=1e-5))
    assert not any("bias" in path.name for path in tmp_path.iterdir())


@pytest.mark.parametrize("norm_type", [2.0, math.inf])
def test_norm_logger_records_one_total_norm_per_optimizer_step(norm_type):
    capture, norms = CaptureGradients(), MemoryGradientNormLogger(norm_type=norm_type)
    _fit([capture, norms], n=10, batch_size=2, epochs=2, batches_per_step=2)
    assert [(r["epoch"], r["batch"], r["step"]) for r in norms.history] == [
        (1, 2, 1),
        (1, 4, 2),
        (1, 5, 3),
        (2, 2, 4),
        (2, 4, 5),
        (2, 5, 6),
    ]
    for record, (_, gradients) in zip(norms.history, capture.steps, strict=True):
        total = torch.nn.utils.get_total_norm(list(gradients.values()), norm_type=norm_type).item()
        assert record["total_norm"] == pytest.approx(total, rel=1e-6)
        by_hand = (
            max(g.abs().max() for g in gradients.values())
            if norm_type == math.inf
            else (sum((g**2).sum() for g in gradients.values()).sqrt())
        )
        assert record["total_norm"] == pytest.approx(by_hand.item(), rel=1e-5)
        assert record["layer_norms"] == pytest.approx(
            {name: torch.linalg.vector_norm(g, norm_type).item() for name, g in gradients.items()}, rel=1e-6
        )
    assert norms.total_norms == [record["total_norm"] for record in norms.history]


def test_norm_logger_without_biases():
    capture, norms = CaptureGradients(), MemoryGradientNormLogger(keep_bias=False)
    _fit([capture, norms], n=8, batch_size=4)
    assert all(sorted(record["layer_norms"]) == ["0.weight", "2.weight"] for record in norms.history)
    for record, (_, gradients) in zip(norms.history, capture.steps, strict=True):
        weights = [gradients["0.weight"], gradients["2.weight"]]
        assert record["total_norm"] == pytest.approx(torch.nn.utils.get_total_norm(weights).item(), rel=1e-6)


def test_flush_every_reads_the_norms_during_the_epoch():
    norms = MemoryGradientNormLogger(flush_every=2)
    seen = []

    class Watch(Callback):
        def on_train_batch_end(self, batch_number, logs):
            seen.append(len(norms.history))

    _fit([norms, Watch()], n=10, batch_size=2)
    assert seen == [0, 2, 2, 4, 4] and len(norms.history) == 5


def _csv_records(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_csv_norm_logger_matches_the_memory_logger(tmp_path):
    path = tmp_path / "norms.csv"
    memory = MemoryGradientNormLogger()
    _fit([memory, CSVGradientNormLogger(path)], n=10, batch_size=2, epochs=2, batches_per_step=2)
    rows = _csv_records(path)
    assert list(rows[0]) == ["epoch", "batch", "step", "total_norm", "0.weight", "0.bias", "2.weight", "2.bias"]
    assert len(rows) == len(memory.history) == 6
    for row, record in zip(rows, memory.history):
        assert (int(row["epoch"]), int(row["batch"]), int(row["step"])) == (
            record["epoch"],
            record["batch"],
            record["step"],
        )
        assert float(row["total_norm"]) == record["total_norm"]
        assert {name: float(row[name]) for name in record["layer_norms"]} == record["layer_norms"]


def test_csv_norm_logger_resume_drops_rows_after_the_checkpoint(tmp_path):
    path = tmp_path / "norms.csv"
    logger = CSVGradientNormLogger(path)
    states = {}

    class Checkpoint(Callback):
        def on_epoch_end(self, epoch_number, logs):
            states[epoch_number] = logger.state_dict()

    model = Model(_network(), "sgd", "cross_entropy")
    x, y = _data(8)
    model.fit(x, y, batch_size=4, epochs=3, verbose=False, callbacks=[logger, Checkpoint()])
    assert [row["epoch"] for row in _csv_records(path)] == ["1", "1", "2", "2", "3", "3"]
    resumed = CSVGradientNormLogger(path)
    resumed.load_state_dict(states[2])
    model.fit(x, y, batch_size=4, epochs=3, initial_epoch=3, verbose=False, callbacks=[resumed])
    rows = _csv_records(path)
    assert [row["epoch"] for row in rows] == ["1", "1", "2", "2", "3", "3"]
    assert [row["step"] for row in rows] == ["1", "2", "3", "4", "7", "8"]  # the model kept counting steps


def test_tensorboard_norm_logger_writes_every_step(tmp_path):
    memory = MemoryGradientNormLogger()
    _fit([memory, TensorBoardGradientNormLogger(tmp_path)], n=10, batch_size=2, batches_per_step=2)
    scalars = read_scalars(tmp_path)
    assert scalars["gradient_norm/total"] == [
        (record["step"], float(np.float32(record["total_norm"]))) for record in memory.history
    ]
    assert scalars["gradient_norm/0.bias"] == [
        (record["step"], float(np.float32(record["layer_norms"]["0.bias"]))) for record in memory.history
    ]


def test_errors(tmp_path, monkeypatch):
    with pytest.raises(TypeError, match=r"`keep_bias` must be True or False. Received: keep_bias='no'"):
        GradientTracker(keep_bias="no")
    with pytest.raises(ValueError, match=r"`norm_type` must be a positive number .* Received: norm_type=0"):
        MemoryGradientNormLogger(norm_type=0)
    with pytest.raises(ValueError, match=r"`flush_every` must be a positive int or None. Received: flush_every=0"):
        MemoryGradientNormLogger(flush_every=0)
    with pytest.raises(ValueError, match=r"`separator` must be a single character"):
        CSVGradientNormLogger(tmp_path / "a.csv", separator="")
    with pytest.raises(TypeError, match=r"`writer` must be a .*SummaryWriter"):
        TensorBoardGradientNormLogger(object())
    monkeypatch.setitem(sys.modules, "tensorboard", None)
    with pytest.raises(ImportError, match=r"TensorBoardGradientTracker needs the `tensorboard` package"):
        TensorBoardGradientTracker(tmp_path)


@pytest.mark.parametrize("make", [CollectStatistics, MemoryGradientNormLogger])
def test_gradients_are_read_without_a_host_sync_per_step(make):
    from tests.sync_guard import SyncGuard

    def count_syncs(num_samples):
        callback = make()
        with SyncGuard(strict=False) as guard:
            _fit([callback], n=num_samples, batch_size=2)
        return len(guard.calls), callback

    (few, short), (many, long) = count_syncs(4), count_syncs(40)
    assert few == many  # host reads at epoch end only, whatever the number of steps
    if isinstance(long, MemoryGradientNormLogger):
        assert len(short.history) == 2 and len(long.history) == 20
