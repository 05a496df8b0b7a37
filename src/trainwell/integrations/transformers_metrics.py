"""Metrics on a transformers model's dict outputs: :class:`MetricWrapper` picks the logits for any metric.

A transformers model returns a dict-like output (``loss``, ``logits``, hidden states...), while a metric
expects the predictions as one tensor. :class:`MetricWrapper` hands the metric ``outputs[pred_key]``
(and ``y_true[y_key]`` when a key is given), keeping the metric's log keys, direction and, for
trainwell's own metrics, their exact counting over padded batches. It wraps batch metrics (names such
as ``'accuracy'``, functions ``f(y_pred, y_true)``, :class:`~trainwell.metrics.BatchMetric` objects) and
epoch metrics (``'f1'``, :class:`~trainwell.metrics.EpochMetric` or torchmetrics objects) alike:
``MetricWrapper('f1')`` is an :class:`EpochMetricWrapper`, to be put in ``epoch_metrics``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch

from trainwell import losses
from trainwell.metrics.adapters import TorchMetricsEpochMetric, is_torchmetrics_like
from trainwell.metrics.base import BatchMetric, EpochMetric
from trainwell.metrics.resolve import (
    BATCH_METRIC_NAMES,
    EPOCH_METRIC_NAMES,
    resolve_batch_metrics,
    resolve_epoch_metrics,
)

__all__ = ["EpochMetricWrapper", "MetricWrapper", "pick_prediction", "pick_target"]


def pick_prediction(outputs: Any, pred_key: str, owner: str = "MetricWrapper") -> Any:
    """``outputs[pred_key]`` from a model's dict outputs; a plain tensor output is returned as it is.

    >>> pick_prediction({'loss': torch.tensor(1.0), 'logits': torch.zeros(2, 3)}, 'logits').shape
    torch.Size([2, 3])
    """
    if isinstance(outputs, Mapping):
        if pred_key in outputs:
            return outputs[pred_key]
        raise KeyError(
            f"{owner} looks for {pred_key!r} in the model's outputs, which hold {list(outputs)}. "
            f"Pass pred_key= one of those."
        )
    return outputs


def pick_target(y_true: Any, outputs: Any, y_key: str | None, owner: str = "MetricWrapper") -> Any:
    """The targets a metric compares with: ``y_true[y_key]``, else (as in poutyne-transformers) ``outputs[y_key]``.

    >>> pick_target({'labels': torch.tensor([1]), 'input_ids': torch.tensor([[5]])}, {}, 'labels')
    tensor([1])
    """
    if y_key is None:
        return y_true
    if isinstance(y_true, Mapping) and y_key in y_true:
        return y_true[y_key]
    if isinstance(outputs, Mapping) and y_key in outputs:
        return outputs[y_key]
    held = list(y_true) if isinstance(y_true, Mapping) else f"a {type(y_true).__name__}"
    raise KeyError(
        f"{owner} looks for y_key={y_key!r} in the targets and in the model's outputs. The targets hold "
        f"{held}; the outputs hold {list(outputs) if isinstance(outputs, Mapping) else type(outputs).__name__}. "
        "Give TransformerCollator(y_keys=[...]) that key, or pass another y_key."
    )


def _metric_name(metric: Any) -> str:
    return losses.loss_name(metric, "metric")


def _lookup_key(name: str) -> str:
    return name.lower().replace("_", "")


def _is_epoch_kind(metric: Any) -> bool:
    """Whether ``metric`` accumulates over an epoch (an epoch metric name, object or torchmetrics object)."""
    if isinstance(metric, str):
        key = _lookup_key(metric)
        loss_keys = {_lookup_key(name).removesuffix("loss") for name in (*losses.LOSS_NAMES, *losses.LOSS_ALIASES)}
        batch_keys = {_lookup_key(name) for name in BATCH_METRIC_NAMES} | loss_keys
        # A name of both kinds ('mse': a loss and an epoch metric) is a batch metric, as in batch_metrics.
        return key.removesuffix("loss") not in batch_keys and key in {_lookup_key(name) for name in EPOCH_METRIC_NAMES}
    return isinstance(metric, EpochMetric) or (is_torchmetrics_like(metric) and not isinstance(metric, BatchMetric))


def _batch_metric(metric: Any) -> BatchMetric:
    if isinstance(metric, BatchMetric):
        return metric
    if isinstance(metric, str):
        return resolve_batch_metrics([metric], "metric")[0]
    if not callable(metric):
        raise TypeError(
            "`metric` must be a metric name ('accuracy', 'f1'...), a function f(y_pred, y_true), a BatchMetric, "
            f"an EpochMetric or a torchmetrics object. Received: metric of type {type(metric).__name__}."
        )
    declared = getattr(metric, "higher_is_better", None)
    return BatchMetric(metric, (_metric_name(metric),), declared if isinstance(declared, bool) else None)


def _as_value(value: Any, like: Any) -> torch.Tensor:
    """A metric's value as a tensor on the predictions' device (functions may return NumPy or Python numbers)."""
    if isinstance(value, torch.Tensor):
        return value
    device = like.device if isinstance(like, torch.Tensor) else None
    return torch.as_tensor(value, device=device)


class MetricWrapper(BatchMetric):
    """A metric computed on ``outputs[pred_key]`` of a model that returns a dict (a transformers model).

    Args:
        metric: a batch metric name (``'accuracy'``, ``'top5'``, a loss name), a function
            ``f(y_pred, y_true)`` (logged under its ``__name__``), a :class:`~trainwell.metrics.BatchMetric`;
            or an epoch metric (``'f1'``, an :class:`~trainwell.metrics.EpochMetric`, a torchmetrics
            object), for which an :class:`EpochMetricWrapper` is returned.
        pred_key: the output holding the predictions (``'logits'``).
        y_key: None to compare with the whole targets; a key to compare with ``y_true[y_key]`` when the
            targets are a dict (``TransformerCollator(y_keys=[...])``), else with ``outputs[y_key]``.

    The wrapper logs under the metric's own names and keeps its direction; trainwell's metrics that count
    (accuracy ignores the label -100 of padding) stay exact over the epoch. Functions may return a NumPy
    or Python number (converted to a tensor, which reads the values on the host each batch).

    >>> metric = MetricWrapper('accuracy')
    >>> outputs = {'loss': torch.tensor(0.3), 'logits': torch.tensor([[2.0, 0.0], [0.0, 1.0]])}
    >>> metric.names, metric(outputs, torch.tensor([0, 0]))
    (('acc',), tensor(50.))
    >>> type(MetricWrapper('f1')).__name__
    'EpochMetricWrapper'
    """

    __name__: str

    def __new__(cls, metric: Any, pred_key: str = "logits", y_key: str | None = None) -> Any:
        """An :class:`EpochMetricWrapper` for an epoch metric, else a new MetricWrapper."""
        if cls is MetricWrapper and _is_epoch_kind(metric):
            return EpochMetricWrapper(metric, pred_key, y_key)
        return super().__new__(cls)

    def __init__(self, metric: Any, pred_key: str = "logits", y_key: str | None = None) -> None:
        _check_keys(pred_key, y_key)
        inner = _batch_metric(metric)
        self.metric = metric
        self.inner = inner
        self.pred_key = pred_key
        self.y_key = y_key
        counts = None if inner.counts is None else self._picking(inner.counts)
        hits = None if inner.hits is None else self._picking(inner.hits)
        super().__init__(self._value, inner.names, inner.higher_is_better, counts=counts, scale=inner.scale, hits=hits)
        # poutyne-transformers named its wrapper after the metric (Poutyne reads __name__).
        self.__name__ = inner.names[0]

    def _picking(self, function: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
        def picked(outputs: Any, y_true: Any) -> Any:
            return function(pick_prediction(outputs, self.pred_key), pick_target(y_true, outputs, self.y_key))

        return picked

    def _value(self, outputs: Any, y_true: Any) -> torch.Tensor:
        y_pred = pick_prediction(outputs, self.pred_key)
        return _as_value(self.inner(y_pred, pick_target(y_true, outputs, self.y_key)), y_pred)

    def to(self, device: torch.device | str) -> MetricWrapper:
        """Moves the wrapped metric to ``device``."""
        self.inner.to(device)
        return self

    def __repr__(self) -> str:
        return f"MetricWrapper({self.inner!r}, pred_key={self.pred_key!r}, y_key={self.y_key!r})"


def _check_keys(pred_key: Any, y_key: Any) -> None:
    if not isinstance(pred_key, str):
        raise TypeError(f"`pred_key` must be a string such as 'logits'. Received: pred_key={pred_key!r}.")
    if y_key is not None and not isinstance(y_key, str):
        raise TypeError(f"`y_key` must be a string or None. Received: y_key={y_key!r}.")


def _epoch_metric(metric: Any) -> EpochMetric:
    if isinstance(metric, EpochMetric):
        return metric
    if isinstance(metric, str):
        return resolve_epoch_metrics([metric], "metric")[0]
    return TorchMetricsEpochMetric(metric)


class EpochMetricWrapper(EpochMetric):
    """An epoch metric fed with ``outputs[pred_key]``: what ``MetricWrapper('f1')`` returns.

    Args:
        metric: an epoch metric name (``'f1'``, ``'r2'``...), an :class:`~trainwell.metrics.EpochMetric`
            or a torchmetrics object.
        pred_key: the output holding the predictions.
        y_key: as for :class:`MetricWrapper`.

    Accumulators, resets, checkpoints and the merging of processes' states are the wrapped metric's.

    >>> f1 = MetricWrapper('f1')
    >>> f1.update({'logits': torch.tensor([[2.0, 0.0], [0.0, 1.0]])}, torch.tensor([0, 1]))
    >>> f1.names, f1.compute()
    (('fscore_macro',), tensor(1.))
    """

    def __init__(self, metric: Any, pred_key: str = "logits", y_key: str | None = None) -> None:
        super().__init__()
        _check_keys(pred_key, y_key)
        self.metric = metric
        self.inner = _epoch_metric(metric)
        self.pred_key = pred_key
        self.y_key = y_key
        self.names = self.inner.names
        self.higher_is_better = self.inner.higher_is_better
        self.syncs_itself = self.inner.syncs_itself
        self.__name__ = self.names[0]

    def update(self, y_pred: Any, y_true: Any) -> None:
        """Feeds the wrapped metric the picked predictions and targets."""
        self.inner.update(pick_prediction(y_pred, self.pred_key), pick_target(y_true, y_pred, self.y_key))

    def compute(self) -> torch.Tensor:
        """The wrapped metric's value."""
        return self.inner.compute()

    def reset(self) -> None:
        """Resets the wrapped metric."""
        self.inner.reset()

    def to(self, device: torch.device | str) -> EpochMetricWrapper:
        """Moves the wrapped metric's accumulators to ``device``."""
        self.inner.to(device)
        return self

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The wrapped metric's accumulators."""
        return self.inner.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Restores the wrapped metric's accumulators."""
        self.inner.load_state_dict(state)

    def merge_states(self, states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        """Merges processes' states as the wrapped metric does."""
        return self.inner.merge_states(states)

    def __repr__(self) -> str:
        return f"EpochMetricWrapper({self.inner!r}, pred_key={self.pred_key!r}, y_key={self.y_key!r})"
