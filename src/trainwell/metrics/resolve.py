"""Turns the user's ``batch_metrics`` and ``epoch_metrics`` lists into metric objects the loop runs.

Each item may be a name (``'acc'``, ``'top5'``, ``'f1'``, any loss name, a registered name...), a
``(name, metric)`` pair whose name(s) override the log key(s), a callable ``f(y_pred, y_true)``, a loss
module, a :class:`~trainwell.metrics.metric.Metric` (trainwell's, Poutyne's or torchmetrics'), or one of
trainwell's batch or epoch metrics. Names ignore case and underscores. As in Poutyne, any metric works in
either list: a function in ``epoch_metrics`` is averaged over the epoch; a ``Metric`` in ``batch_metrics``
logs its forward's value per batch and its ``compute()`` over the epoch. Metrics that end up with the same
log key are numbered (``acc1``, ``acc2``) by :func:`check_unique_names`.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable
from typing import Any

from torch import nn

from trainwell import losses
from trainwell.metrics.adapters import BatchMetricAdapter, EpochMetricAdapter, is_stateful_metric, is_torchmetrics_like
from trainwell.metrics.averaged import AveragedEpochMetric
from trainwell.metrics.base import BatchMetric, EpochMetric, check_names
from trainwell.metrics.classification import TOPK_VALUES, Accuracy, BinaryAccuracy, TopKAccuracy
from trainwell.metrics.fscores import F1, BinaryF1, BinaryPrecision, BinaryRecall, FBeta, Precision, Recall
from trainwell.metrics.naming import camel_to_snake, rename_doubles
from trainwell.metrics.registry import lookup_metric, registered_metric_names
from trainwell.metrics.regression import MAE, MSE, R2, RMSE
from trainwell.metrics.sklearn import SKLearnMetrics
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
    **{
        f"top{k}{suffix}": (lambda k=k: TopKAccuracy(k))  # type: ignore[misc]
        for k in TOPK_VALUES
        for suffix in ("", "acc", "accuracy")
    },
}

_EPOCH_FACTORIES: dict[str, Callable[[], Any]] = {
    "f1": F1,
    "fscore": F1,
    "precision": Precision,
    "recall": Recall,
    "binf1": BinaryF1,
    "binaryf1": BinaryF1,
    "binfscore": BinaryF1,
    "binprecision": BinaryPrecision,
    "binaryprecision": BinaryPrecision,
    "binrecall": BinaryRecall,
    "binaryrecall": BinaryRecall,
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
# The epoch metrics that also work per batch (a Metric with a forward): F-scores, precisions, recalls.
_STATEFUL_FACTORIES = {key: factory for key, factory in _EPOCH_FACTORIES.items() if issubclass(factory, FBeta)}  # type: ignore[arg-type]
_STATEFUL_NAMES = EPOCH_METRIC_NAMES[:8]

_ACCEPTED_BATCH = (
    "a metric name such as 'acc' or 'top5', a loss name such as 'mse', a (name, metric) pair, "
    "a callable f(y_pred, y_true), a loss module, a Metric, a BatchMetric or a torchmetrics object"
)
_ACCEPTED_EPOCH = (
    "a metric name such as 'f1' or 'r2', a (name, metric) pair, a Metric, an EpochMetric, a torchmetrics "
    "object or a callable f(y_pred, y_true) (averaged over the epoch)"
)


def _lookup_keys(name: str) -> list[str]:
    key = name.lower().replace("_", "")
    # 'f1_score' is 'f1', 'CrossEntropyLoss' is 'crossentropy'; the exact key first ('fscore' is a name).
    return [key, key.removesuffix("score"), key.removesuffix("loss")]


def _factory(table: dict[str, Callable[[], Any]], name: str) -> Callable[[], Any] | None:
    return next((table[key] for key in _lookup_keys(name) if key in table), None)


def _loss_metric(name: str, argument: str) -> BatchMetric | None:
    keys = {losses._normalize(loss) for loss in [*losses.LOSS_NAMES, *losses.LOSS_ALIASES]}
    if losses._normalize(name) not in keys:
        return None
    canonical = losses.loss_name(name, argument)
    return BatchMetric(losses.resolve_loss(name, argument), (canonical,), higher_is_better=False)


def _own_name(obj: Any, argument: str) -> str | tuple[str, ...]:
    """The log key(s) of a callable: an explicit ``__name__`` attribute, else its loss or function name."""
    declared = getattr(obj, "__name__", None)
    if not (inspect.isfunction(obj) or inspect.isbuiltin(obj) or inspect.ismethod(obj)) and declared is not None:
        return declared if isinstance(declared, str) else tuple(declared)
    if isinstance(obj, nn.Module) or declared is not None:
        # torch's losses get their canonical key ('mse'); other functions keep their name.
        return losses.loss_name(obj, argument)
    return camel_to_snake(type(obj).__name__)


def _batch_object(obj: Any, argument: str) -> BatchMetric:
    """A metric object or callable -> a batch metric."""
    if isinstance(obj, BatchMetric):
        return obj
    if isinstance(obj, (EpochMetric, type)):
        hint = (
            " EpochMetric objects belong in `epoch_metrics`."
            if isinstance(obj, EpochMetric)
            else f" Pass an instance: {obj.__name__}()."
        )
        raise TypeError(f"Each item of `{argument}` must be {_ACCEPTED_BATCH}. Received: {describe(obj)}.{hint}")
    if is_stateful_metric(obj):
        return BatchMetricAdapter(obj)
    if callable(obj):
        declared = getattr(obj, "higher_is_better", None)
        higher_is_better = declared if isinstance(declared, bool) else False if isinstance(obj, nn.Module) else None
        return BatchMetric(obj, check_names(_own_name(obj, argument), argument), higher_is_better=higher_is_better)
    raise TypeError(f"Each item of `{argument}` must be {_ACCEPTED_BATCH}. Received: {describe(obj)}.")


def _epoch_object(obj: Any, argument: str) -> EpochMetric:
    """A metric object or callable -> an epoch metric."""
    if isinstance(obj, EpochMetric):
        return obj
    if isinstance(obj, BatchMetric):
        return AveragedEpochMetric(obj)
    if isinstance(obj, type):
        raise TypeError(
            f"Each item of `{argument}` must be {_ACCEPTED_EPOCH}. Received: {describe(obj)}. "
            f"Pass an instance: {obj.__name__}()."
        )
    if is_torchmetrics_like(obj) and (isinstance(obj, nn.Module) or not inspect.isroutine(obj)):
        return EpochMetricAdapter(obj)
    if callable(obj):
        return AveragedEpochMetric(_batch_object(obj, argument))
    raise TypeError(f"Each item of `{argument}` must be {_ACCEPTED_EPOCH}. Received: {describe(obj)}.")


def _registered(name: str, to_metric: Callable[[Any, str], Any], argument: str) -> Any:
    found = lookup_metric(name)
    if found is None:
        return None
    unique_name, obj = found
    metric = to_metric(obj, argument)
    return metric if unique_name is None else _with_names(metric, (unique_name,))


def _batch_from_name(name: str, argument: str) -> tuple[BatchMetric, bool]:
    """The batch metric of a name, and whether the name fixes its number of values."""
    registered = _registered(name, _batch_object, argument)
    if registered is not None:
        return registered, False
    factory = _factory(_BATCH_FACTORIES, name)
    if factory is not None:
        return factory(), True
    factory = _factory(_STATEFUL_FACTORIES, name)
    if factory is not None:
        return BatchMetricAdapter(factory()), True
    loss = _loss_metric(name, argument)
    if loss is not None:
        return loss, True
    valid = [*BATCH_METRIC_NAMES, *_STATEFUL_NAMES, *losses.LOSS_NAMES, *registered_metric_names()]
    raise unknown_name_error("batch metric", argument, name, valid)


def _epoch_from_name(name: str, argument: str) -> tuple[EpochMetric, bool]:
    """The epoch metric of a name, and whether the name fixes its number of values."""
    registered = _registered(name, _epoch_object, argument)
    if registered is not None:
        return registered, False
    factory = _factory(_EPOCH_FACTORIES, name)
    if factory is not None:
        return _epoch_object(factory(), argument), True
    factory = _factory(_BATCH_FACTORIES, name)
    if factory is not None:
        return AveragedEpochMetric(factory()), True
    loss = _loss_metric(name, argument)
    if loss is not None:
        return AveragedEpochMetric(loss), True
    valid = [*EPOCH_METRIC_NAMES, *BATCH_METRIC_NAMES, *losses.LOSS_NAMES, *registered_metric_names()]
    raise unknown_name_error("epoch metric", argument, name, valid)


def _declares_its_names(obj: Any) -> bool:
    """Whether a metric object fixes how many values it gives (trainwell's own), unlike a user's function."""
    return isinstance(obj, (BatchMetric, EpochMetric, FBeta, SKLearnMetrics))


def _split_pair(spec: Any, argument: str) -> tuple[tuple[str, ...] | None, Any]:
    """Returns ``(names, metric)`` for a ``(name, metric)`` pair, ``(None, spec)`` otherwise."""
    if isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[0], (str, list, tuple)):
        return check_names(spec[0], f"{argument} (the name of a (name, metric) pair)"), spec[1]
    return None, spec


def _resolve(spec: Any, argument: str, from_name: Callable[..., Any], from_object: Callable[..., Any]) -> Any:
    names, metric_spec = _split_pair(spec, argument)
    if isinstance(metric_spec, str):
        metric, fixed = from_name(metric_spec, argument)
    else:
        metric, fixed = from_object(metric_spec, argument), _declares_its_names(metric_spec)
    if names is None:
        return metric
    if fixed and len(names) != len(metric.names):
        raise ValueError(
            f"The (name, metric) pair in `{argument}` gives {len(names)} name(s) {names} but the metric "
            f"produces {len(metric.names)} value(s) {metric.names}. Give one name per value."
        )
    return _with_names(metric, names)


def _with_names(metric: Any, names: tuple[str, ...]) -> Any:
    """A shallow copy of ``metric`` logged under ``names`` (the user's object keeps its own names)."""
    renamed = copy.copy(metric)
    renamed.names = names
    state = getattr(renamed, "state", None)
    if isinstance(renamed, BatchMetric) and state is not None:
        renamed.state = copy.copy(state)
        renamed.state.names = names
    return renamed


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
            ``'top20'``..``'top100'``, ``'f1'``, ``'bin_f1'``..., any loss name, any registered name),
            ``(name, metric)`` pairs, callables ``f(y_pred, y_true)``, loss modules, ``Metric`` objects
            (their forward gives the batch value, their ``compute()`` the epoch value), torchmetrics
            objects (likewise) or :class:`BatchMetric` objects.
        argument: the user's argument, named in error messages.

    Raises:
        TypeError: an item has an unsupported type.
        ValueError: an unknown name.

    Two metrics may share a log key here; :func:`check_unique_names` numbers them.

    >>> [metric.names for metric in resolve_batch_metrics(['accuracy', 'top5', ('err', 'l1')])]
    [('acc',), ('top5',), ('err',)]
    """
    specs = _check_list(specs, argument, _ACCEPTED_BATCH)
    return [_resolve(spec, argument, _batch_from_name, _batch_object) for spec in specs]


def resolve_epoch_metrics(specs: list[Any] | None, argument: str = "epoch_metrics") -> list[EpochMetric]:
    """Turns the user's epoch metrics into :class:`EpochMetric` objects.

    Args:
        specs: None, or a list of names (``'f1'``, ``'precision'``, ``'recall'``, ``'bin_f1'``,
            ``'bin_precision'``, ``'bin_recall'``, ``'mse'``, ``'mae'``, ``'rmse'``, ``'r2'``, a batch
            metric's or a loss's name, a registered name), ``(name, metric)`` pairs, ``Metric`` objects,
            :class:`EpochMetric` objects, torchmetrics objects, or callables ``f(y_pred, y_true)`` and
            batch metrics, whose batch values are averaged over the epoch weighted by batch size.
        argument: the user's argument, named in error messages.

    Raises:
        TypeError: an item has an unsupported type.
        ValueError: an unknown name.

    >>> [metric.names for metric in resolve_epoch_metrics(['f1', 'binf1', ('fit', 'r2')])]
    [('fscore_macro',), ('bin_fscore',), ('fit',)]
    """
    specs = _check_list(specs, argument, _ACCEPTED_EPOCH)
    return [_resolve(spec, argument, _epoch_from_name, _epoch_object) for spec in specs]


def check_unique_names(batch_metrics: list[Any], epoch_metrics: list[Any]) -> tuple[list[Any], list[Any]]:
    """Numbers the log keys used more than once, batch metrics first, as Poutyne does (``acc1``, ``acc2``).

    The lists are updated in place (a renamed metric is replaced by a renamed copy) and returned.

    >>> batch, epoch = resolve_batch_metrics(['acc', 'mse']), resolve_epoch_metrics([('acc', 'f1')])
    >>> batch, epoch = check_unique_names(batch, epoch)
    >>> [metric.names for metric in [*batch, *epoch]]
    [('acc1',), ('mse',), ('acc2',)]
    """
    batch_names, epoch_names = rename_doubles(
        [list(metric.names) for metric in batch_metrics], [list(metric.names) for metric in epoch_metrics]
    )
    for metrics, new_names in ((batch_metrics, batch_names), (epoch_metrics, epoch_names)):
        for index, (metric, names) in enumerate(zip(metrics, new_names)):
            if tuple(names) != tuple(metric.names):
                metrics[index] = _with_names(metric, tuple(names))
    return batch_metrics, epoch_metrics
