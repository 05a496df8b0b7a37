from __future__ import annotations

import pytest
import torch
from sklearn.metrics import accuracy_score, top_k_accuracy_score

from tests.metrics.helpers import N
from tests.sync_guard import SyncGuard
from trainwell.metrics import (
    Accuracy,
    BinaryAccuracy,
    TopKAccuracy,
    accuracy,
    binary_accuracy,
    topk_accuracy,
)


@pytest.fixture
def multiclass() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return torch.randn(N, 7, generator=generator), torch.randint(0, 7, (N,), generator=generator)


def test_accuracy_matches_sklearn(multiclass) -> None:
    y_pred, y_true = multiclass
    with SyncGuard():
        value = accuracy(y_pred, y_true)
    assert value.shape == ()
    assert value.item() == pytest.approx(100 * accuracy_score(y_true, y_pred.argmax(1)), abs=1e-4)


def test_accuracy_ignores_index_without_sync(multiclass) -> None:
    y_pred, y_true = multiclass
    y_true = y_true.clone()
    y_true[::3] = -100
    keep = y_true != -100
    with SyncGuard():
        value = accuracy(y_pred, y_true)
    expected = 100 * accuracy_score(y_true[keep], y_pred[keep].argmax(1))
    assert value.item() == pytest.approx(expected, abs=1e-4)
    # a different ignore_index is honoured too
    y_true[:10] = 3
    assert accuracy(y_pred, y_true, ignore_index=3).item() != pytest.approx(value.item())


def test_accuracy_on_sequences() -> None:
    generator = torch.Generator().manual_seed(1)
    y_pred = torch.randn(8, 5, 12, generator=generator)  # (N, C, T)
    y_true = torch.randint(0, 5, (8, 12), generator=generator)
    y_true[0, :4] = -100
    keep = y_true != -100
    expected = 100 * accuracy_score(y_true[keep], y_pred.argmax(1)[keep])
    with SyncGuard():
        value = accuracy(y_pred, y_true)
    assert value.item() == pytest.approx(expected, abs=1e-4)


def test_accuracy_all_ignored_is_zero_not_nan() -> None:
    assert accuracy(torch.randn(3, 2), torch.full((3,), -100)).item() == 0.0


@pytest.mark.parametrize("dtype", [torch.long, torch.float32, torch.bool])
def test_binary_accuracy_matches_sklearn(dtype: torch.dtype) -> None:
    generator = torch.Generator().manual_seed(2)
    logits = torch.randn(N, 1, generator=generator)
    y_true = torch.randint(0, 2, (N,), generator=generator)
    with SyncGuard():
        value = binary_accuracy(logits, y_true.to(dtype))
    assert value.item() == pytest.approx(100 * accuracy_score(y_true, (logits[:, 0] > 0).long()), abs=1e-4)
    probabilities = logits.sigmoid()
    value = binary_accuracy(probabilities, y_true.to(dtype), threshold=0.5)
    assert value.item() == pytest.approx(100 * accuracy_score(y_true, (logits[:, 0] > 0).long()), abs=1e-4)


@pytest.mark.parametrize("k", [1, 2, 5])
def test_topk_matches_sklearn(multiclass, k: int) -> None:
    y_pred, y_true = multiclass
    with SyncGuard():
        value = topk_accuracy(y_pred, y_true, k=k)
    expected = 100 * top_k_accuracy_score(y_true, y_pred, k=k, labels=range(7))
    assert value.item() == pytest.approx(expected, abs=1e-4)


def test_topk_ignores_index(multiclass) -> None:
    y_pred, y_true = multiclass
    y_true = y_true.clone()
    y_true[1::2] = -100
    keep = y_true != -100
    with SyncGuard():
        value = topk_accuracy(y_pred, y_true, k=3)
    expected = 100 * top_k_accuracy_score(y_true[keep], y_pred[keep], k=3, labels=range(7))
    assert value.item() == pytest.approx(expected, abs=1e-4)


def test_batch_metric_classes_carry_names(multiclass) -> None:
    y_pred, y_true = multiclass
    assert Accuracy().names == ("acc",)
    assert BinaryAccuracy().names == ("bin_acc",)
    assert TopKAccuracy(10).names == ("top10",)
    assert Accuracy().higher_is_better is True
    assert TopKAccuracy(1)(y_pred, y_true).item() == pytest.approx(accuracy(y_pred, y_true).item())


def test_topk_rejects_bad_k() -> None:
    with pytest.raises(ValueError, match=r"`k` must be a positive int\. Received: k=0 \(type int\)"):
        TopKAccuracy(0)
