"""Adapters for torchmetrics-like objects (anything with ``update``, ``compute`` and ``reset``).

Nothing here imports torchmetrics: the objects are duck-typed, so ``import trainwell`` stays light and
torchmetrics remains an optional dependency.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from trainwell.metrics.base import BatchMetric, EpochMetric, check_names

__all__ = ["TorchMetricsBatchMetric", "TorchMetricsEpochMetric", "is_torchmetrics_like", "snake_case"]

# A saved torchmetrics state: "<member>.<state>" keys; this one records how many updates were made.
_UPDATE_COUNT = "_update_count"


def is_torchmetrics_like(obj: object) -> bool:
    """Whether ``obj`` follows the torchmetrics protocol (``update``, ``compute`` and ``reset`` methods).

    >>> is_torchmetrics_like(len)
    False
    """
    return all(callable(getattr(obj, method, None)) for method in ("update", "compute", "reset"))


def snake_case(name: str) -> str:
    """Converts a class name to a log key: ``'MulticlassAccuracy'`` -> ``'multiclass_accuracy'``.

    >>> snake_case('MeanSquaredError'), snake_case('R2Score')
    ('mean_squared_error', 'r2_score')
    """
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


def _members(metric: Any) -> list[tuple[str, Any]]:
    """The torchmetrics ``Metric`` objects holding state: the metric itself, or a collection's members."""
    if hasattr(metric, "_defaults"):
        return [("", metric)]
    items = getattr(metric, "items", None)
    if callable(items):
        try:
            pairs = list(items(keep_base=True))
        except TypeError:  # a plain mapping of metrics
            pairs = list(items())
        return [(f"{name}.", member) for name, member in pairs if hasattr(member, "_defaults")]
    return []


def _declared_direction(metric: Any) -> bool | tuple[bool | None, ...] | None:
    """A torchmetrics object's ``higher_is_better``; for a collection, its members' in key order."""
    value = getattr(metric, "higher_is_better", None)
    if isinstance(value, bool):
        return value
    members = _members(metric)
    if len(members) > 1 or (members and members[0][0]):
        return tuple(getattr(member, "higher_is_better", None) for _, member in members)
    return None


class TorchMetricsEpochMetric(EpochMetric):
    """Wraps a torchmetrics-like object as an :class:`EpochMetric`.

    Args:
        metric: an object with ``update(y_pred, y_true)``, ``compute()`` and ``reset()``, such as any
            ``torchmetrics.Metric`` or ``MetricCollection``. ``compute()`` may return a tensor or a dict
            of tensors (flattened in the order of ``names``).
        names: the log keys; default: a collection's keys, else the class name in snake case
            (``MulticlassF1Score`` -> ``multiclass_f1_score``).

    Checkpoints hold the metric's states (``Metric._defaults``); list states are concatenated.

    >>> import torchmetrics
    >>> metric = TorchMetricsEpochMetric(torchmetrics.MeanSquaredError())
    >>> metric.update(torch.tensor([1.0, 3.0]), torch.tensor([0.0, 0.0]))
    >>> metric.names, metric.compute()
    (('mean_squared_error',), tensor(5.))
    """

    # A torchmetrics Metric gathers its states from every process inside compute() when a process group
    # exists; trainwell must not merge them a second time.
    syncs_itself = True

    def __init__(self, metric: Any, names: str | Sequence[str] | None = None) -> None:
        super().__init__()
        if not is_torchmetrics_like(metric):
            raise TypeError(
                "`metric` must have update(), compute() and reset() methods, like a torchmetrics Metric. "
                f"Received: metric={metric!r} (type {type(metric).__name__})."
            )
        self.metric = metric
        if names is None:
            keys = getattr(metric, "keys", None)
            names = list(keys()) if callable(keys) else snake_case(type(metric).__name__)
        self.names = check_names(names, "names")
        self.higher_is_better = _declared_direction(metric)

    def update(self, y_pred: Any, y_true: Any) -> None:
        """Forwards the batch to the wrapped metric's ``update``."""
        self.metric.update(y_pred, y_true)

    def compute(self) -> torch.Tensor:
        """Returns the wrapped metric's value: a scalar tensor, or one value per name."""
        value = self.metric.compute()
        if isinstance(value, Mapping):
            if set(value) == set(self.names):
                value = [value[name] for name in self.names]
            elif len(value) == len(self.names):
                value = list(value.values())
            else:
                raise RuntimeError(
                    f"{type(self.metric).__name__}.compute() returned {len(value)} values "
                    f"({', '.join(map(str, value))}) for {len(self.names)} names {self.names}; "
                    "pass one name per value with names=[...]."
                )
            return torch.stack([torch.as_tensor(item).float().reshape(()) for item in value])
        tensor = torch.as_tensor(value).float()
        return tensor.reshape(()) if len(self.names) == 1 and tensor.numel() == 1 else tensor.reshape(-1)

    def reset(self) -> None:
        """Resets the wrapped metric."""
        self.metric.reset()

    def to(self, device: torch.device | str) -> TorchMetricsEpochMetric:
        """Moves the wrapped metric (and its states) to ``device``."""
        if callable(getattr(self.metric, "to", None)):
            self.metric.to(device)
        return self

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Returns copies of the wrapped metric's states."""
        state: dict[str, torch.Tensor] = {}
        for prefix, member in _members(self.metric):
            for name in member._defaults:
                value = getattr(member, name)
                if isinstance(value, list):
                    if not value:
                        continue  # an empty list state is the default: nothing to save
                    value = torch.cat([item.reshape(-1, *item.shape[1:]) for item in value])
                state[prefix + name] = value.detach().clone()
            count = int(getattr(member, _UPDATE_COUNT, 0))
            state[prefix + _UPDATE_COUNT] = torch.tensor(count)
        return state

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Restores states saved by :meth:`state_dict` into the wrapped metric."""
        for prefix, member in _members(self.metric):
            for name, default in member._defaults.items():
                key = prefix + name
                if isinstance(default, list):
                    setattr(member, name, [state[key].clone()] if key in state else [])
                elif key in state:
                    current = getattr(member, name)
                    setattr(member, name, state[key].to(current.device, current.dtype))
                else:
                    raise KeyError(f"Metric state is missing {key!r}; it holds {sorted(state)}.")
            if prefix + _UPDATE_COUNT in state:
                setattr(member, _UPDATE_COUNT, int(state[prefix + _UPDATE_COUNT]))
            # torchmetrics caches its last compute(): drop it so the restored states are used.
            if hasattr(member, "_computed"):
                member._computed = None


class TorchMetricsBatchMetric(BatchMetric):
    """Uses a torchmetrics-like object's forward (its value on one batch) as a batch metric.

    The object is reset after each batch: the loop averages the batch values itself, and a metric with
    list states would otherwise grow for the whole run.

    >>> import torchmetrics
    >>> metric = TorchMetricsBatchMetric(torchmetrics.MeanAbsoluteError())
    >>> metric.names, metric(torch.tensor([1.0, 3.0]), torch.tensor([0.0, 0.0]))
    (('mean_absolute_error',), tensor(2.))
    """

    def __init__(self, metric: Any, names: str | Sequence[str] | None = None) -> None:
        if not (is_torchmetrics_like(metric) and callable(metric)):
            raise TypeError(
                "`metric` must be callable and have update(), compute() and reset() methods, like a "
                f"torchmetrics Metric. Received: metric={metric!r} (type {type(metric).__name__})."
            )
        default = snake_case(type(metric).__name__)
        super().__init__(metric, default if names is None else names, getattr(metric, "higher_is_better", None))

    def __call__(self, y_pred: Any, y_true: Any) -> torch.Tensor:
        """Returns the metric's value on this batch alone."""
        value = self.fn(y_pred, y_true)
        self.fn.reset()
        return value

    def to(self, device: torch.device | str) -> TorchMetricsBatchMetric:
        """Moves the wrapped metric to ``device``."""
        if callable(getattr(self.fn, "to", None)):
            self.fn.to(device)
        return self
