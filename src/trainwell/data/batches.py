"""What a batch is: nested tensors, the number of samples in it, its (x, y) parts, moving it to a device.

Everything here works on any nesting of tuples, lists and dicts of tensors, so that multi-input and
multi-output networks go through the same code as single tensors.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from torch.nn.utils.rnn import PackedSequence

from trainwell.utils.tensors import numpy_to_torch

__all__ = ["batch_size_of", "concatenate", "count_samples", "flatten", "split_batch", "to_device"]


def flatten(obj: Any, argument: str = "data") -> tuple[list[torch.Tensor], Callable[[list[torch.Tensor]], Any]]:
    """Splits nested tuples/lists/dicts into their tensor leaves and a function rebuilding the structure.

    Done once per data source so that slicing a batch is a plain loop over leaves. ``argument`` is the
    user's argument that holds ``obj``, named in the error for anything that is not a tensor.

    >>> leaves, rebuild = flatten((torch.zeros(2), {'a': torch.ones(2)}))
    >>> rebuild([leaf[:1] for leaf in leaves])
    (tensor([0.]), {'a': tensor([1.])})
    """
    if isinstance(obj, torch.Tensor):
        return [obj], lambda leaves: leaves[0]
    if isinstance(obj, (tuple, list)):
        parts = [flatten(item, argument) for item in obj]
        return _join(parts, lambda items: type(obj)(items) if isinstance(obj, list) else tuple(items))
    if isinstance(obj, Mapping):
        keys = list(obj.keys())
        parts = [flatten(obj[key], argument) for key in keys]
        return _join(parts, lambda items: dict(zip(keys, items)))
    raise TypeError(
        f"`{argument}` must hold tensors or NumPy arrays, possibly nested in tuples, lists or dicts. "
        f"Received: an element of type {type(obj).__name__} in {argument}. Convert it with torch.as_tensor(...)."
    )


def _join(
    parts: list[tuple[list[torch.Tensor], Callable[[list[torch.Tensor]], Any]]],
    build: Callable[[list[Any]], Any],
) -> tuple[list[torch.Tensor], Callable[[list[torch.Tensor]], Any]]:
    leaves: list[torch.Tensor] = []
    bounds: list[tuple[int, int, Callable[[list[torch.Tensor]], Any]]] = []
    for part_leaves, rebuild in parts:
        bounds.append((len(leaves), len(leaves) + len(part_leaves), rebuild))
        leaves.extend(part_leaves)
    return leaves, lambda flat: build([rebuild(flat[start:end]) for start, end, rebuild in bounds])


def count_samples(leaves: list[torch.Tensor], argument: str) -> int:
    """The number of samples shared by every leaf of ``argument`` (their first dimension), or an error."""
    sizes = {len(leaf) if leaf.dim() > 0 else -1 for leaf in leaves}
    if -1 in sizes:
        raise ValueError(f"`{argument}` holds a 0-dimensional tensor; every tensor needs a sample dimension.")
    if len(sizes) != 1:
        raise ValueError(
            f"Every tensor in `{argument}` must have the same number of samples (first dimension). "
            f"Received sizes {sorted(sizes)}."
        )
    return sizes.pop()


def split_batch(batch: Any, argument: str = "generator") -> tuple[Any, Any]:
    """Splits a ``(x, y)`` batch, with an error that shows what was received otherwise.

    >>> split_batch((torch.zeros(2), torch.ones(2)))
    (tensor([0., 0.]), tensor([1., 1.]))
    """
    if isinstance(batch, (tuple, list)) and len(batch) == 2:
        return batch[0], batch[1]
    kind = (
        f"{type(batch).__name__} of length {len(batch)}" if isinstance(batch, (tuple, list)) else type(batch).__name__
    )
    raise ValueError(
        f"Each batch of `{argument}` must be a pair (x, y). Received a {kind}. Yield (inputs, targets); "
        "several inputs go in a tuple: ((x1, x2), y)."
    )


def batch_size_of(x: Any, y: Any = None) -> int:
    """The number of samples in a batch: the first dimension of the first tensor found in ``x``, else ``y``.

    Used to weight batch averages, so that a smaller last batch counts for less. A ``PackedSequence``
    counts its sequences; a dict with an integer ``'batch_size'`` entry gives it.

    >>> batch_size_of((torch.zeros(3, 2), torch.zeros(3)), torch.zeros(3))
    3
    >>> batch_size_of({'batch_size': 5, 'ids': torch.zeros(40)})
    5
    """
    if isinstance(x, torch.Tensor) and x.dim() > 0:
        return len(x)
    for obj in (x, y):
        if isinstance(obj, Mapping) and isinstance(obj.get("batch_size"), numbers.Integral):
            return int(obj["batch_size"])
    for obj in (x, y):
        found = _first_sized(obj)
        if found is not None:
            return found
    return 1


def _first_sized(obj: Any) -> int | None:
    if isinstance(obj, (torch.Tensor, np.ndarray)):
        return len(obj) if obj.ndim > 0 else None
    if isinstance(obj, PackedSequence):
        return int(obj.batch_sizes[0])  # batch_sizes lives on the CPU: no device read
    if isinstance(obj, (tuple, list)):
        for item in obj:
            found = _first_sized(item)
            if found is not None:
                return found
    if isinstance(obj, Mapping):
        for item in obj.values():
            found = _first_sized(item)
            if found is not None:
                return found
    return None


def to_device(batch: Any, device: torch.device | None) -> Any:
    """Moves a batch to ``device`` (non-blocking: only pinned host memory overlaps the copy).

    NumPy arrays met in generator batches are converted first. ``device=None`` leaves the batch as is.

    >>> to_device((np.zeros(1), torch.ones(1)), torch.device('cpu'))
    (tensor([0.], dtype=torch.float64), tensor([1.]))
    """
    if isinstance(batch, torch.Tensor):  # the common case, without walking a structure
        if device is None or batch.device == device:
            return batch
        return batch.to(device, non_blocking=True)
    batch = numpy_to_torch(batch)
    if device is None:
        return batch
    return _moved(batch, device)


def _moved(obj: Any, device: torch.device) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj if obj.device == device else obj.to(device, non_blocking=True)
    if isinstance(obj, PackedSequence):
        # Its batch_sizes must stay on the CPU; the data and the index tensors move.
        indices = [
            None if index is None else _moved(index, device) for index in (obj.sorted_indices, obj.unsorted_indices)
        ]
        return obj._replace(data=_moved(obj.data, device), sorted_indices=indices[0], unsorted_indices=indices[1])
    if isinstance(obj, tuple):
        items = [_moved(item, device) for item in obj]
        return type(obj)(*items) if hasattr(obj, "_fields") else tuple(items)
    if isinstance(obj, list):
        return [_moved(item, device) for item in obj]
    if isinstance(obj, Mapping):
        return {key: _moved(value, device) for key, value in obj.items()}
    return obj


def concatenate(parts: list[Any]) -> Any:
    """Concatenates per-batch outputs along the first dimension, through tuples, lists and dicts.

    >>> concatenate([(torch.zeros(2), {'a': torch.ones(1)}), (torch.zeros(1), {'a': torch.ones(2)})])
    (tensor([0., 0., 0.]), {'a': tensor([1., 1., 1.])})
    """
    first = parts[0]
    if isinstance(first, torch.Tensor):
        return torch.cat(parts) if first.dim() > 0 else torch.stack(parts)
    if isinstance(first, tuple):
        return tuple(concatenate([part[index] for part in parts]) for index in range(len(first)))
    if isinstance(first, list):
        return [concatenate([part[index] for part in parts]) for index in range(len(first))]
    if isinstance(first, dict):
        return {key: concatenate([part[key] for part in parts]) for key in first}
    return parts
