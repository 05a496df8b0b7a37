"""DataLoaders trainwell builds: over a user's ``Dataset``, resumable mid-epoch, sharded under torchrun.

:func:`dataset_loader` is the loader of ``fit_dataset`` and friends; its batch sampler
(:class:`SkippableBatchSampler`) can start an epoch after some batches without loading them.
:func:`sharded_loader` rebuilds a user's plain ``DataLoader`` over a sharded sampler under torchrun.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Sized
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

__all__ = ["SkippableBatchSampler", "dataset_loader", "sharded_loader"]


class SkippableBatchSampler(BatchSampler):
    """A ``BatchSampler`` whose next epoch can start after some batches, with the same sample order.

    The sampler is iterated exactly as usual (a shuffle draws its permutation from the same random
    state), and the indices of the skipped batches are dropped before any sample is loaded: a resumed
    epoch over a ``Dataset`` continues at its next batch without reading the batches already trained.
    """

    def __init__(self, sampler: Sampler[int], batch_size: int, drop_last: bool) -> None:
        super().__init__(sampler, batch_size, drop_last)
        self._skip = 0

    def skip_next_epoch(self, batches: int) -> None:
        """Leaves out the next epoch's first ``batches`` batches."""
        self._skip = batches

    def __iter__(self) -> Iterator[list[int]]:
        skip, self._skip = self._skip, 0
        for index, batch in enumerate(super().__iter__()):
            if index >= skip:
                yield batch


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
        # The same batches as DataLoader(shuffle=..., batch_size=...) would make, but resumable mid-epoch.
        shuffled = kwargs.pop("shuffle")
        sized = cast(Sized, dataset)  # a map-style dataset: dataset_argument checked it has a length
        order: Sampler[int] = (
            RandomSampler(sized, generator=kwargs.get("generator")) if shuffled else SequentialSampler(sized)
        )
        # Sharded under torchrun (a no-op otherwise): training shards padded, evaluation ones not.
        kwargs["batch_sampler"] = SkippableBatchSampler(
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
    plain = type(batch_sampler) in (BatchSampler, SkippableBatchSampler)
    if isinstance(source, DataLoader) and plain and isinstance(sampler, (RandomSampler, SequentialSampler)):
        assert batch_sampler is not None  # for mypy: plain implies it
        even = isinstance(sampler, RandomSampler)
        options: dict[str, Any] = {
            "num_workers": source.num_workers,
            "collate_fn": source.collate_fn,
            "pin_memory": source.pin_memory,
            "timeout": source.timeout,
            "worker_init_fn": source.worker_init_fn,
            "multiprocessing_context": source.multiprocessing_context,
            "generator": source.generator,
            "persistent_workers": source.persistent_workers,
            "pin_memory_device": source.pin_memory_device,
        }
        if source.num_workers > 0:
            options["prefetch_factor"] = source.prefetch_factor
        sharded = SkippableBatchSampler(
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
