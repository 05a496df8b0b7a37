from __future__ import annotations

import copy
import subprocess
import sys

import numpy as np
import pytest
import torch
import torchmetrics

from tests.metrics.helpers import N, batches, update_all
from tests.sync_guard import SyncGuard
from trainwell.metrics import (
    BatchMetricAdapter,
    EpochMetricAdapter,
    Metric,
    TorchMetricsBatchMetric,
    TorchMetricsEpochMetric,
)


def classification_data(seed: int = 12) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(N, 4, generator=generator), torch.randint(0, 4, (N,), generator=generator)


def test_import_stays_light() -> None:
    code = (
        "import trainwell, trainwell.metrics, sys; "
        "heavy = [m for m in ('torchmetrics', 'sklearn', 'scipy', 'pandas') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_epoch_adapter_matches_torchmetrics() -> None:
    y_pred, y_true = classification_data()
    wrapped = TorchMetricsEpochMetric(torchmetrics.F1Score(task="multiclass", num_classes=4))
    assert wrapped.names == ("multiclass_f1_score",) and wrapped.higher_is_better is True
    for pred, true in batches(y_pred, y_true):
        wrapped.update(pred, true)
    direct = torchmetrics.functional.f1_score(y_pred, y_true, task="multiclass", num_classes=4)
    assert wrapped.compute().item() == pytest.approx(direct.item())


def test_collection_is_flattened_into_names() -> None:
    y_pred, y_true = classification_data()
    collection = torchmetrics.MetricCollection(
        [
            torchmetrics.Accuracy(task="multiclass", num_classes=4),
            torchmetrics.AUROC(task="multiclass", num_classes=4),
        ]
    )
    wrapped = TorchMetricsEpochMetric(collection)
    assert wrapped.names == ("MulticlassAccuracy", "MulticlassAUROC")
    for pred, true in batches(y_pred, y_true):
        wrapped.update(pred, true)
    values = wrapped.compute()
    expected = [
        torchmetrics.functional.accuracy(y_pred, y_true, task="multiclass", num_classes=4).item(),
        torchmetrics.functional.auroc(y_pred, y_true, task="multiclass", num_classes=4).item(),
    ]
    assert values.tolist() == pytest.approx(expected)


@pytest.mark.parametrize("kind", ["sum_states", "list_states", "collection"])
def test_state_dict_round_trip_mid_epoch(kind: str) -> None:
    def make():
        if kind == "sum_states":
            return TorchMetricsEpochMetric(torchmetrics.Accuracy(task="multiclass", num_classes=4))
        if kind == "list_states":  # AUROC without thresholds keeps every prediction in list states
            return TorchMetricsEpochMetric(torchmetrics.AUROC(task="multiclass", num_classes=4))
        return TorchMetricsEpochMetric(
            torchmetrics.MetricCollection(
                [
                    torchmetrics.Precision(task="multiclass", num_classes=4),
                    torchmetrics.Recall(task="multiclass", num_classes=4),
                ]
            )
        )

    y_pred, y_true = classification_data(seed=13)
    reference = make()
    parts = list(batches(y_pred, y_true))
    for pred, true in parts:
        reference.update(pred, true)
    first = make()
    for pred, true in parts[:2]:
        first.update(pred, true)
    first.compute()  # torchmetrics caches this value: loading must invalidate the cache
    resumed = make()
    resumed.load_state_dict(first.state_dict())
    for pred, true in parts[2:]:
        resumed.update(pred, true)
    assert resumed.compute().tolist() == pytest.approx(reference.compute().tolist())
    resumed.reset()
    for pred, true in parts:
        resumed.update(pred, true)
    assert resumed.compute().tolist() == pytest.approx(reference.compute().tolist())


def test_update_of_a_sum_state_metric_does_not_sync() -> None:
    y_pred, y_true = classification_data()
    # the adapter itself adds no sync to a metric whose update has none
    wrapped = TorchMetricsEpochMetric(torchmetrics.MeanSquaredError())
    update_all(wrapped, y_pred[:, 0], y_true.float())
    assert wrapped.compute().item() == pytest.approx(((y_pred[:, 0] - y_true) ** 2).mean().item(), rel=1e-5)


def test_batch_adapter_gives_the_batch_value_and_the_phase_value_from_the_state() -> None:
    y_pred, y_true = classification_data()
    metric = TorchMetricsBatchMetric(torchmetrics.Accuracy(task="multiclass", num_classes=4))
    assert metric.names == ("multiclass_accuracy",) and metric.state.names == metric.names
    for pred, true in batches(y_pred, y_true):
        expected = (pred.argmax(1) == true).float().mean().item()
        assert metric(pred, true).item() == pytest.approx(expected)
    # the epoch value is the metric's own compute() on every batch, not a mean of batch values
    assert metric.state.compute().item() == pytest.approx((y_pred.argmax(1) == y_true).float().mean().item())
    metric.state.reset()
    assert metric.fn._update_count == 0
    assert metric.to("cpu") is metric


class Constant(Metric):
    """A user's metric whose compute() returns whatever it was given."""

    def __init__(self, value):
        super().__init__()
        self.value = value
        self.updates = 0

    def update(self, y_pred, y_true):
        self.updates += 1

    def compute(self):
        return self.value

    def reset(self):
        self.updates = 0


@pytest.mark.parametrize(
    "value", [{"a": 1, "b": 2}, [1, 2], (1.0, 2.0), torch.tensor([1, 2]), np.array([1, 2]), [torch.tensor(1.0), 2]]
)
def test_epoch_adapter_reads_every_form_of_value(value) -> None:
    wrapped = EpochMetricAdapter(Constant(value), names=("a", "b"))
    assert wrapped.compute().tolist() == [1.0, 2.0]


def test_epoch_adapter_names_and_delegation() -> None:
    class Named(Constant):
        __name__ = ("x", "y")

    assert EpochMetricAdapter(Constant(0)).names == ("constant",)
    assert EpochMetricAdapter(Named([1, 2])).names == ("x", "y")
    wrapped = EpochMetricAdapter(Constant(3))
    wrapped.update(None, None)
    assert wrapped.updates == 1 and wrapped.value == 3  # attributes of the wrapped metric
    assert copy.copy(wrapped).metric is wrapped.metric
    with pytest.raises(AttributeError):
        wrapped.missing  # noqa: B018


class Summing(Metric):
    """A trainwell Metric with a buffer created at the first batch."""

    def __init__(self):
        super().__init__()
        self.register_buffer("total", None)

    def forward(self, y_pred, y_true):
        self.update(y_pred, y_true)
        return y_pred.sum()

    def update(self, y_pred, y_true):
        self.total = y_pred.sum(0) if self.total is None else self.total + y_pred.sum(0)

    def compute(self):
        return self.total.tolist()

    def compute_on_device(self):
        return self.total

    def reset(self):
        self.total = None


def test_epoch_adapter_of_a_metric_saves_merges_and_restores_its_buffers() -> None:
    first, second = EpochMetricAdapter(Summing(), names=("a", "b")), EpochMetricAdapter(Summing(), names=("a", "b"))
    with SyncGuard():  # neither update nor the device-side compute reads the device
        first.update(torch.ones(3, 2), None)
        first.compute()
    second.update(torch.full((1, 2), 2.0), None)
    merged = EpochMetricAdapter(Summing(), names=("a", "b"))
    merged.load_state_dict(first.merge_states([first.state_dict(), second.state_dict()]))
    assert merged.compute().tolist() == [5.0, 5.0]
    assert merged.syncs_itself is False and first.syncs_itself is False


def test_batch_adapter_of_a_forward_only_metric() -> None:
    class BatchOnly(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.seen = 0

        def forward(self, y_pred, y_true):
            self.seen += len(y_pred)
            return y_pred.mean()

        def compute(self):
            return float(self.seen)

        def reset(self):
            self.seen = 0

    metric = BatchMetricAdapter(BatchOnly())
    assert metric.names == ("batch_only",)
    assert metric(torch.ones(3), None).item() == 1.0
    assert metric.state.compute().item() == 3.0
    with pytest.raises(NotImplementedError, match=r"updated by its forward"):
        metric.state.update(None, None)


def test_errors() -> None:
    with pytest.raises(TypeError, match=r"`metric` must have update\(\), compute\(\) and reset\(\) methods"):
        TorchMetricsEpochMetric(len)
    with pytest.raises(TypeError, match=r"`metric` must be callable and have compute\(\) and reset\(\)"):
        BatchMetricAdapter(len)
    with pytest.raises(ValueError, match=r"returned 1 value\(s\) for 2 name\(s\)"):
        EpochMetricAdapter(Constant(1), names=("a", "b")).compute()
    wrapped = TorchMetricsEpochMetric(
        torchmetrics.MetricCollection([torchmetrics.MeanSquaredError(), torchmetrics.MeanAbsoluteError()]),
        names=["only_one"],
    )
    wrapped.update(torch.zeros(3), torch.ones(3))
    with pytest.raises(RuntimeError, match=r"returned 2 values .* for 1 names"):
        wrapped.compute()
