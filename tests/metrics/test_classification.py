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
    acc,
    accuracy,
    bin_acc,
    binary_accuracy,
    topk,
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


@pytest.mark.parametrize("ignore_index", [-100, 2])
def test_reductions_sum_and_none(multiclass, ignore_index: int) -> None:
    y_pred, y_true = multiclass
    counted = y_true != ignore_index
    hits = (y_pred.argmax(1) == y_true) & counted
    top3 = (y_pred.topk(3, dim=1).indices == y_true[:, None]).any(1) & counted
    with SyncGuard():
        per_target = accuracy(y_pred, y_true, ignore_index, reduction="none")
        total = acc(y_pred, y_true, ignore_index=ignore_index, reduction="sum")
        top_per_target = topk(y_pred, y_true, 3, ignore_index=ignore_index, reduction="none")
    assert torch.equal(per_target, hits.float() * 100) and per_target.shape == y_true.shape
    assert total.item() == pytest.approx(100.0 * hits.sum().item())
    assert torch.equal(top_per_target, top3.float() * 100)
    assert topk(y_pred, y_true, 3, ignore_index=ignore_index, reduction="sum").item() == pytest.approx(
        100.0 * top3.sum().item()
    )
    assert torch.equal(Accuracy(ignore_index=ignore_index, reduction="none")(y_pred, y_true), per_target)
    assert torch.equal(TopKAccuracy(3, ignore_index=ignore_index, reduction="none")(y_pred, y_true), top_per_target)


def test_binary_reductions() -> None:
    logits = torch.tensor([2.0, -1.0, 0.5, -3.0])
    y_true = torch.tensor([1.0, 0.0, 0.0, 0.0])
    assert bin_acc(logits, y_true, reduction="none").tolist() == [100.0, 100.0, 0.0, 100.0]
    assert bin_acc(logits, y_true, reduction="sum").item() == 300.0
    assert BinaryAccuracy(reduction="sum")(logits, y_true).item() == 300.0
    assert BinaryAccuracy(threshold=1.0)(logits, y_true).item() == 100.0


def test_only_the_mean_is_counted_exactly_by_the_loop() -> None:
    assert Accuracy().counts is not None and TopKAccuracy(2).counts is not None
    assert Accuracy(reduction="sum").counts is None and TopKAccuracy(2, reduction="none").counts is None
    assert Accuracy(reduction="sum").reduction == "sum"


def test_bad_reduction() -> None:
    for make in (
        lambda: Accuracy(reduction="avg"),
        lambda: BinaryAccuracy(reduction="avg"),
        lambda: TopKAccuracy(2, reduction="avg"),
        lambda: acc(torch.zeros(1, 2), torch.zeros(1), reduction="avg"),
        lambda: bin_acc(torch.zeros(1), torch.zeros(1), reduction="avg"),
    ):
        with pytest.raises(
            ValueError, match=r"`reduction` must be 'mean', 'sum' or 'none'\. Received: reduction='avg'"
        ):
            make()


def test_batch_metrics_move_like_modules() -> None:
    metric = Accuracy()
    assert metric.cpu() is metric and metric.to("cpu") is metric


def test_func_is_the_plain_function_when_only_defaults_are_bound():
    # Poutyne's scripts compare a string metric's `func` with the function (model.batch_metrics[0].func == acc).
    assert Accuracy().func is acc
    custom = Accuracy(ignore_index=3)
    assert custom.func is not acc
    y_pred, y_true = torch.tensor([[0.9, 0.1], [0.1, 0.9], [0.8, 0.2]]), torch.tensor([0, 1, 3])
    torch.testing.assert_close(custom.func(y_pred, y_true), custom(y_pred, y_true))
