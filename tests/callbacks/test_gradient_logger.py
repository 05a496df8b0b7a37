"""Poutyne's gradient loggers and WeightsGradientsStatsTracker, against gradients copied during real training."""

import csv
import math

import pytest
import torch
from torch import nn
from torch.utils.tensorboard import SummaryWriter

from tests.callbacks.test_gradients import CaptureGradients
from tests.callbacks.test_tensorboard import read_scalars
from trainwell import Model
from trainwell.callbacks.gradient_logger import (
    AtomicCSVGradientLogger,
    CSVGradientLogger,
    GradientLoggerBase,
    MemoryGradientLogger,
    TensorBoardGradientLogger,
)
from trainwell.callbacks.gradients import GradientTracker, WeightsGradientsStatsTracker


def _fit(callbacks, epochs=2, network=None, **kwargs):
    torch.manual_seed(0)
    model = Model(network or nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)), "sgd", "cross_entropy")
    x, y = torch.randn(12, 3), torch.randint(0, 2, (12,))
    model.fit(x, y, batch_size=4, epochs=epochs, verbose=False, callbacks=callbacks, **kwargs)
    return model


def _expected(gradient, norms=(2.0,)):
    absolute = gradient.abs()
    stats = {
        "mean": absolute.mean().item(),
        "var": absolute.var().item(),
        "min": gradient.min().item(),
        "abs_min": absolute.min().item(),
        "max": gradient.max().item(),
        "abs_max": absolute.max().item(),
    }
    return {**stats, **{f"l{p}": torch.linalg.vector_norm(gradient, p).item() for p in norms}}


def test_memory_logger_records_poutynes_statistics_of_every_step():
    capture = CaptureGradients()
    logger = MemoryGradientLogger(norm_type=[1, 2.0, math.inf])
    _fit([capture, logger])
    assert logger.layers == ["0.weight", "2.weight"]  # biases left out by default
    assert logger.stats_names == ["mean", "var", "min", "abs_min", "max", "abs_max", "l1", "l2.0", "linf"]
    steps = [(row["epoch"], row["batch"]) for row in logger.history["0.weight"]]
    assert steps == [(epoch, batch) for epoch in (1, 2) for batch in (1, 2, 3)]
    for layer, rows in logger.history.items():
        for row, (_, gradients) in zip(rows, capture.steps):
            expected = _expected(gradients[layer], norms=(1, 2.0, math.inf))
            assert {key: row[key] for key in expected} == pytest.approx(expected, rel=1e-5)


def test_statistics_reach_the_host_once_per_epoch_and_flush_every_sooner():
    calls = []

    class Counting(GradientLoggerBase):
        def log_stats(self, epoch_number, batch_number, logs, layer_stats):
            calls.append((epoch_number, batch_number, sorted(layer_stats)))

    logger = Counting(keep_bias=True)
    original = logger.flush
    flushes = []
    logger.flush = lambda: flushes.append(len(logger._pending)) or original()
    _fit([logger])
    assert [count for count in flushes if count] == [3, 3]  # three steps read at each epoch's end
    assert calls[0] == (1, 1, ["0.bias", "0.weight", "2.bias", "2.weight"])
    sooner = Counting(flush_every=2)
    _fit([sooner], epochs=1)
    with pytest.raises(NotImplementedError, match="must implement log_stats"):
        GradientLoggerBase().log_stats(1, 1, {}, {})


@pytest.mark.parametrize("logger_class", [CSVGradientLogger, AtomicCSVGradientLogger])
def test_csv_loggers_write_one_file_per_layer(tmp_path, logger_class):
    memory = MemoryGradientLogger()
    pattern = str(tmp_path / "grads_{}.csv")
    _fit([memory, logger_class(pattern)])
    _fit([logger_class(pattern, append=True)], epochs=1)
    for layer, rows in memory.history.items():
        with open(pattern.format(layer), newline="") as handle:
            written = list(csv.DictReader(handle))
        assert list(written[0]) == ["epoch", "batch", "mean", "var", "min", "abs_min", "max", "abs_max", "l2.0"]
        assert len(written) == 6 + 3  # the second run appended its 3 steps
        for row, expected in zip(written, rows):
            assert {key: float(value) for key, value in row.items()} == pytest.approx(expected)
    assert not [path for path in tmp_path.iterdir() if path.suffix != ".csv"]  # no temporary file left


def test_tensorboard_logger_writes_one_series_per_statistic(tmp_path):
    memory = MemoryGradientLogger()
    writer = SummaryWriter(tmp_path)
    _fit([memory, TensorBoardGradientLogger(writer, initial_step=10)], epochs=1)
    writer.close()  # the user's writer (the logger leaves it open, as Poutyne's): its events written out
    # add_scalars puts each series of chart C in the subdirectory C_<series>, under tag C.
    scalars = read_scalars(tmp_path / "gradient_stats_2.weight_abs_max")
    steps = [step for step, _ in scalars["gradient_stats/2.weight"]]
    values = [value for _, value in scalars["gradient_stats/2.weight"]]
    assert steps == [11, 12, 13]
    assert values == pytest.approx([row["abs_max"] for row in memory.history["2.weight"]])


def test_arguments_are_checked():
    with pytest.raises(ValueError, match=r"`filename` must hold '\{\}' where each layer's name goes"):
        CSVGradientLogger("grads.csv")
    with pytest.raises(ValueError, match=r"`norm_type` must be a positive number .*Received: norm_type=0"):
        MemoryGradientLogger(norm_type=0)
    with pytest.raises(ValueError, match=r"`flush_every` must be a positive int or None"):
        MemoryGradientLogger(flush_every=0)


def test_weights_gradients_stats_tracker_follows_welford():
    class Parameter:
        def __init__(self, grad):
            self.grad = grad

    tracker = WeightsGradientsStatsTracker(number_layers=2)
    batches = [torch.tensor([0.2, -0.4, 0.0]), torch.tensor([1.0, -3.0, 0.5]), torch.tensor([-0.1, 0.1, 0.7])]
    for gradient in batches:
        tracker.batch_statistic_upgrade([("a", Parameter(gradient)), ("b", Parameter(2 * gradient))])
    stats = tracker.get_stats(["a", "b"])
    means = torch.stack([gradient.abs().mean() for gradient in batches])
    std = means.std().item()  # n - 1, across batches
    assert stats["a"]["mean"] == pytest.approx(means.mean().item(), rel=1e-5)
    assert stats["a"]["mean_std_dev_up"] == pytest.approx(means.mean().item() + std, rel=1e-5)
    assert stats["b"]["mean_std_dev_down"] == pytest.approx(2 * (means.mean().item() - std), rel=1e-5)
    assert (stats["a"]["min"], stats["a"]["max"], stats["b"]["abs_min"]) == pytest.approx((-3.0, 1.0, 0.0))
    assert tracker.get_stats(["a", "b"]) == {}  # get_stats starts over
    with pytest.raises(ValueError, match="tracks 2 layers; this batch gave 1"):
        tracker.batch_statistic_upgrade([("a", Parameter(batches[0]))])


def test_gradient_tracker_keeps_trained_parameters_and_biases_on_request():
    class Parameter:
        def __init__(self, requires_grad):
            self.requires_grad = requires_grad

    assert GradientTracker()._keep_layer(Parameter(True), "fc.weight")
    assert not GradientTracker()._keep_layer(Parameter(True), "fc.bias")
    assert GradientTracker(keep_bias=True)._keep_layer(Parameter(True), "fc.bias")
    assert not GradientTracker(keep_bias=True)._keep_layer(Parameter(False), "fc.weight")
