"""Small tensor helpers used across trainwell and exported to users.

Everything here walks nested Python containers (tuples, lists, dicts) so that multi-input and
multi-output networks are handled by the same code as single tensors.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from torch.nn.utils.rnn import PackedSequence

__all__ = [
    "numpy_to_torch",
    "set_seeds",
    "torch_apply",
    "torch_to",
    "torch_to_numpy",
]


def torch_apply(obj: Any, func: Callable[[torch.Tensor], Any]) -> Any:
    """Applies ``func`` to every tensor inside nested tuples, lists and dicts.

    Containers are rebuilt with the same type (named tuples included); anything else is returned as is.
    A ``PackedSequence`` keeps its ``batch_sizes`` as they are: PyTorch requires them on the CPU, so
    ``func`` (a move to the GPU, say) reaches only its data and index tensors.

    >>> torch_apply({'a': torch.ones(2), 'b': [torch.zeros(1), 3]}, lambda t: t * 2)
    {'a': tensor([2., 2.]), 'b': [tensor([0.]), 3]}
    """
    if isinstance(obj, torch.Tensor):
        return func(obj)
    if isinstance(obj, PackedSequence):
        return _packed_apply(obj, func)
    if isinstance(obj, tuple):
        items = [torch_apply(item, func) for item in obj]
        return type(obj)(*items) if hasattr(obj, "_fields") else tuple(items)
    if isinstance(obj, list):
        return [torch_apply(item, func) for item in obj]
    if isinstance(obj, Mapping):
        return {key: torch_apply(value, func) for key, value in obj.items()}
    return obj


def _packed_apply(sequence: PackedSequence, func: Callable[[torch.Tensor], Any]) -> PackedSequence:
    # Rebuilt field by field (not through PackedSequence(...), which would recompute the unsorted indices).
    fields = [
        value if name == "batch_sizes" or value is None else torch_apply(value, func)
        for name, value in zip(sequence._fields, sequence)
    ]
    return tuple.__new__(type(sequence), fields)


def torch_to(obj: Any, device: torch.device | str, non_blocking: bool = False) -> Any:
    """Moves every tensor inside ``obj`` to ``device``.

    >>> torch_to((torch.ones(1), [torch.zeros(1)]), 'cpu')
    (tensor([1.]), [tensor([0.])])
    """
    return torch_apply(obj, lambda tensor: tensor.to(device, non_blocking=non_blocking))


def torch_to_numpy(obj: Any, copy: bool = False) -> Any:
    """Converts every tensor inside ``obj`` to a NumPy array (detached, on the CPU).

    Args:
        obj: a tensor or nested tuples, lists and dicts of tensors.
        copy: whether to copy the data even when the tensor already lives on the CPU.

    >>> torch_to_numpy([torch.tensor([1, 2])])
    [array([1, 2])]
    """

    def convert(tensor: torch.Tensor) -> np.ndarray:
        array = tensor.detach().cpu().numpy()
        return array.copy() if copy else array

    return torch_apply(obj, convert)


def numpy_to_torch(obj: Any) -> Any:
    """Converts every NumPy array (and NumPy scalar) inside nested containers to a tensor.

    The data is shared with the array when possible (``torch.from_numpy``); non-writable arrays are copied.

    >>> numpy_to_torch({'x': np.arange(3)})
    {'x': tensor([0, 1, 2])}
    """
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(obj if obj.flags.writeable else obj.copy())
    if isinstance(obj, np.generic):
        return torch.as_tensor(obj)
    if isinstance(obj, tuple):
        items = [numpy_to_torch(item) for item in obj]
        return type(obj)(*items) if hasattr(obj, "_fields") else tuple(items)
    if isinstance(obj, list):
        return [numpy_to_torch(item) for item in obj]
    if isinstance(obj, Mapping):
        return {key: numpy_to_torch(value) for key, value in obj.items()}
    return obj


def set_seeds(seed: int) -> None:
    """Seeds Python's, NumPy's and PyTorch's (CPU and every CUDA device) random generators.

    >>> set_seeds(42); a = torch.rand(1); set_seeds(42); bool(torch.equal(a, torch.rand(1)))
    True
    """
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"`seed` must be an int. Received: seed={seed!r} (type {type(seed).__name__}).")
    os.environ["PYTHONHASHSEED"] = str(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device
