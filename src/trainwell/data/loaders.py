"""DataLoaders trainwell builds: over a user's ``Dataset``, and a user's loader sharded under torchrun.

:func:`dataset_loader` is the loader of ``fit_dataset`` and friends; :func:`sharded_loader` rebuilds a
user's plain ``DataLoader`` over a sharded sampler under torchrun; :func:`loader_options` are the settings
a rebuilt loader keeps. Both are read like any plain loader (:mod:`trainwell.data.loader_reading`), which
is what makes them fast over tensors and resumable mid-epoch without replay.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sized
from typing import Any, cast

from torch.utils.data import (
    BatchSampler,
    DataLoader,
    Dataset,
    DistributedSampler,
    RandomSampler,
    Sampler,
    SequentialSampler,
)

from trainwell import distributed
from trainwell.data.sharding import ShardedSampler

__all__ = ["dataset_loader", "loader_options", "sharded_loader"]


def dataset_loader(
    dataset: Dataset[Any],
    *,
    batch_size: int,
    shuffle: bool,
    num_workers: int = 0,
    collate_fn: Callable[[list[Any]], Any] | None = None,
    dataloader_kwargs: dict[str, Any] | None = None,
    pin_memory: bool = False,
) -> DataLoader[Any]:
    """Wraps a ``Dataset`` in the ``DataLoader`` that ``fit_dataset`` and friends iterate.

    ``dataloader_kwargs`` overrides anything else, as in Poutyne.

    >>> import torch
    >>> loader = dataset_loader(torch.utils.data.TensorDataset(torch.zeros(5)), batch_size=2, shuffle=False)
    >>> len(loader)
    3
    """
    kwargs: dict[str, Any] = {
        "batch_size": batch_size,
        "shuffle": shuffle,
        "num_workers": num_workers,
        "pin_memory": pin_memory,
    }
    if collate_fn is not None:
        kwargs["collate_fn"] = collate_fn
    kwargs.update(dataloader_kwargs or {})
    if not ({"sampler", "batch_sampler"} & kwargs.keys()) and kwargs.get("batch_size") is not None:
        # The same batches as DataLoader(shuffle=..., batch_size=...) would make, sharded under torchrun.
        shuffled = kwargs.pop("shuffle")
        sized = cast(Sized, dataset)  # a map-style dataset: dataset_argument checked it has a length
        order: Sampler[int] = (
            RandomSampler(sized, generator=kwargs.get("generator")) if shuffled else SequentialSampler(sized)
        )
        # Sharded under torchrun (a no-op otherwise): training shards padded, evaluation ones not.
        kwargs["batch_sampler"] = BatchSampler(
            ShardedSampler(order, even=shuffled), kwargs.pop("batch_size"), bool(kwargs.pop("drop_last", False))
        )
    return DataLoader(dataset, **kwargs)


def sharded_loader(source: Any, argument: str) -> Any:
    """Under torchrun: a user's plain ``DataLoader`` rebuilt over a sharded sampler, else ``source`` as it is.

    A loader that batches a map-style dataset with a random or sequential order is rebuilt with the
    same dataset, batch size, collate function and worker settings (shuffled means training: padded
    shards; sequential means evaluation: unpadded). A ``DistributedSampler`` is kept (the loop calls its
    ``set_epoch``). Anything else (an iterable dataset, a custom sampler, a generator) is iterated whole
    by every rank, with a warning: shard it yourself with ``trainwell.distributed.rank()``/``world_size()``.
    """
    batch_sampler = getattr(source, "batch_sampler", None)
    sampler = getattr(batch_sampler, "sampler", None)
    if isinstance(sampler, (ShardedSampler, DistributedSampler)) or isinstance(
        getattr(source, "sampler", None), DistributedSampler
    ):
        return source  # already sharded
    plain = type(batch_sampler) is BatchSampler
    if isinstance(source, DataLoader) and plain and isinstance(sampler, (RandomSampler, SequentialSampler)):
        assert batch_sampler is not None  # for mypy: plain implies it
        even = isinstance(sampler, RandomSampler)
        options = loader_options(source)
        sharded = BatchSampler(
            ShardedSampler(sampler, even=even), batch_sampler.batch_size or 1, batch_sampler.drop_last
        )
        return DataLoader(source.dataset, batch_sampler=sharded, **options)
    if distributed.is_main_process():
        warnings.warn(
            f"`{argument}` ({type(source).__name__}) cannot be sharded between the {distributed.world_size()} "
            "torchrun processes, so every process iterates all of it. Pass a Dataset (fit_dataset) or a "
            "DataLoader over one with shuffle=True/False, use a DistributedSampler, or shard it yourself "
            "with trainwell.distributed.rank() and world_size().",
            stacklevel=4,
        )
    return source


def loader_options(loader: DataLoader[Any]) -> dict[str, Any]:
    """The settings of ``loader`` that a loader rebuilt over another sampler or dataset keeps.

    >>> import torch
    >>> loader_options(DataLoader(torch.utils.data.TensorDataset(torch.zeros(2)), num_workers=0))["num_workers"]
    0
    """
    options: dict[str, Any] = {
        "num_workers": loader.num_workers,
        "collate_fn": loader.collate_fn,
        "pin_memory": loader.pin_memory,
        "timeout": loader.timeout,
        "worker_init_fn": loader.worker_init_fn,
        "multiprocessing_context": loader.multiprocessing_context,
        "generator": loader.generator,
        "persistent_workers": loader.persistent_workers,
        "pin_memory_device": loader.pin_memory_device,
    }
    if loader.num_workers > 0:
        options["prefetch_factor"] = loader.prefetch_factor
    return options
