from __future__ import annotations

import subprocess
import sys

import pytest
import torch
import torchmetrics

from tests.metrics.helpers import N, batches, update_all
from trainwell.metrics import TorchMetricsBatchMetric, TorchMetricsEpochMetric


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


def test_batch_adapter_gives_the_batch_value_and_resets() -> None:
    y_pred, y_true = classification_data()
    metric = TorchMetricsBatchMetric(torchmetrics.Accuracy(task="multiclass", num_classes=4))
    assert metric.names == ("multiclass_accuracy",)
    for pred, true in batches(y_pred, y_true):
        expected = (pred.argmax(1) == true).float().mean().item()
        assert metric(pred, true).item() == pytest.approx(expected)
        assert metric.fn._update_count == 0
    assert metric.to("cpu") is metric


def test_errors() -> None:
    with pytest.raises(TypeError, match=r"`metric` must have update\(\), compute\(\) and reset\(\) methods"):
        TorchMetricsEpochMetric(len)
    wrapped = TorchMetricsEpochMetric(
        torchmetrics.MetricCollection([torchmetrics.MeanSquaredError(), torchmetrics.MeanAbsoluteError()]),
        names=["only_one"],
    )
    wrapped.update(torch.zeros(3), torch.ones(3))
    with pytest.raises(RuntimeError, match=r"returned 2 values .* for 1 names"):
        wrapped.compute()
