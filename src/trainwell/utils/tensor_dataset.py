"""``TensorDataset``: a dataset over tensors or arrays nested in tuples and lists (Poutyne's version)."""

from __future__ import annotations

from typing import Any

from torch.utils.data import Dataset

__all__ = ["TensorDataset"]


def _length(structure: Any, path: str) -> int:
    if isinstance(structure, (list, tuple)):
        if not structure:
            raise ValueError(f"TensorDataset: {path} is an empty {type(structure).__name__}; give it tensors.")
        lengths = [_length(item, f"{path}[{index}]") for index, item in enumerate(structure)]
        if any(length != lengths[0] for length in lengths):
            raise ValueError(
                f"TensorDataset: the tensors in {path} have different lengths {lengths}; every tensor must hold "
                "one row per sample."
            )
        return lengths[0]
    try:
        return len(structure)
    except TypeError:
        raise TypeError(
            f"TensorDataset: {path} must be a tensor, an array, or a tuple or list of them. Received: "
            f"{type(structure).__name__}."
        ) from None


def _row(structure: Any, index: Any) -> Any:
    if isinstance(structure, (list, tuple)):
        return type(structure)(_row(item, index) for item in structure)
    return structure[index]


class TensorDataset(Dataset[Any]):
    """Samples taken along the first dimension of tensors (or NumPy arrays) nested in tuples and lists.

    Unlike ``torch.utils.data.TensorDataset``, an argument may itself be a tuple or list of tensors
    (several inputs, say): each sample keeps the same nesting.

    Args:
        *tensors: tensors, arrays, or tuples and lists of them, all with the same first dimension.

    >>> import torch
    >>> dataset = TensorDataset((torch.zeros(4, 2), torch.ones(4)), torch.arange(4))
    >>> len(dataset), dataset[1][1]
    (4, tensor(1))
    >>> [part.shape for part in dataset[1][0]]
    [torch.Size([2]), torch.Size([])]
    """

    def __init__(self, *tensors: Any) -> None:
        super().__init__()
        if not tensors:
            raise ValueError("TensorDataset needs at least one tensor. Received: no argument.")
        self.tensors = tensors
        self._length = _length(tensors, "tensors")

    def __getitem__(self, index: Any) -> Any:
        return _row(self.tensors, index)

    def __len__(self) -> int:
        return self._length
