"""A per-batch metric function used as an epoch metric: its batch values averaged over the epoch.

Poutyne calls such a metric decomposable: ``f(y_pred, y_true)`` in ``epoch_metrics`` (or ``'acc'``, or a
loss name) is logged as the mean of its batch values weighted by batch size. The sums stay on the device.
A trainwell batch metric that counts what it measures (accuracy: hits and counted targets) accumulates
its counts instead, so the epoch value is exact even when batches count different numbers of targets.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from trainwell.metrics.base import BatchMetric, EpochMetric
from trainwell.metrics.values import as_values

__all__ = ["AveragedEpochMetric", "batch_size"]


def batch_size(y_pred: Any, y_true: Any) -> int:
    """The number of samples in a batch: the length of the first tensor or array found, else 1.

    >>> batch_size(torch.zeros(3, 2), torch.zeros(3)), batch_size((torch.zeros(4),), None)
    (3, 4)
    """
    for value in (y_pred, y_true):
        if isinstance(value, (torch.Tensor, np.ndarray)) and value.ndim > 0:
            return len(value)
    for value in (y_pred, y_true):
        items = list(value.values()) if isinstance(value, Mapping) else value
        if isinstance(items, (tuple, list)) and items:
            first = items[0]
            if isinstance(first, (torch.Tensor, np.ndarray)) and first.ndim > 0:
                return len(first)
    return 1


class AveragedEpochMetric(EpochMetric):
    """A :class:`BatchMetric` averaged over the epoch, weighted by batch size (counted exactly when it can).

    Args:
        metric: the batch metric; with ``counts``, the epoch value is ``scale * sum(numerators) /
            sum(denominators)``, else the batch values' mean weighted by :func:`batch_size`.

    >>> from trainwell.metrics import Accuracy
    >>> metric = AveragedEpochMetric(Accuracy())
    >>> metric.update(torch.tensor([[0.0, 1.0], [1.0, 0.0]]), torch.tensor([1, 1]))
    >>> metric.update(torch.tensor([[0.0, 1.0]]), torch.tensor([1]))
    >>> metric.names, metric.compute()
    (('acc',), tensor(66.6667))
    """

    def __init__(self, metric: BatchMetric) -> None:
        super().__init__()
        self.metric = metric
        self.names = metric.names
        self.higher_is_better = metric.higher_is_better

    def update(self, y_pred: Any, y_true: Any) -> None:
        """Adds the batch's value (or counts) to the sums, on the device."""
        if self.metric.counts is not None:
            value = self.metric.counts(y_pred, y_true)
        else:
            size = batch_size(y_pred, y_true)
            value = as_values(self.metric(y_pred, y_true), self.names).detach()
            # new_full fills on the value's device: no host-to-device copy, no sync.
            self._add("count", value.new_full((), size))
            value = value * size
        self._add("sums", value.detach())

    def _add(self, key: str, value: torch.Tensor) -> None:
        total = self._state.get(key)
        if total is None:
            # float64 keeps sums over long epochs exact; MPS has no float64.
            dtype = torch.float32 if value.device.type == "mps" else torch.float64
            self._state[key] = value.to(dtype).clone()
        else:
            total += value.to(total.device, total.dtype)

    def compute(self) -> torch.Tensor:
        """The epoch's average (0 before any batch)."""
        sums = self._state.get("sums")
        if sums is None:
            return torch.zeros(()) if len(self.names) == 1 else torch.zeros(len(self.names))
        if self.metric.counts is not None:
            value = sums[0] * self.metric.scale / sums[1].clamp_min(1)
        else:
            value = sums / self._state["count"].to(sums.device).clamp_min(1)
        return value.to(torch.float32)

    def reset(self) -> None:
        """Forgets the sums (their shape and device are learned again from the next batch)."""
        self._state.clear()

    def to(self, device: torch.device | str) -> AveragedEpochMetric:
        """Moves the wrapped metric and the sums to ``device``."""
        self.metric.to(device)
        return super().to(device)  # type: ignore[return-value]

    def __repr__(self) -> str:
        return f"AveragedEpochMetric({self.metric!r})"
