from __future__ import annotations

import pytest
import torch

from tests.metrics.helpers import N, batches, update_all
from trainwell.metrics import Accuracy, AveragedEpochMetric, BatchMetric
from trainwell.metrics.averaged import batch_size


def test_batch_values_are_averaged_weighted_by_batch_size_without_sync() -> None:
    metric = AveragedEpochMetric(BatchMetric(lambda y_pred, y_true: (y_pred - y_true).abs().mean(), ("mae",)))
    y_pred, y_true = torch.randn(N), torch.randn(N)
    update_all(metric, y_pred, y_true)
    assert metric.names == ("mae",)
    assert metric.compute().item() == pytest.approx((y_pred - y_true).abs().mean().item(), rel=1e-5)


def test_counts_make_the_average_exact() -> None:
    metric = AveragedEpochMetric(Accuracy())
    y_pred, y_true = torch.randn(N, 3), torch.randint(0, 3, (N,))
    y_true[:50] = -100  # the first batch counts fewer targets
    update_all(metric, y_pred, y_true)
    kept = y_true != -100
    expected = 100.0 * (y_pred.argmax(1)[kept] == y_true[kept]).float().mean().item()
    assert metric.compute().item() == pytest.approx(expected, rel=1e-5)


def test_host_values_several_names_state_round_trip_and_reset() -> None:
    metric = AveragedEpochMetric(BatchMetric(lambda y_pred, y_true: {"a": 1, "b": len(y_pred)}, ("a", "b")))
    parts = list(batches(torch.zeros(N), torch.zeros(N)))
    assert metric.compute().tolist() == [0.0, 0.0]
    metric.update(*parts[0])
    resumed = AveragedEpochMetric(BatchMetric(lambda y_pred, y_true: {"a": 1, "b": len(y_pred)}, ("a", "b")))
    resumed.load_state_dict(metric.state_dict())
    for part in parts[1:]:
        resumed.update(*part)
    sizes = [len(part[0]) for part in parts]
    assert resumed.compute().tolist() == pytest.approx([1.0, sum(s * s for s in sizes) / N])
    resumed.reset()
    assert resumed.compute().tolist() == [0.0, 0.0]


def test_batch_size() -> None:
    assert batch_size(torch.zeros(5, 2), None) == 5
    assert batch_size(None, [torch.zeros(3)]) == 3
    assert batch_size({"logits": torch.zeros(4, 2)}, None) == 4
    assert batch_size(torch.tensor(1.0), None) == 1
