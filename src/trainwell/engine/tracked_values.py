"""The tracker's values turned into what it reports: accumulators, converted metric values, dicts of floats."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from trainwell.metrics.base import BatchMetric
from trainwell.metrics.values import as_values
from trainwell.utils.tensors import torch_apply

__all__ = ["accumulator_dtype", "accumulator_like", "converted", "detached", "expand"]


def detached(value: Any) -> Any:
    """A computed value that the metric's reset cannot change (compute may return a state tensor itself)."""
    return torch_apply(value, torch.Tensor.clone)


def accumulator_dtype(value: torch.Tensor) -> torch.dtype:
    """The dtype of sums of values like ``value``: float64 where the device has it."""
    # float64 keeps sums over millions of batches exact to float32 precision; MPS has no float64.
    return torch.float32 if value.device.type == "mps" else torch.float64


def accumulator_like(value: torch.Tensor) -> torch.Tensor:
    """A zero sum shaped like ``value``, in :func:`accumulator_dtype`."""
    return torch.zeros(value.shape, dtype=accumulator_dtype(value), device=value.device)


def expand(names: Sequence[Sequence[str]], values: Sequence[torch.Tensor]) -> dict[str, float]:
    """Turns per-metric tensors (scalars or 1-D) into ``{name: float}`` with one host transfer per device."""
    if not values:
        return {}
    if all(value.device.type == "cpu" for value in values):
        # On the host, reading each value costs less than the kernels that would gather them into one.
        flat: list[float] = []
        for value in values:
            numbers = value.tolist() if value.dim() < 2 else value.reshape(-1).tolist()
            flat.extend(map(float, numbers) if isinstance(numbers, list) else (float(numbers),))
        return _named(names, flat)
    if len({value.device for value in values}) > 1:
        # Values a metric computed on the host (Python numbers) beside device tensors: read each device once.
        values = [value.cpu() for value in values]
    flat = torch.cat([value.detach().reshape(-1).to(torch.float64) for value in values]).tolist()
    return _named(names, flat)


def _named(names: Sequence[Sequence[str]], flat: list[float]) -> dict[str, float]:
    keys = [name for group in names for name in group]
    if len(keys) != len(flat):
        raise ValueError(
            f"Metrics returned {len(flat)} values for the {len(keys)} names {keys}; a metric must return "
            "a scalar, or a 1-D tensor with one value per name."
        )
    return dict(zip(keys, flat))


def converted(metric: BatchMetric) -> Any:
    """``metric``'s call, its value (a number, list, dict...) turned into one tensor in the order of its names."""
    names = metric.names

    def produce(y_pred: Any, y_true: Any) -> torch.Tensor:
        return as_values(metric(y_pred, y_true), names)

    return produce
