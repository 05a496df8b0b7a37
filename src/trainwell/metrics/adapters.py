"""Adapters from metric objects (``update`` / ``compute`` / ``reset``) to the loop's two metric contracts.

The objects are trainwell's (and Poutyne's) :class:`~trainwell.metrics.metric.Metric`, torchmetrics
``Metric`` and ``MetricCollection`` objects, or anything else with the three methods. Nothing here imports
torchmetrics: the objects are duck-typed, so ``import trainwell`` stays light and torchmetrics remains an
optional dependency.

* :class:`EpochMetricAdapter` makes such an object an epoch metric: ``update`` per batch, ``compute`` at
  the end of the phase.
* :class:`BatchMetricAdapter` makes it a batch metric: its forward gives the batch logs (and updates its
  state), and the phase's value is ``compute()`` on the whole phase, as Poutyne computes it.

Both behave as the object they wrap: an attribute they do not have is read from it (``adapter.average``).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from trainwell.metrics.base import BatchMetric, EpochMetric, check_names
from trainwell.metrics.metric import Metric
from trainwell.metrics.naming import camel_to_snake, get_names_of_metric
from trainwell.metrics.values import as_values

__all__ = [
    "BatchMetricAdapter",
    "EpochMetricAdapter",
    "TorchMetricsBatchMetric",
    "TorchMetricsEpochMetric",
    "is_stateful_metric",
    "is_torchmetrics_like",
    "snake_case",
]

# A saved torchmetrics state: "<member>.<state>" keys; this one records how many updates were made.
_UPDATE_COUNT = "_update_count"

snake_case = camel_to_snake  # the name this module gave it first


def is_torchmetrics_like(obj: object) -> bool:
    """Whether ``obj`` follows the torchmetrics protocol (``update``, ``compute`` and ``reset`` methods).

    >>> is_torchmetrics_like(len)
    False
    """
    return all(callable(getattr(obj, method, None)) for method in ("update", "compute", "reset"))


def is_stateful_metric(obj: object) -> bool:
    """Whether ``obj`` is a module whose call updates a state that ``compute()`` reads (a Metric object).

    Poutyne's rule: an ``nn.Module`` with ``compute`` and ``reset``; anything else callable is a plain
    function averaged over the batches.

    >>> from trainwell.metrics import F1
    >>> is_stateful_metric(F1()), is_stateful_metric(torch.nn.MSELoss())
    (True, False)
    """
    return isinstance(obj, nn.Module) and all(callable(getattr(obj, name, None)) for name in ("compute", "reset"))


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
    """A metric's ``higher_is_better``; for a torchmetrics collection, its members' in key order."""
    value = getattr(metric, "higher_is_better", None)
    if isinstance(value, (bool, tuple)):
        return value
    members = _members(metric)
    if len(members) > 1 or (members and members[0][0]):
        return tuple(getattr(member, "higher_is_better", None) for _, member in members)
    return None


def _default_names(metric: Any) -> str | Sequence[str]:
    keys = getattr(metric, "keys", None)
    if callable(keys) and not isinstance(metric, Metric):  # a MetricCollection: one name per member
        return list(keys())
    names, _ = get_names_of_metric(metric)
    return names


class _Delegating:
    """Reads the attributes an adapter lacks from the object it wraps (``self.metric``)."""

    metric: Any

    def __getattr__(self, name: str) -> Any:
        # Only reached for attributes the adapter lacks; never during copy/pickle, before `metric` is set.
        if name.startswith("__") or "metric" not in self.__dict__:
            raise AttributeError(name)
        return getattr(self.__dict__["metric"], name)


class EpochMetricAdapter(_Delegating, EpochMetric):
    """Wraps an object with ``update``, ``compute`` and ``reset`` as an :class:`EpochMetric`.

    Args:
        metric: a trainwell or Poutyne ``Metric``, a torchmetrics ``Metric`` or ``MetricCollection``, or
            any object with the three methods. ``compute()`` may return a number, a tensor, an array, a
            list, a tuple or a dict (by name; a collection's dict in the order of its keys).
        names: the log keys; default: a collection's keys, else the metric's ``__name__``, else its class
            name in snake case (``MulticlassF1Score`` -> ``multiclass_f1_score``).

    Checkpoints hold a torchmetrics object's states (list states concatenated), a trainwell ``Metric``'s
    :meth:`~trainwell.metrics.metric.Metric.state_tensors`, or another module's ``state_dict()``.

    >>> import torchmetrics
    >>> metric = EpochMetricAdapter(torchmetrics.MeanSquaredError())
    >>> metric.update(torch.tensor([1.0, 3.0]), torch.tensor([0.0, 0.0]))
    >>> metric.names, metric.compute()
    (('mean_squared_error',), tensor(5.))
    """

    def __init__(self, metric: Any, names: str | Sequence[str] | None = None) -> None:
        super().__init__()
        if not is_torchmetrics_like(metric):
            raise TypeError(
                "`metric` must have update(), compute() and reset() methods, like a torchmetrics Metric. "
                f"Received: metric={metric!r} (type {type(metric).__name__})."
            )
        self.metric = metric
        self.names = check_names(_default_names(metric) if names is None else names, "names")
        self.higher_is_better = _declared_direction(metric)
        # A torchmetrics Metric gathers its states from every process inside compute() when a process group
        # exists; trainwell must not merge them a second time.
        self.syncs_itself = bool(_members(metric))

    def update(self, y_pred: Any, y_true: Any) -> None:
        """Forwards the batch to the wrapped metric's ``update``."""
        self.metric.update(y_pred, y_true)

    def compute(self) -> torch.Tensor:
        """Returns the wrapped metric's value: a scalar tensor, or one value per name."""
        # The hook only where a class overrides it: otherwise compute() itself is called, as Poutyne
        # does (a Mock wrapping a metric then records the call its test expects).
        overridden = inspect.getattr_static(type(self.metric), "compute_on_device", None)
        if overridden is not None and overridden is not Metric.compute_on_device:
            value = self.metric.compute_on_device()
        else:
            value = self.metric.compute()
        if isinstance(value, Mapping) and not set(self.names) <= set(value):
            if len(value) != len(self.names):
                raise RuntimeError(
                    f"{type(self.metric).__name__}.compute() returned {len(value)} values "
                    f"({', '.join(map(str, value))}) for {len(self.names)} names {self.names}; "
                    "pass one name per value with names=[...]."
                )
            value = list(value.values())  # a renamed collection: its values in order
        return as_values(value, self.names)

    def reset(self) -> None:
        """Resets the wrapped metric."""
        self.metric.reset()

    def to(self, device: torch.device | str) -> EpochMetricAdapter:
        """Moves the wrapped metric (and its states) to ``device``."""
        if callable(getattr(self.metric, "to", None)):
            self.metric.to(device)
        return self

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Returns copies of the wrapped metric's states."""
        if isinstance(self.metric, Metric):
            return self.metric.state_tensors()
        members = _members(self.metric)
        if not members:
            state_dict = getattr(self.metric, "state_dict", None)
            return {key: value.detach().clone() for key, value in state_dict().items()} if callable(state_dict) else {}
        state: dict[str, torch.Tensor] = {}
        for prefix, member in members:
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

    def merge_states(self, states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        """Combines the states of several processes: the wrapped metric's own rule, else sums."""
        merge = getattr(self.metric, "merge_states", None)
        return merge(states) if callable(merge) else super().merge_states(states)

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Restores states saved by :meth:`state_dict` into the wrapped metric."""
        if isinstance(self.metric, Metric):
            self.metric.load_state_tensors(state)
            return
        members = _members(self.metric)
        if not members:
            if state and callable(getattr(self.metric, "load_state_dict", None)):
                self.metric.load_state_dict(state)
            return
        for prefix, member in members:
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

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.metric!r}, names={self.names})"


class BatchMetricAdapter(_Delegating, BatchMetric):
    """Uses a metric object as a batch metric: its forward per batch, its ``compute()`` for the phase.

    Each call ``metric(y_pred, y_true)`` adds the batch to the object's state and returns the batch's
    value (the batch logs); the phase's logged value is ``compute()`` on the whole phase (exact, where an
    average of batch values would not be: an AUROC, an R²...). The loop resets the object before each
    phase and saves its state in mid-epoch checkpoints, through :attr:`state`.

    >>> import torchmetrics
    >>> metric = BatchMetricAdapter(torchmetrics.MeanAbsoluteError())
    >>> metric.names, metric(torch.tensor([1.0, 3.0]), torch.tensor([0.0, 0.0]))
    (('mean_absolute_error',), tensor(2.))
    >>> _ = metric(torch.tensor([0.0]), torch.tensor([0.0]))
    >>> metric.state.compute()
    tensor(1.3333)
    """

    def __init__(self, metric: Any, names: str | Sequence[str] | None = None) -> None:
        if not (callable(metric) and callable(getattr(metric, "compute", None)) and callable(metric.reset)):
            raise TypeError(
                "`metric` must be callable and have compute() and reset() methods, like a trainwell or "
                f"torchmetrics Metric. Received: metric={metric!r} (type {type(metric).__name__})."
            )
        names = check_names(_default_names(metric) if names is None else names, "names")
        state = EpochMetricAdapter(metric if is_torchmetrics_like(metric) else _NoUpdate(metric), names)
        super().__init__(metric, names, _declared_direction(metric), state=state)
        self.metric = metric

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.metric!r}, names={self.names})"


class _NoUpdate:
    """A batch-only metric object (forward, compute, reset, no update) seen through the epoch protocol."""

    def __init__(self, metric: Any) -> None:
        self.metric = metric

    def update(self, y_pred: Any, y_true: Any) -> None:
        raise NotImplementedError(f"{type(self.metric).__name__} has no update(); it is updated by its forward.")

    def compute(self) -> Any:
        return self.metric.compute()

    def reset(self) -> None:
        self.metric.reset()

    def to(self, device: torch.device | str) -> Any:
        return self.metric.to(device) if callable(getattr(self.metric, "to", None)) else self.metric


# The names of the first versions, which wrapped torchmetrics objects only.
TorchMetricsEpochMetric = EpochMetricAdapter
TorchMetricsBatchMetric = BatchMetricAdapter
