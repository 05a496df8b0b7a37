from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
import torchmetrics
from sklearn.metrics import r2_score
from torch import nn

from trainwell.metrics import (
    F1,
    MSE,
    R2,
    Accuracy,
    BatchMetric,
    FBeta,
    SKLearnMetrics,
    TorchMetricsBatchMetric,
    TorchMetricsEpochMetric,
    check_unique_names,
    resolve_batch_metrics,
    resolve_epoch_metrics,
)


def names(metrics) -> list[str]:
    return [name for metric in metrics for name in metric.names]


def test_none_and_empty() -> None:
    assert resolve_batch_metrics(None) == []
    assert resolve_epoch_metrics([]) == []


def test_batch_names_are_case_and_underscore_insensitive() -> None:
    specs = ["Accuracy", "bin_acc", "BinaryAccuracy", "top_5", "TOP100"]
    # each name alone (several of them are aliases of the same key)
    assert [resolve_batch_metrics([spec])[0].names[0] for spec in specs] == [
        "acc",
        "bin_acc",
        "bin_acc",
        "top5",
        "top100",
    ]
    assert names(resolve_batch_metrics([f"top{k}" for k in [*range(1, 11), *range(20, 101, 10)]])) == [
        f"top{k}" for k in [*range(1, 11), *range(20, 101, 10)]
    ]


def test_batch_metric_values() -> None:
    y_pred = torch.tensor([[2.0, 1.0, 0.0], [0.0, 1.0, 2.0], [0.0, 2.0, 1.0], [2.0, 0.0, 1.0]])
    y_true = torch.tensor([0, 1, 1, 2])
    acc, top2 = resolve_batch_metrics(["acc", "top2"])
    assert acc(y_pred, y_true).item() == 50.0
    assert top2(y_pred, y_true).item() == 100.0


def test_loss_names_resolve_to_losses_with_canonical_keys() -> None:
    metrics = resolve_batch_metrics(["CrossEntropyLoss", "mse_loss", "L1", "bce_with_logits"])
    assert names(metrics) == ["cross_entropy", "mse", "l1", "bce_with_logits"]
    assert all(metric.higher_is_better is False for metric in metrics)
    y_pred, y_true = torch.randn(6, 3), torch.randint(0, 3, (6,))
    assert torch.allclose(metrics[0](y_pred, y_true), F.cross_entropy(y_pred, y_true))
    assert torch.allclose(metrics[1](y_pred, y_pred + 1), torch.tensor(1.0))


def test_batch_callables_modules_and_pairs() -> None:
    def my_error(y_pred, y_true):
        return (y_pred - y_true).abs().max()

    class SignAgreement:
        def __call__(self, y_pred, y_true):
            return (y_pred.sign() == y_true.sign()).float().mean()

    existing = Accuracy()
    metrics = resolve_batch_metrics(
        [my_error, SignAgreement(), nn.MSELoss(), existing, ("max_err", my_error), ("accuracy_2", "acc")]
    )
    assert names(metrics) == ["my_error", "sign_agreement", "mse", "acc", "max_err", "accuracy_2"]
    assert metrics[3] is existing
    assert metrics[2].higher_is_better is False
    assert metrics[4](torch.tensor([1.0, 5.0]), torch.zeros(2)).item() == 5.0


def test_torchmetrics_objects() -> None:
    (batch,) = resolve_batch_metrics([torchmetrics.MeanAbsoluteError()])
    (epoch,) = resolve_epoch_metrics([("auroc", torchmetrics.AUROC(task="binary"))])
    assert isinstance(batch, TorchMetricsBatchMetric) and batch.names == ("mean_absolute_error",)
    assert isinstance(epoch, TorchMetricsEpochMetric) and epoch.names == ("auroc",)
    (renamed,) = resolve_batch_metrics([("mae_tm", torchmetrics.MeanAbsoluteError())])
    assert isinstance(renamed, TorchMetricsBatchMetric) and renamed.names == ("mae_tm",)


def test_epoch_names() -> None:
    specs = [
        "f1",
        "FScore",
        "precision",
        "recall",
        "binf1",
        "bin_precision",
        "BinRecall",
        "mse",
        "mae",
        "rmse",
        "r2",
    ]
    expected = [
        "fscore_macro",
        "fscore_macro",
        "precision_macro",
        "recall_macro",
        "bin_fscore",
        "bin_precision",
        "bin_recall",
        "mse",
        "mae",
        "rmse",
        "r2",
    ]
    assert [resolve_epoch_metrics([spec])[0].names[0] for spec in specs] == expected
    assert isinstance(resolve_epoch_metrics(["mse"])[0], MSE)  # the exact epoch MSE, not the loss
    binary = resolve_epoch_metrics(["binfscore"])[0]
    assert isinstance(binary, FBeta) and binary.average == "binary"


def test_epoch_objects_and_pairs() -> None:
    f1, sk = F1(), SKLearnMetrics(r2_score)
    metrics = resolve_epoch_metrics([f1, sk, ("fit", R2()), (["f", "p", "r"], FBeta())])
    assert metrics[0] is f1 and metrics[1] is sk
    assert names(metrics) == ["fscore_macro", "r2_score", "fit", "f", "p", "r"]


def test_unknown_names_suggest_close_ones() -> None:
    with pytest.raises(
        ValueError,
        match=r"Unknown batch metric name for `batch_metrics`\. Received: batch_metrics='accuracyy'\. "
        r"Did you mean 'accuracy'",
    ):
        resolve_batch_metrics(["accuracyy"])
    with pytest.raises(ValueError, match=r"Valid names: .*'cross_entropy'.*'top5'"):
        resolve_batch_metrics(["nope"])
    with pytest.raises(
        ValueError, match=r"Unknown epoch metric name for `epoch_metrics`\. Received: epoch_metrics='f2'"
    ):
        resolve_epoch_metrics(["f2"])
    with pytest.raises(ValueError, match=r"Received: valid_metrics='acc'"):
        resolve_epoch_metrics(["acc"], argument="valid_metrics")


def test_wrong_types_name_the_argument() -> None:
    with pytest.raises(TypeError, match=r"Each item of `batch_metrics` must be .* Received: 3 \(type int\)"):
        resolve_batch_metrics([3])
    with pytest.raises(TypeError, match=r"EpochMetric objects belong in `epoch_metrics`"):
        resolve_batch_metrics([F1()])
    with pytest.raises(TypeError, match=r"Received: <class .*F1'> \(type ABCMeta\)\. Pass an instance: F1\(\)"):
        resolve_epoch_metrics([F1])
    with pytest.raises(TypeError, match=r"Per-batch functions belong in `batch_metrics`"):
        resolve_epoch_metrics([lambda y_pred, y_true: y_pred])
    with pytest.raises(
        TypeError, match=r"`batch_metrics` must be a list .* Wrap it in a list: batch_metrics=\['acc'\]"
    ):
        resolve_batch_metrics("acc")
    with pytest.raises(TypeError, match=r"must be a non-empty string or sequence of non-empty strings"):
        resolve_batch_metrics([("", "acc")])


def test_pair_name_count_must_match() -> None:
    with pytest.raises(ValueError, match=r"gives 1 name\(s\) \('x',\) but the metric produces 3 value\(s\)"):
        resolve_epoch_metrics([("x", FBeta())])


def test_duplicate_keys_are_rejected() -> None:
    with pytest.raises(ValueError, match=r"same key 'acc' \(batch metric and batch metric\).*\('acc_2', metric\)"):
        resolve_batch_metrics(["acc", "accuracy"])
    with pytest.raises(ValueError, match=r"same key 'fscore_macro' \(epoch metric and epoch metric\)"):
        resolve_epoch_metrics(["f1", "fscore"])
    batch = resolve_batch_metrics(["mse"])
    epoch = resolve_epoch_metrics(["mse"])
    with pytest.raises(ValueError, match=r"same key 'mse' \(batch metric and epoch metric\)\. Give one"):
        check_unique_names(batch, epoch)
    check_unique_names(batch, resolve_epoch_metrics([("mse_exact", "mse")]))


def test_resolved_batch_metric_is_the_contract_type() -> None:
    metrics = resolve_batch_metrics(["acc", "mse", torchmetrics.MeanAbsoluteError(), lambda a, b: a.sum()])
    assert all(isinstance(metric, BatchMetric) for metric in metrics)
    assert metrics[3].names == ("<lambda>",)
