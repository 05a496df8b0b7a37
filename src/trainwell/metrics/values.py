"""User metric values (numbers, tensors, arrays, sequences, mappings) -> one tensor in the order of the names.

A metric may return its value in any of the forms Poutyne accepts: a Python number, a 0-d or 1-element
tensor, a NumPy array, a list or tuple with one value per name, or a mapping keyed by the names. The loop
wants one tensor per metric (a scalar, or 1-D with one value per name), so every value goes through
:func:`as_values`. Nothing here reads a device tensor back to the host: tensors stay where they are, and
Python numbers become CPU tensors (they are on the host already).
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

__all__ = ["as_values"]


def _one(value: Any, names: Sequence[str]) -> torch.Tensor:
    """One value (a number or a tensor-like) as a tensor, without moving it off its device."""
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, (np.ndarray, np.generic)):
        return torch.as_tensor(np.asarray(value))
    if isinstance(value, numbers.Real):
        # float64: an int or float from the host keeps every digit until the logs read it.
        return torch.tensor(float(value), dtype=torch.float64)
    raise TypeError(
        f"The metric logged as {', '.join(names)} returned {value!r} (type {type(value).__name__}). A metric "
        "must return a number, a tensor, a NumPy array, or a list, tuple or dict with one number per name."
    )


def as_values(value: Any, names: Sequence[str]) -> torch.Tensor:
    """Turns what a metric returned into a scalar tensor (one name) or a 1-D tensor (one value per name).

    Args:
        value: a number, a tensor or NumPy array (0-d, or one element per name), a list or tuple of
            numbers or 0-d tensors, or a mapping whose keys are ``names``.
        names: the metric's log keys, in order.

    Raises:
        TypeError: the value has an unsupported type.
        KeyError: a mapping lacks one of the names.
        ValueError: the number of values is not the number of names.

    >>> as_values(3, ('a',))
    tensor(3., dtype=torch.float64)
    >>> as_values({'b': 2, 'a': 1}, ('a', 'b'))
    tensor([1., 2.], dtype=torch.float64)
    >>> as_values(torch.tensor([0.5]), ('a',))
    tensor(0.5000)
    """
    if isinstance(value, torch.Tensor) and value.dim() == 0 and len(names) == 1:
        return value  # the common case (a loss, a mean), as it is
    if isinstance(value, Mapping):
        missing = [name for name in names if name not in value]
        if missing:
            raise KeyError(
                f"The metric returned a dict with the keys {sorted(map(str, value))}, but it is logged as "
                f"{list(names)}: the keys must be the names. Name the metric with a ({tuple(value)!r}, metric) pair."
            )
        value = [value[name] for name in names]
    if isinstance(value, (list, tuple)):
        parts = [_one(item, names) for item in value]
        if all(not isinstance(item, torch.Tensor) for item in value):
            tensor = torch.stack(parts)  # all on the CPU: one tensor of host numbers
        else:
            device = next(part.device for part, item in zip(parts, value) if isinstance(item, torch.Tensor))
            tensor = torch.stack([part.reshape(()).to(device) for part in parts])
    else:
        tensor = _one(value, names)
    if tensor.numel() != len(names):
        raise ValueError(
            f"The metric logged as {list(names)} returned {tensor.numel()} value(s) for {len(names)} name(s). "
            "Give one name per value with a (names, metric) pair, or return one value per name."
        )
    return tensor.reshape(()) if len(names) == 1 else tensor.reshape(-1)
