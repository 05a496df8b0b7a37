"""Turns the user's ``batch_metrics`` and ``epoch_metrics`` lists into metric objects the loop runs.

Each item may be a name (``'acc'``, ``'top5'``, ``'f1'``, any loss name...), a ``(name, metric)`` pair
whose name overrides the log key, a callable ``f(y_pred, y_true)``, a loss module, a trainwell metric or a
torchmetrics-like object. Names ignore case and underscores.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from torch import nn

from trainwell import losses
from trainwell.metrics.adapters import (
    TorchMetricsBatchMetric,
    TorchMetricsEpochMetric,
    is_torchmetrics_like,
)
from trainwell.metrics.base import BatchMetric, EpochMetric, check_names
from trainwell.metrics.classification import TOPK_VALUES, Accuracy, BinaryAccuracy, TopKAccuracy
from trainwell.metrics.fscores import F1, FBeta, Precision, Recall
from trainwell.metrics.regression import MAE, MSE, R2, RMSE
from trainwell.utils.names import describe, unknown_name_error

__all__ = [
    "BATCH_METRIC_NAMES",
    "EPOCH_METRIC_NAMES",
    "check_unique_names",
    "resolve_batch_metrics",
    "resolve_epoch_metrics",
]

_BATCH_FACTORIES: dict[str, Callable[[], BatchMetric]] = {
    "acc": Accuracy,
    "accuracy": Accuracy,
    "binacc": BinaryAccuracy,
    "binaryacc": BinaryAccuracy,
    "binaryaccuracy": BinaryAccuracy,
    **{f"top{k}": (lambda k=k: TopKAccuracy(k)) for k in TOPK_VALUES},  # type: ignore[misc]
}

_EPOCH_FACTORIES: dict[str, Callable[[], EpochMetric]] = {
    "f1": F1,
    "fscore": F1,
    "precision": Precision,
    "recall": Recall,
    "binf1": lambda: FBeta(metric="fscore", average="binary", names="bin_fscore"),
    "binfscore": lambda: FBeta(metric="fscore", average="binary", names="bin_fscore"),
    "binprecision": lambda: FBeta(metric="precision", average="binary", names="bin_precision"),
    "binrecall": lambda: FBeta(metric="recall", average="binary", names="bin_recall"),
    "mse": MSE,
    "mae": MAE,
    "rmse": RMSE,
    "r2": R2,
}

# The names shown to users ('bin_acc' rather than its lookup key 'binacc'); losses are added at call time.
BATCH_METRIC_NAMES: tuple[str, ...] = ("acc", "accuracy", "bin_acc", *(f"top{k}" for k in TOPK_VALUES))
EPOCH_METRIC_NAMES: tuple[str, ...] = (
    "f1", "fscore", "precision", "recall", "bin_f1", "bin_fscore", "bin_precision", "bin_recall",
    "mse", "mae", "rmse", "r2",
)  # fmt: skip

_ACCEPTED_BATCH = (
    "a metric name such as 'acc' or 'top5', a loss name such as 'mse', a (name, metric) pair, "
    "a callable f(y_pred, y_true), a loss module, a BatchMetric or a torchmetrics object"
)
_ACCEPTED_EPOCH = (
    "a metric name such as 'f1' or 'r2', a (name, metric) pair, an EpochMetric instance or a torchmetrics object"
)


def _lookup_key(name: str) -> str:
    return name.lower().replace("_", "")


def _loss_keys() -> set[str]:
    names = [*losses.LOSS_NAMES, *losses.LOSS_ALIASES]
    # 'CrossEntropyLoss', 'cross_entropy' and 'crossentropy' are the same loss.
    return {_lookup_key(name).removesuffix("loss") for name in names}


def _batch_from_name(name: str, argument: str) -> BatchMetric:
    key = _lookup_key(name)
    factory = _BATCH_FACTORIES.get(key)
    if factory is not None:
        return factory()
    if key.removesuffix("loss") in _loss_keys():
        canonical = losses.loss_name(name, argument)
        return BatchMetric(losses.resolve_loss(name, argument), (canonical,), higher_is_better=False)
    valid = [*BATCH_METRIC_NAMES, *losses.LOSS_NAMES]
    raise unknown_name_error("batch metric", argument, name, valid)


def _one_batch_metric(spec: Any, argument: str) -> BatchMetric:
    if isinstance(spec, BatchMetric):
        return spec
    if isinstance(spec, str):
        return _batch_from_name(spec, argument)
    if isinstance(spec, (EpochMetric, type)):
        hint = " EpochMetric objects belong in `epoch_metrics`." if isinstance(spec, EpochMetric) else ""
        raise TypeError(f"Each item of `{argument}` must be {_ACCEPTED_BATCH}. Received: {describe(spec)}.{hint}")
    if is_torchmetrics_like(spec) and callable(spec):
        return TorchMetricsBatchMetric(spec)
    if callable(spec):
        # Functions keep their __name__; objects (nn.MSELoss(), a callable class) are named after their
        # class, and torch's own losses get their canonical loss name ('mse').
        name = losses.loss_name(spec, argument)
        # A function may declare its direction as an attribute, as metric objects do.
        declared = getattr(spec, "higher_is_better", None)
        higher_is_better = declared if isinstance(declared, bool) else False if isinstance(spec, nn.Module) else None
        return BatchMetric(spec, (name,), higher_is_better=higher_is_better)
    raise TypeError(f"Each item of `{argument}` must be {_ACCEPTED_BATCH}. Received: {describe(spec)}.")


def _one_epoch_metric(spec: Any, argument: str) -> EpochMetric:
    if isinstance(spec, EpochMetric):
        return spec
    if isinstance(spec, str):
        factory = _EPOCH_FACTORIES.get(_lookup_key(spec))
        if factory is None:
            raise unknown_name_error("epoch metric", argument, spec, EPOCH_METRIC_NAMES)
        return factory()
    if is_torchmetrics_like(spec) and not isinstance(spec, type):
        return TorchMetricsEpochMetric(spec)
    hint = ""
    if isinstance(spec, type) and issubclass(spec, EpochMetric):
        hint = f" Pass an instance: {spec.__name__}()."
    elif isinstance(spec, BatchMetric) or callable(spec):
        hint = " Per-batch functions belong in `batch_metrics`."
    raise TypeError(f"Each item of `{argument}` must be {_ACCEPTED_EPOCH}. Received: {describe(spec)}.{hint}")


def _split_pair(spec: Any, argument: str) -> tuple[tuple[str, ...] | None, Any]:
    """Returns ``(names, metric)`` for a ``(name, metric)`` pair, ``(None, spec)`` otherwise."""
    if isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[0], (str, list, tuple)):
        return check_names(spec[0], f"{argument} (the name of a (name, metric) pair)"), spec[1]
    return None, spec


def _check_count(names: tuple[str, ...], produced: tuple[str, ...], metric: Any, argument: str) -> None:
    if len(names) != len(produced):
        raise ValueError(
            f"The (name, metric) pair in `{argument}` gives {len(names)} name(s) {names} but the metric "
            f"produces {len(produced)} value(s) {produced}. Give one name per value."
        )


def _check_list(specs: Any, argument: str, accepted: str) -> list[Any]:
    if specs is None:
        return []
    if isinstance(specs, (list, tuple)):
        return list(specs)
    raise TypeError(
        f"`{argument}` must be a list whose items are {accepted}. Received: {argument}={describe(specs)}. "
        f"Wrap it in a list: {argument}=[{specs!r}]."
    )


def resolve_batch_metrics(specs: list[Any] | None, argument: str = "batch_metrics") -> list[BatchMetric]:
    """Turns the user's batch metrics into :class:`BatchMetric` objects.

    Args:
        specs: None, or a list of names (``'acc'``, ``'bin_acc'``, ``'top1'``..``'top10'``,
            ``'top20'``..``'top100'``, or any loss name), ``(name, metric)`` pairs, callables
            ``f(y_pred, y_true)``, loss modules, :class:`BatchMetric` objects or torchmetrics objects
            (whose forward gives the batch value).
        argument: the user's argument, named in error messages.

    Raises:
        TypeError: an item has an unsupported type.
        ValueError: an unknown name, or two metrics with the same log key.

    >>> [metric.names for metric in resolve_batch_metrics(['accuracy', 'top5', ('err', 'l1')])]
    [('acc',), ('top5',), ('err',)]
    """
    metrics = []
    for spec in _check_list(specs, argument, _ACCEPTED_BATCH):
        names, metric_spec = _split_pair(spec, argument)
        metric = _one_batch_metric(metric_spec, argument)
        if names is not None:
            _check_count(names, metric.names, metric_spec, argument)
            metric = _renamed_batch(metric, names)
        metrics.append(metric)
    check_unique_names(metrics, [])
    return metrics


def _renamed_batch(metric: BatchMetric, names: tuple[str, ...]) -> BatchMetric:
    if isinstance(metric, TorchMetricsBatchMetric):
        return TorchMetricsBatchMetric(metric.fn, names)
    return BatchMetric(metric.fn, names, metric.higher_is_better, counts=metric.counts, scale=metric.scale)


def resolve_epoch_metrics(specs: list[Any] | None, argument: str = "epoch_metrics") -> list[EpochMetric]:
    """Turns the user's epoch metrics into :class:`EpochMetric` objects.

    Args:
        specs: None, or a list of names (``'f1'``, ``'precision'``, ``'recall'``, ``'bin_f1'``,
            ``'bin_precision'``, ``'bin_recall'``, ``'mse'``, ``'mae'``, ``'rmse'``, ``'r2'``),
            ``(name, metric)`` pairs, :class:`EpochMetric` objects or torchmetrics objects.
        argument: the user's argument, named in error messages.

    Raises:
        TypeError: an item has an unsupported type.
        ValueError: an unknown name, or two metrics with the same log key.

    >>> [metric.names for metric in resolve_epoch_metrics(['f1', 'binf1', ('fit', 'r2')])]
    [('fscore_macro',), ('bin_fscore',), ('fit',)]
    """
    metrics = []
    for spec in _check_list(specs, argument, _ACCEPTED_EPOCH):
        names, metric_spec = _split_pair(spec, argument)
        metric = _one_epoch_metric(metric_spec, argument)
        if names is not None:
            _check_count(names, metric.names, metric_spec, argument)
            metric.names = names
        metrics.append(metric)
    check_unique_names([], metrics)
    return metrics


def check_unique_names(
    batch_metrics: Iterable[BatchMetric | EpochMetric], epoch_metrics: Iterable[BatchMetric | EpochMetric]
) -> None:
    """Raises ValueError when two metrics (batch or epoch) would log under the same key.

    >>> batch, epoch = resolve_batch_metrics(['acc']), resolve_epoch_metrics([('acc', 'f1')])
    >>> check_unique_names(batch, epoch)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: Two metrics log under the same key 'acc' (batch metric and epoch metric). Give one ...
    """
    seen: dict[str, str] = {}
    for kind, metrics in (("batch metric", batch_metrics), ("epoch metric", epoch_metrics)):
        for metric in metrics:
            for name in metric.names:
                if name in seen:
                    raise ValueError(
                        f"Two metrics log under the same key {name!r} ({seen[name]} and {kind}). Give one "
                        f"of them another name with a (name, metric) pair, e.g. ({name + '_2'!r}, metric)."
                    )
                seen[name] = kind
