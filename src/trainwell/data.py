"""Whatever the user hands us -> batches with a known length; moving batches to a device.

Three kinds of sources cover every input the public API accepts:

* :class:`TensorBatches`: in-memory tensors and arrays (``fit(x, y)``). Batches are slices, never a
  per-sample ``Dataset`` + ``collate``: a shuffled epoch costs one gather, then every batch is a view.
* :class:`IterableBatches`: a ``DataLoader``, a generator or any iterable of batches, optionally cycled
  to a fixed number of steps per epoch.
* Datasets become a ``DataLoader`` (:func:`dataset_loader`) and then an :class:`IterableBatches`.

Every source is iterated once per epoch and reports its length (or None when it cannot be known).

Under ``torchrun`` (see :mod:`trainwell.distributed`) in-memory data and the loaders made here are
sharded: every rank orders the data the same way (rank 0's shuffle is broadcast) and takes every W-th
sample, starting at its rank. Global batch i is then split between the ranks, so W ranks with batches of
b train like one process with batches of W*b. Training shards are padded to equal lengths by repeating
the first samples of the order (DistributedDataParallel needs every rank to make the same number of
steps; nothing is repeated when the data divides by W); evaluation shards are not padded, so no sample
is counted twice and rank r's outputs are the samples r, r + W, r + 2W... (see
:func:`trainwell.distributed.interleave`).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sized
from typing import Any, cast

import numpy as np
import torch
from torch.utils.data import (
    BatchSampler,
    DataLoader,
    Dataset,
    RandomSampler,
    Sampler,
    SequentialSampler,
    TensorDataset,
    default_collate,
)

from trainwell import distributed
from trainwell.utils import numpy_to_torch, torch_apply

__all__ = [
    "IterableBatches",
    "ShardedSampler",
    "SkippableBatchSampler",
    "TensorBatches",
    "batch_size_of",
    "dataset_loader",
    "flatten",
    "is_sharded",
    "shard",
    "shard_length",
    "to_device",
]


def shard_length(num_samples: int, even: bool) -> int:
    """How many of ``num_samples`` samples this rank holds (all of them in a single process).

    >>> shard_length(10, even=True)
    10
    """
    ranks = distributed.world_size()
    if even:
        return math.ceil(num_samples / ranks)
    return len(range(distributed.rank(), num_samples, ranks))


def shard(order: torch.Tensor, even: bool) -> torch.Tensor:
    """This rank's part of ``order`` (sample indices): every W-th index, starting at the rank.

    With ``even``, the order is first padded to a multiple of W by repeating its beginning, so every rank
    gets the same number of samples (training); otherwise the first ranks may hold one more (evaluation,
    where nothing may count twice). In a single process ``order`` is returned as it is.

    >>> shard(torch.arange(5), even=True)
    tensor([0, 1, 2, 3, 4])
    """
    ranks = distributed.world_size()
    if ranks == 1:
        return order
    if even and len(order) % ranks:
        missing = ranks - len(order) % ranks
        order = torch.cat([order, order.repeat(math.ceil(missing / len(order)))[:missing]])
    return order[distributed.rank() :: ranks]


def _shared_permutation(num_samples: int, generator: torch.Generator | None = None) -> torch.Tensor:
    # Drawn on every rank (so every rank's generator advances as in a single process), then rank 0's is
    # used everywhere: the ranks agree on the order even if their generators were seeded differently.
    return distributed.broadcast_tensor(torch.randperm(num_samples, generator=generator))


def is_sharded(source: Any) -> bool:
    """Whether ``source`` gives this rank only its part of the data (under torchrun).

    >>> is_sharded(TensorBatches(torch.zeros(4), batch_size=2, shuffle=False))
    False
    """
    if distributed.world_size() == 1:
        return False
    if isinstance(source, TensorBatches):
        return True
    if isinstance(source, IterableBatches):
        return source.steps is None and is_sharded(source.source)
    sampler = getattr(getattr(source, "batch_sampler", None), "sampler", None)
    return isinstance(sampler, ShardedSampler)


def flatten(obj: Any) -> tuple[list[torch.Tensor], Callable[[list[torch.Tensor]], Any]]:
    """Splits nested tuples/lists/dicts into their tensor leaves and a function rebuilding the structure.

    Done once per data source so that slicing a batch is a plain loop over leaves.

    >>> leaves, rebuild = flatten((torch.zeros(2), {'a': torch.ones(2)}))
    >>> rebuild([leaf[:1] for leaf in leaves])
    (tensor([0.]), {'a': tensor([1.])})
    """
    if isinstance(obj, torch.Tensor):
        return [obj], lambda leaves: leaves[0]
    if isinstance(obj, (tuple, list)):
        parts = [flatten(item) for item in obj]
        return _join(parts, lambda items: type(obj)(items) if isinstance(obj, list) else tuple(items))
    if isinstance(obj, Mapping):
        keys = list(obj.keys())
        parts = [flatten(obj[key]) for key in keys]
        return _join(parts, lambda items: dict(zip(keys, items)))
    raise TypeError(
        f"In-memory data must be tensors or NumPy arrays, possibly nested in tuples, lists or dicts. "
        f"Received an element of type {type(obj).__name__}. Convert it with torch.as_tensor(...)."
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


def _num_samples(leaves: list[torch.Tensor], argument: str) -> int:
    sizes = {len(leaf) if leaf.dim() > 0 else -1 for leaf in leaves}
    if -1 in sizes:
        raise ValueError(f"`{argument}` holds a 0-dimensional tensor; every tensor needs a sample dimension.")
    if len(sizes) != 1:
        raise ValueError(
            f"Every tensor in `{argument}` must have the same number of samples (first dimension). "
            f"Received sizes {sorted(sizes)}."
        )
    return sizes.pop()


class TensorBatches:
    """Batches sliced from in-memory tensors, shuffled by one permutation per epoch.

    Args:
        x: the inputs: a tensor, an array, or nested tuples/lists/dicts of them.
        y: the targets, same forms, or None (prediction).
        batch_size: samples per batch; the last batch may be smaller.
        shuffle: draw a new permutation (from torch's global generator, so ``set_seeds`` fixes it)
            at the start of every epoch.
        x_name: the argument name used in error messages.
        even_shards: under torchrun, pad the shards to equal lengths (see the module's docstring);
            defaults to ``shuffle`` (training data is shuffled and padded, evaluation data neither).

    >>> batches = TensorBatches(torch.arange(5.0), torch.arange(5), batch_size=2, shuffle=False)
    >>> len(batches), [len(x) for x, y in batches]
    (3, [2, 2, 1])
    """

    def __init__(
        self,
        x: Any,
        y: Any = None,
        *,
        batch_size: int,
        shuffle: bool,
        x_name: str = "x",
        even_shards: bool | None = None,
    ) -> None:
        x, y = numpy_to_torch(x), numpy_to_torch(y)
        self._has_y = y is not None
        data = (x, y) if self._has_y else x
        self._leaves, self._rebuild = flatten(data)
        x_leaves = flatten(x)[0]
        n_x = _num_samples(x_leaves, x_name)
        if self._has_y:
            n_y = _num_samples(flatten(y)[0], "y")
            if n_x != n_y:
                raise ValueError(
                    f"`{x_name}` and `y` must hold the same number of samples. "
                    f"Received: {x_name} has {n_x} samples, y has {n_y}."
                )
        if n_x == 0:
            raise ValueError(f"`{x_name}` is empty: there are no samples to iterate over.")
        self.num_samples = n_x
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.even_shards = shuffle if even_shards is None else even_shards
        self.targets = y
        self._skip = 0  # batches the next epoch leaves out (a resumed epoch)
        self._plain_pair = self._has_y and isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor)

    def __len__(self) -> int:
        return math.ceil(shard_length(self.num_samples, self.even_shards) / self.batch_size)

    def skip_next_epoch(self, batches: int) -> None:
        """Makes the next iteration draw its permutation as usual but start after ``batches`` batches.

        A resumed epoch continues this way without slicing or moving the batches already done.
        """
        self._skip = batches

    def __iter__(self) -> Iterator[Any]:
        leaves = self._leaves
        num_samples = self.num_samples
        if self.shuffle or distributed.world_size() > 1:
            order = _shared_permutation(num_samples) if self.shuffle else torch.arange(num_samples)
            order = shard(order, self.even_shards)
            num_samples = len(order)
            # One gather per epoch; every batch below is then a free view.
            leaves = [leaf.index_select(0, order) for leaf in leaves]
        start, self._skip = self._skip, 0
        size = self.batch_size
        if self._plain_pair:
            # The common (x, y) of two tensors, without the generic rebuild: this runs every batch.
            x, y = leaves
            for begin in range(start * size, num_samples, size):
                yield x[begin : begin + size], y[begin : begin + size]
            return
        for index in range(start, math.ceil(num_samples / size)):
            begin = index * size
            yield self._rebuild([leaf[begin : begin + size] for leaf in leaves])


class IterableBatches:
    """Batches from a DataLoader, a generator or any iterable, optionally cycled to ``steps`` per epoch.

    With ``steps`` given, an exhausted iterable is restarted with ``iter()``: a DataLoader begins a new
    pass, while a one-shot generator simply continues (and ends the epoch early when it runs dry).

    Args:
        source: the iterable of batches.
        steps: batches per epoch, or None for one full pass.
        argument: the argument name used in error messages.

    >>> list(IterableBatches([1, 2], steps=3))
    [1, 2, 1]
    """

    def __init__(self, source: Iterable[Any], steps: int | None = None, argument: str = "generator") -> None:
        if not isinstance(source, Iterable):
            raise TypeError(
                f"`{argument}` must be an iterable of batches (a DataLoader, a generator, a list...). "
                f"Received: {argument} of type {type(source).__name__}."
            )
        self.source = _sharded_loader(source, argument) if distributed.world_size() > 1 else source
        self.steps = steps
        self._iterator: Iterator[Any] | None = None

    @property
    def targets(self) -> torch.Tensor | None:
        """All the targets the source can yield, when it is a plain loader over an ``(x, y)`` TensorDataset.

        The loop then checks them once per phase and, when they are all valid class labels, counts
        accuracy hits alone (half the kernels per batch). Any other source gives None: its batches could
        hold anything, so every batch is handled on its own.
        """
        loader = self.source
        if not isinstance(loader, DataLoader) or loader.collate_fn is not default_collate:
            return None
        dataset = loader.dataset
        if isinstance(dataset, TensorDataset) and len(dataset.tensors) == 2:
            return dataset.tensors[1]
        return None

    def set_epoch(self, epoch: int) -> None:
        """Tells a ``DistributedSampler`` in the source which epoch begins (its shuffle depends on it)."""
        for holder in (self.source, getattr(self.source, "batch_sampler", None)):
            set_epoch = getattr(getattr(holder, "sampler", None), "set_epoch", None)
            if callable(set_epoch):
                set_epoch(epoch)
                return

    def __len__(self) -> int:
        """Batches per epoch; raises TypeError when the source has no length and no ``steps`` was set."""
        if self.steps is not None:
            return self.steps
        return len(self.source)  # type: ignore[arg-type]

    def skip_next_epoch(self, batches: int) -> bool:
        """Asks the source to leave out the next epoch's first ``batches`` batches without loading them.

        Returns:
            Whether the source could (a loader built by ``fit_dataset``); otherwise the caller reads
            and drops the batches.
        """
        sampler = getattr(self.source, "batch_sampler", None)
        if self.steps is None and isinstance(sampler, SkippableBatchSampler):
            sampler.skip_next_epoch(batches)
            return True
        return False

    def __iter__(self) -> Iterator[Any]:
        if self.steps is None:
            yield from self.source
            return
        # A generator object keeps its place across epochs; a DataLoader restarts each pass.
        iterator = self._iterator if self._iterator is not None else iter(self.source)
        produced = 0
        restarted_empty = False
        while produced < self.steps:
            try:
                batch = next(iterator)
            except StopIteration:
                if restarted_empty:
                    break  # the source is empty or exhausted for good
                iterator = iter(self.source)
                restarted_empty = True
                continue
            restarted_empty = False
            produced += 1
            yield batch
        self._iterator = iterator


class ShardedSampler(Sampler[int]):
    """This rank's indices of another sampler's order: the same order on every rank, then :func:`shard`.

    The wrapped sampler is iterated exactly as in a single process (a ``RandomSampler`` draws from the
    same generators), and rank 0's order is broadcast, so that W ranks with batches of b see the global
    batches of one process with batches of W*b. In a single process it yields the wrapped order.

    Args:
        sampler: the order over the whole dataset (``RandomSampler``, ``SequentialSampler``...).
        even: pad every rank's shard to the same length (training; see :func:`shard`).

    >>> list(ShardedSampler(SequentialSampler(range(3)), even=True))
    [0, 1, 2]
    """

    def __init__(self, sampler: Sampler[int], even: bool) -> None:
        self.sampler = sampler
        self.even = even

    def __len__(self) -> int:
        return shard_length(len(self.sampler), self.even)  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[int]:
        if distributed.world_size() == 1:
            yield from self.sampler
            return
        order = distributed.broadcast_tensor(torch.tensor(list(self.sampler), dtype=torch.int64))
        yield from shard(order, self.even).tolist()


def _sharded_loader(source: Any, argument: str) -> Any:
    """Under torchrun: a user's plain ``DataLoader`` rebuilt over a sharded sampler, else ``source`` as it is.

    A loader that batches a map-style dataset with a random or sequential order is rebuilt with the
    same dataset, batch size, collate function and worker settings (shuffled means training: padded
    shards; sequential means evaluation: unpadded). A ``DistributedSampler`` is kept (the loop calls its
    ``set_epoch``). Anything else (an iterable dataset, a custom sampler, a generator) is iterated whole
    by every rank, with a warning: shard it yourself with ``trainwell.distributed.rank()``/``world_size()``.
    """
    from torch.utils.data import DistributedSampler

    batch_sampler = getattr(source, "batch_sampler", None)
    sampler = getattr(batch_sampler, "sampler", None)
    if (
        isinstance(source, TensorBatches)
        or isinstance(sampler, (ShardedSampler, DistributedSampler))
        or isinstance(getattr(source, "sampler", None), DistributedSampler)
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


def batch_size_of(x: Any, y: Any = None) -> int:
    """The number of samples in a batch: the first dimension of the first tensor found in ``x``, else ``y``.

    Used to weight batch averages, so that a smaller last batch counts for less.

    >>> batch_size_of((torch.zeros(3, 2), torch.zeros(3)), torch.zeros(3))
    3
    """
    if isinstance(x, torch.Tensor) and x.dim() > 0:
        return len(x)
    for obj in (x, y):
        found = _first_sized(obj)
        if found is not None:
            return found
    return 1


def _first_sized(obj: Any) -> int | None:
    if isinstance(obj, (torch.Tensor, np.ndarray)):
        return len(obj) if obj.ndim > 0 else None
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
    return torch_apply(
        batch, lambda tensor: tensor if tensor.device == device else tensor.to(device, non_blocking=True)
    )
