"""Argument checks and small adapters shared by the ``Model`` API modules."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch.utils.data import Dataset, TensorDataset

from trainwell.data import IterableBatches
from trainwell.loop import source_length
from trainwell.utils import numpy_to_torch

__all__ = ["dataset_argument", "first_of_each", "iterable_argument", "pair_argument", "tensor_dataset"]


def pair_argument(data: Any) -> tuple[Any, Any]:
    """Unpacks ``validation_data=(x_val, y_val)``, explaining any other shape."""
    if isinstance(data, (tuple, list)) and len(data) == 2:
        return data[0], data[1]
    raise ValueError(
        f"`validation_data` must be a pair (x_val, y_val). Received: {type(data).__name__}"
        + (f" of length {len(data)}" if isinstance(data, (tuple, list)) else "")
        + "."
    )


def tensor_dataset(x: Any, *rest: Any) -> TensorDataset:
    """A ``TensorDataset`` over in-memory arrays, for the ``dataloader_kwargs`` path of ``fit``/``evaluate``."""
    tensors = [numpy_to_torch(item) for item in (x, *rest)]
    if not all(isinstance(tensor, torch.Tensor) for tensor in tensors):
        raise TypeError("`dataloader_kwargs` with in-memory data needs plain tensors or arrays for x and y.")
    return TensorDataset(*tensors)


def first_of_each(loader: Iterable[Any]) -> Iterable[Any]:
    """Re-iterable view of a loader of 1-tuples (a ``TensorDataset`` of inputs) yielding the inputs alone."""

    class FirstElements:
        def __len__(self) -> int:
            return len(loader)  # type: ignore[arg-type]

        def __iter__(self) -> Any:
            return (batch[0] for batch in loader)

    return FirstElements()


def dataset_argument(dataset: Any, argument: str) -> Dataset[Any]:
    """Checks that ``argument`` is a map-style dataset."""
    if not isinstance(dataset, Dataset) and not hasattr(dataset, "__getitem__"):
        raise TypeError(
            f"`{argument}` must be a torch.utils.data.Dataset (or support indexing and len). "
            f"Received: {argument} of type {type(dataset).__name__}."
        )
    return dataset


def iterable_argument(source: Any, steps: int | None, argument: str, steps_argument: str) -> IterableBatches:
    """Wraps a training or validation iterable, refusing one whose epochs would have no end."""
    batches = IterableBatches(source, steps, argument)
    if steps is None and source_length(batches) is None:
        raise ValueError(
            f"`{argument}` has no len() (a plain generator), so an epoch has no end. Pass "
            f"`{steps_argument}=N` to set the number of batches per epoch, or give a DataLoader or a list."
        )
    return batches
