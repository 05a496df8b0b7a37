"""The one normaliser: whatever the user hands ``fit*``, ``evaluate*`` and ``predict*`` -> a batch source.

Every public entry of ``Model`` turns its data arguments into a source here, and only here:

* in-memory tensors and arrays (``fit``, ``evaluate``, ``predict``): :func:`tensor_source`;
* a ``Dataset`` (``*_dataset``): :func:`dataset_source`, a ``DataLoader`` that then goes through
  :func:`iterable_source` like any user loader;
* a ``DataLoader``, a list or a generator of batches (``*_generator``): :func:`iterable_source`, and
  :func:`validation_source` for the validation batches of a ``fit``.

The argument checks that belong to data (pairs, datasets) are made on the way, with errors that name
the user's argument.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch.utils.data import Dataset, TensorDataset

from trainwell.data.loaders import dataset_loader
from trainwell.data.sources import IterableBatches, TensorBatches
from trainwell.utils.tensors import numpy_to_torch

__all__ = [
    "dataset_argument",
    "dataset_source",
    "first_of_each",
    "iterable_source",
    "pair_argument",
    "tensor_dataset",
    "tensor_source",
    "validation_source",
]


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


def tensor_source(
    x: Any,
    y: Any,
    *,
    batch_size: int,
    shuffle: bool,
    x_name: str = "x",
    y_name: str = "y",
    dataloader_kwargs: dict[str, Any] | None = None,
) -> TensorBatches | IterableBatches:
    """In-memory ``x`` (and ``y``, None to predict) -> sliced batches, or a DataLoader with ``dataloader_kwargs``.

    >>> source = tensor_source(torch.zeros(5, 2), torch.zeros(5), batch_size=2, shuffle=False)
    >>> [len(x) for x, _ in source]
    [2, 2, 1]
    """
    if dataloader_kwargs is None:
        return TensorBatches(x, y, batch_size=batch_size, shuffle=shuffle, x_name=x_name, y_name=y_name)
    tensors = (x,) if y is None else (x, y)
    loader = dataset_loader(
        tensor_dataset(*tensors), batch_size=batch_size, shuffle=shuffle, dataloader_kwargs=dataloader_kwargs
    )
    return IterableBatches(loader if y is not None else first_of_each(loader), argument=x_name)


def dataset_source(
    dataset: Any,
    argument: str,
    *,
    batch_size: int,
    shuffle: bool,
    pin_memory: bool = False,
    num_workers: int = 0,
    collate_fn: Any = None,
    dataloader_kwargs: dict[str, Any] | None = None,
) -> Any:
    """A map-style ``Dataset`` -> the ``DataLoader`` the ``*_dataset`` methods hand to their ``*_generator``.

    >>> len(dataset_source(TensorDataset(torch.zeros(5)), "dataset", batch_size=2, shuffle=False))
    3
    """
    return dataset_loader(
        dataset_argument(dataset, argument),
        batch_size=batch_size,
        shuffle=shuffle,
        pin_memory=pin_memory,
        num_workers=num_workers,
        collate_fn=collate_fn,
        dataloader_kwargs=dataloader_kwargs,
    )


def iterable_source(source: Any, steps: int | None, argument: str, *, restart: bool = False) -> IterableBatches:
    """An iterable of batches -> a source of ``steps`` batches per epoch (or one pass).

    Without ``steps``, an epoch takes ``len(source)`` batches when the source has a length, else reads
    it until it stops (a plain generator is then used up by the first epoch). ``restart`` begins every
    epoch with a fresh ``iter(source)`` (validation: each epoch evaluates the same batches).

    >>> len(iterable_source([(torch.zeros(1), torch.zeros(1))] * 3, None, "train_generator"))
    3
    """
    return IterableBatches(source, steps, argument, restart=restart)


def validation_source(
    source: Any, validation_steps: int | None, steps_per_epoch: int | None, argument: str
) -> IterableBatches:
    """The validation batches of each epoch, counted as Poutyne counts them.

    ``validation_steps`` batches when given; else ``len(source)``; else, for a source without a length,
    ``steps_per_epoch`` batches when that is given; else one whole pass. Every epoch restarts the source.

    >>> len(validation_source(iter([1, 2, 3]), None, 2, "valid_generator"))
    2
    """
    batches = IterableBatches(source, validation_steps, argument, restart=True)
    if batches.length is None and steps_per_epoch is not None:
        batches = IterableBatches(source, steps_per_epoch, argument, restart=True)
    return batches
