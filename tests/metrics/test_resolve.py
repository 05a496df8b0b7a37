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
    AveragedEpochMetric,
    BatchMetric,
    BatchMetricAdapter,
    FBeta,
    SKLearnMetrics,
    TorchMetricsBatchMetric,
    TorchMetricsEpochMetric,
    check_unique_names,
    do_register_metric_class,
    register_metric_func,
    resolve_batch_metrics,
    resolve_epoch_metrics,
    unregister_metric_class,
    unregister_metric_func,
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
    assert isinstance(binary.metric, FBeta) and binary.average == "binary"  # read through the adapter
    # Poutyne's spellings: 'binary_f1', a trailing '_score', 'top5_acc'
    assert names(resolve_epoch_metrics(["binary_f1", "f1_score", "binary_recall"])) == [
        "bin_fscore",
        "fscore_macro",
        "bin_recall",
    ]
    assert names(resolve_batch_metrics(["top5_acc", "top10accuracy", "binary_accuracy"])) == [
        "top5",
        "top10",
        "bin_acc",
    ]


def test_epoch_objects_and_pairs() -> None:
    f1, sk, r2 = F1(), SKLearnMetrics(r2_score), R2()
    metrics = resolve_epoch_metrics([f1, sk, ("fit", r2), (["f", "p", "r"], FBeta())])
    assert metrics[0].metric is f1 and metrics[1].metric is sk
    assert names(metrics) == ["fscore_macro", "r2_score", "fit", "f", "p", "r"]
    assert r2.names == ("r2",)  # a pair renames a copy: the user's object keeps its name


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
    with pytest.raises(ValueError, match=r"Received: valid_metrics='nope'"):
        resolve_epoch_metrics(["nope"], argument="valid_metrics")


def test_wrong_types_name_the_argument() -> None:
    with pytest.raises(TypeError, match=r"Each item of `batch_metrics` must be .* Received: 3 \(type int\)"):
        resolve_batch_metrics([3])
    with pytest.raises(TypeError, match=r"EpochMetric objects belong in `epoch_metrics`"):
        resolve_batch_metrics([MSE()])
    with pytest.raises(TypeError, match=r"Received: <class .*F1'> \(type ABCMeta\)\. Pass an instance: F1\(\)"):
        resolve_epoch_metrics([F1])
    with pytest.raises(TypeError, match=r"Pass an instance: Accuracy\(\)"):
        resolve_batch_metrics([Accuracy])
    with pytest.raises(TypeError, match=r"Each item of `epoch_metrics` must be .* Received: 3 \(type int\)"):
        resolve_epoch_metrics([3])
    with pytest.raises(
        TypeError, match=r"`batch_metrics` must be a list .* Wrap it in a list: batch_metrics=\['acc'\]"
    ):
        resolve_batch_metrics("acc")
    with pytest.raises(TypeError, match=r"must be a non-empty string or sequence of non-empty strings"):
        resolve_batch_metrics([("", "acc")])


def test_pair_name_count_must_match() -> None:
    with pytest.raises(ValueError, match=r"gives 1 name\(s\) \('x',\) but the metric produces 3 value\(s\)"):
        resolve_epoch_metrics([("x", FBeta())])


def test_doubles_are_numbered_batch_metrics_first() -> None:
    batch = resolve_batch_metrics(["acc", "accuracy", "mse"])
    epoch = resolve_epoch_metrics(["mse", ("acc", "f1"), (["acc", "p", "r"], FBeta())])
    assert names(batch) == ["acc", "acc", "mse"]  # resolving alone keeps the names
    returned = check_unique_names(batch, epoch)
    assert returned == (batch, epoch)  # renamed in place
    assert names(batch) == ["acc1", "acc2", "mse1"]
    assert names(epoch) == ["mse2", "acc3", "acc4", "p", "r"]
    before = names(batch)
    check_unique_names(batch, resolve_epoch_metrics([("mse_exact", "mse")]))
    assert names(batch) == before


def test_the_same_object_twice_gets_two_names() -> None:
    metric = Accuracy()
    batch, _ = check_unique_names(resolve_batch_metrics([metric, metric]), [])
    assert names(batch) == ["acc1", "acc2"] and metric.names == ("acc",)


def test_any_metric_works_in_either_list() -> None:
    y_pred = torch.tensor([[2.0, 1.0], [0.0, 1.0], [0.0, 2.0], [2.0, 0.0]])
    y_true = torch.tensor([0, 1, 0, 1])

    # a function, a batch metric name and a loss name as epoch metrics: averaged over the epoch
    def halves(y_pred, y_true):
        return (0.5, 1.5)

    averaged = resolve_epoch_metrics([(("h1", "h2"), halves), "acc", "cross_entropy", Accuracy()])
    assert all(isinstance(metric, AveragedEpochMetric) for metric in averaged)
    for metric in averaged:
        metric.update(y_pred[:3], y_true[:3])
        metric.update(y_pred[3:], y_true[3:])
    assert averaged[0].compute().tolist() == [0.5, 1.5]
    assert averaged[1].compute().item() == pytest.approx(50.0)  # 2 hits of 4 targets, counted exactly
    expected = F.cross_entropy(y_pred, y_true).item()
    assert averaged[2].compute().item() == pytest.approx(expected, rel=1e-6)
    # an F-score name or object as a batch metric: forward per batch, compute() over the phase
    stateful = resolve_batch_metrics(["f1", F1(average="micro"), "bin_f1"])
    assert all(isinstance(metric, BatchMetricAdapter) for metric in stateful)
    assert names(stateful) == ["fscore_macro", "fscore_micro", "bin_fscore"]
    assert stateful[1](y_pred, y_true).item() == pytest.approx(0.5)


def test_user_metrics_named_by_pairs_and_dunder_name() -> None:
    def two(y_pred, y_true):
        return {"a": 1, "b": 2}

    class Both:
        __name__ = ("x", "y")

        def __call__(self, y_pred, y_true):
            return [1, 2]

    assert names(resolve_batch_metrics([(("a", "b"), two), Both()])) == ["a", "b", "x", "y"]
    assert names(resolve_epoch_metrics([(["a", "b"], two)])) == ["a", "b"]


def test_registered_names_come_first_and_unregister() -> None:
    @register_metric_func("doubled_error", unique_name="twice")
    def doubled(y_pred, y_true):
        return 2 * (y_pred - y_true).abs().mean()

    keys = do_register_metric_class(F1, names=["my_f1", "MyF1Score"])
    try:
        assert keys == ["myf1", "myf1"]
        assert names(resolve_batch_metrics(["Doubled_Error", ("e", "doubled_error_loss")])) == ["twice", "e"]
        assert names(resolve_epoch_metrics(["doubled_error"])) == ["twice"]
        (batch,) = resolve_batch_metrics(["my_f1"])  # a class is instantiated at each use
        (epoch,) = resolve_epoch_metrics(["my_f1_score"])
        assert isinstance(batch.metric, F1) and isinstance(epoch.metric, F1) and batch.metric is not epoch.metric
        with pytest.raises(ValueError, match=r"Valid names: .*'doublederror'"):
            resolve_batch_metrics(["nothing_like_it"])
    finally:
        unregister_metric_func(["doublederror"])
        unregister_metric_class(keys[:1])
    with pytest.raises(ValueError, match=r"Unknown batch metric name"):
        resolve_batch_metrics(["doubled_error"])
    with pytest.raises(KeyError, match=r"No metric class is registered under 'myf1'"):
        unregister_metric_class(["myf1"])


def test_resolved_batch_metric_is_the_contract_type() -> None:
    metrics = resolve_batch_metrics(["acc", "mse", torchmetrics.MeanAbsoluteError(), lambda a, b: a.sum()])
    assert all(isinstance(metric, BatchMetric) for metric in metrics)
    assert metrics[3].names == ("<lambda>",)
