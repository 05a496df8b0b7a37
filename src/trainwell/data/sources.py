"""Batch sources: what the loop iterates, one pass per epoch, with a known length.

Two kinds of sources cover every input the public API accepts (:mod:`trainwell.data.inputs` builds them):

* :class:`TensorBatches`: in-memory tensors and arrays (``fit(x, y)``). Batches are slices, never a
  per-sample ``Dataset`` + ``collate``: a shuffled epoch costs one gather, then every batch is a view.
* :class:`IterableBatches`: a ``DataLoader``, a generator or any iterable of batches, optionally cycled
  to a fixed number of steps per epoch. Datasets become a ``DataLoader``
  (:func:`trainwell.data.loaders.dataset_loader`) and then an :class:`IterableBatches`.

Every source is iterated once per epoch and reports its length (or None when it cannot be known). A plain
``DataLoader`` over a map-style dataset is read through its batch sampler
(:mod:`trainwell.data.loader_reading`): tensors are indexed instead of collated, and a resumed epoch skips
its done batches without fetching them.
Under ``torchrun`` both are sharded between the ranks (see :mod:`trainwell.data.sharding`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sized
from typing import Any

import torch
from torch.utils.data import DataLoader, IterableDataset, TensorDataset, default_collate

from trainwell import distributed
from trainwell.data.batches import count_samples, flatten
from trainwell.data.loader_reading import reader_of
from trainwell.data.loaders import sharded_loader
from trainwell.data.sharding import ShardedSampler, shard, shard_length, shared_permutation
from trainwell.utils.rng import capture_rng, restore_rng
from trainwell.utils.tensors import numpy_to_torch

__all__ = [
    "IterableBatches",
    "TensorBatches",
    "check_global_batch",
    "is_sharded",
    "per_rank_batch_size",
    "source_length",
]


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
        y_name: str = "y",
        even_shards: bool | None = None,
    ) -> None:
        x, y = _tensors_of(x, x_name), _tensors_of(y, y_name)
        self._has_y = y is not None
        data = (x, y) if self._has_y else x
        x_leaves = flatten(x, x_name)[0]
        n_x = count_samples(x_leaves, x_name)
        if self._has_y:
            n_y = count_samples(flatten(y, y_name)[0], y_name)
            if n_x != n_y:
                raise ValueError(
                    f"`{x_name}` and `{y_name}` must hold the same number of samples. "
                    f"Received: {x_name} has {n_x} samples, {y_name} has {n_y}."
                )
        self._leaves, self._rebuild = flatten(data)
        if n_x == 0:
            raise ValueError(f"`{x_name}` is empty: there are no samples to iterate over.")
        self.argument = x_name  # named in the errors of the steps
        self.num_samples = n_x
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.even_shards = shuffle if even_shards is None else even_shards
        self.targets = y
        self._skip = 0  # batches the next epoch leaves out (a resumed epoch)
        self._resume_state: dict[str, Any] | None = None
        self._plain_pair = self._has_y and isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor)
        self._plain_inputs = not self._has_y and isinstance(x, torch.Tensor)  # predict(x) on one tensor

    def __len__(self) -> int:
        return math.ceil(shard_length(self.num_samples, self.even_shards) / self.batch_size)

    def skip_next_epoch(
        self, batches: int, resume_state: dict[str, Any] | None = None, source_state: Any = None
    ) -> bool:
        """Makes the next iteration draw its permutation as usual but start after ``batches`` batches.

        A resumed epoch continues this way without slicing or moving the batches already done; the
        generators are then put back in ``resume_state`` (the checkpoint's), before the first batch.
        Returns True: the source always can.
        """
        self._skip = batches
        self._resume_state = resume_state
        return True

    def __iter__(self) -> Iterator[Any]:
        leaves = self._leaves
        num_samples = self.num_samples
        if self.shuffle or distributed.world_size() > 1:
            order = shared_permutation(num_samples) if self.shuffle else torch.arange(num_samples)
            order = shard(order, self.even_shards)
            num_samples = len(order)
            # One gather per epoch; every batch below is then a free view.
            leaves = [leaf.index_select(0, order) for leaf in leaves]
        start, self._skip = self._skip, 0
        state, self._resume_state = self._resume_state, None
        if state is not None:
            restore_rng(state)  # the permutation is drawn: the rest of the epoch draws as it did
        size = self.batch_size
        if self._plain_pair or self._plain_inputs:
            # The common (x, y) of two tensors, or one tensor of inputs, without the generic rebuild: the
            # views of every batch come from one split each (a slice per batch costs more in Python).
            first = start * size
            if first >= num_samples:
                return  # a split of no rows would still give one empty batch
            views = [leaf[first:num_samples].split(size) for leaf in leaves]
            yield from zip(*views) if self._plain_pair else views[0]
            return
        for index in range(start, math.ceil(num_samples / size)):
            begin = index * size
            yield self._rebuild([leaf[begin : begin + size] for leaf in leaves])


class IterableBatches:
    """Batches from a DataLoader, a generator or any iterable, optionally cycled to ``steps`` per epoch.

    The source's ``len()`` is read once, when the source is built. An epoch then takes exactly that many
    batches (or ``steps``), so the source is never asked for one more; a source without a length is read
    until it stops.

    With ``steps`` given, an exhausted iterable is restarted with ``iter()``: a DataLoader begins a new
    pass, while a one-shot generator simply continues (and ends the epoch early when it runs dry). Between
    epochs, a training source continues where the previous epoch stopped (every batch of a long loader
    is seen in turn); with ``restart=True`` (validation), every epoch starts from a fresh ``iter()``, so
    that each epoch evaluates the same batches, as Poutyne does.

    Args:
        source: the iterable of batches.
        steps: batches per epoch, or None for one full pass.
        argument: the argument name used in error messages.
        restart: begin each epoch with a new ``iter(source)`` instead of continuing.

    >>> list(IterableBatches([1, 2], steps=3))
    [1, 2, 1]
    """

    def __init__(
        self, source: Iterable[Any], steps: int | None = None, argument: str = "generator", restart: bool = False
    ) -> None:
        if not isinstance(source, Iterable):
            raise TypeError(
                f"`{argument}` must be an iterable of batches (a DataLoader, a generator, a list...). "
                f"Received: {argument} of type {type(source).__name__}."
            )
        sharded = distributed.world_size() > 1 and not isinstance(source, TensorBatches)
        self.source = sharded_loader(source, argument) if sharded else source
        self.argument = argument
        self.steps = steps
        self.restart = restart
        # Read once: a user's __len__ may be costly, or count its calls (Poutyne reads it once too).
        self.length = steps if steps is not None else _sized_length(self.source)
        self._iterator: Iterator[Any] | None = None
        # A plain map-style DataLoader is read through its batch sampler (fast path, resume without replay).
        self._reader = reader_of(self.source, capture_rng, restore_rng)
        self._stateful_resume: tuple[Any, Any, Any] | None = None

    def release(self) -> None:
        """Ends what a run left running: a kept iterator and trainwell's copy of a loader (their workers).

        Called when a fit, an evaluation or a prediction ends, however it ends; the user's own source is
        left as it is (a persistent-workers DataLoader keeps its workers for the user's next pass).
        """
        self._iterator = None
        if self._reader is not None:
            self._reader.release()

    def generators(self) -> list[torch.Generator]:
        """The source's own random generators (a DataLoader's), captured with each epoch's start."""
        return self._reader.generators() if self._reader is not None else []

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
        if self.length is None:
            raise TypeError(f"The source of type {type(self.source).__name__} has no len().")
        return self.length

    def skip_next_epoch(
        self, batches: int, resume_state: dict[str, Any] | None = None, source_state: Any = None
    ) -> bool:
        """Asks the source to leave out the next epoch's first ``batches`` batches without loading them.

        Args:
            batches: the batches of the epoch done before the checkpoint.
            resume_state: the checkpoint's generator states, restored once the done batches are skipped
                and before the next one is fetched.
            source_state: what :meth:`state_dict` returned at the checkpoint, for a stateful source.

        Returns:
            Whether the source could (a plain DataLoader over a map-style dataset, read through its batch
            sampler; a stateful source given its state); otherwise the caller reads and drops the batches.
        """
        if self.steps is not None:
            return False
        if self._reader is not None:
            self._reader.skip_next_epoch(batches, resume_state)
            return True
        holder = self._stateful()
        if holder is not None and source_state is not None:
            self._stateful_resume = (holder, source_state, resume_state)
            return True
        return False

    def _stateful(self) -> Any:
        """What holds the source's position: a stateful loader itself, or a plain loader's iterable dataset."""
        if self._reader is not None:
            return None
        source = self.source
        if isinstance(source, DataLoader) and type(source) is DataLoader:
            dataset = source.dataset
            if isinstance(dataset, IterableDataset) and source.num_workers == 0 and _has_state(dataset):
                return dataset
            return None
        return source if _has_state(source) else None

    def state_dict(self) -> Any:
        """A stateful source's position after the batches it gave, for a mid-epoch checkpoint; else None.

        Stateful: a torchdata ``StatefulDataLoader``, or a plain loader over an iterable dataset with
        ``state_dict``/``load_state_dict``.
        """
        holder = self._stateful() if self.steps is None else None
        return None if holder is None else holder.state_dict()

    def _pass(self) -> Iterator[Any]:
        resume, self._stateful_resume = self._stateful_resume, None
        if resume is not None:
            holder, saved, generators = resume
            holder.load_state_dict(saved)  # the source continues where the checkpoint left it
            iterator = iter(self.source)
            if generators is not None:
                restore_rng(generators)
            return iterator
        return iter(self._reader if self._reader is not None else self.source)

    def __iter__(self) -> Iterator[Any]:
        if self.steps is None:
            # next() by hand: islice and `yield from` would call iter() again on what iter() returned,
            # which an iterable that returns itself counts (or restarts).
            iterator = self._pass()
            # Poutyne reads exactly len() batches of an iterable and never asks for one more. A DataLoader
            # is read to its end instead: its iterator stops at its length anyway, and an iterable
            # dataset behind it may act at its end (rewind, close a file).
            limit = None if isinstance(self.source, DataLoader) else self.length
            produced = 0
            while limit is None or produced < limit:
                try:
                    batch = next(iterator)
                except StopIteration:
                    return
                produced += 1
                yield batch
            return
        # A generator object keeps its place across epochs; a DataLoader restarts each pass.
        iterator = self._iterator if self._iterator is not None and not self.restart else self._pass()
        produced = 0
        restarted_empty = False
        while produced < self.steps:
            try:
                batch = next(iterator)
            except StopIteration:
                if restarted_empty:
                    break  # the source is empty or exhausted for good
                iterator = self._pass()
                restarted_empty = True
                continue
            restarted_empty = False
            produced += 1
            yield batch
        self._iterator = iterator


def _tensors_of(data: Any, argument: str) -> Any:
    """``data`` with its NumPy arrays as tensors; an array torch cannot hold (strings, objects) is named."""
    try:
        return numpy_to_torch(data)
    except TypeError as error:
        raise TypeError(
            f"`{argument}` holds a NumPy array that torch cannot convert ({error}). Convert the data to numbers "
            "first (for text labels: an index per class, e.g. with numpy.unique(..., return_inverse=True))."
        ) from error


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


def _sized_length(source: Any) -> int | None:
    """``len(source)``, or None when it has none (or refuses, like a loader over an IterableDataset)."""
    if not isinstance(source, Sized):
        return None
    try:
        return len(source)
    except TypeError:
        return None


class FinishedSource:
    """What a finished fit's training source still gives ``Model.training_state``, without the source.

    A model outlives its fits and sits in reference cycles; holding the user's DataLoader would keep it, and
    its worker processes, alive until the garbage collector runs (where torch's shutdown of a persistent
    iterator waits 5 s per worker). What is kept: the source's own random generators (the next epochs'
    shuffles continue from them), its position if the fit stopped mid-epoch, and its per-process batch size.
    """

    def __init__(self, source: Any, mid_epoch: bool) -> None:
        own = getattr(source, "generators", None)
        self._generators = list(own()) if callable(own) else []
        state_dict = getattr(source, "state_dict", None)
        self._state = state_dict() if mid_epoch and callable(state_dict) else None
        self.batch_size = per_rank_batch_size(source)

    def generators(self) -> list[torch.Generator]:
        return self._generators

    def state_dict(self) -> Any:
        return self._state


def release_sources(*sources: Any) -> None:
    """:meth:`IterableBatches.release` for each source that is one (the end of a fit, evaluation, prediction)."""
    for source in sources:
        if isinstance(source, IterableBatches):
            source.release()


def source_length(source: Iterable[Any]) -> int | None:
    """The number of batches of a source, or None when it cannot be known in advance."""
    if isinstance(source, Sized):
        try:
            return len(source)
        except TypeError:
            return None
    return None


def _has_state(obj: Any) -> bool:
    return callable(getattr(obj, "state_dict", None)) and callable(getattr(obj, "load_state_dict", None))


def per_rank_batch_size(source: Any) -> int | None:
    """The samples per batch on this rank of a training source, when it is known (else None).

    >>> per_rank_batch_size(TensorBatches(torch.zeros(4), batch_size=2, shuffle=False))
    2
    """
    if isinstance(source, TensorBatches):
        return source.batch_size
    inner = source.source if isinstance(source, IterableBatches) else source
    size = getattr(inner, "batch_size", None)
    if size is None:
        size = getattr(getattr(inner, "batch_sampler", None), "batch_size", None)
    return size if isinstance(size, int) else None


def check_global_batch(source: Any, saved_global_batch: int | None, saved_world_size: int) -> None:
    """Refuses to continue a mid-epoch checkpoint on another number of processes with another global batch.

    An elastic resume (W ranks saved, W' ranks resume) repeats the interrupted epoch's batches only when
    W' x the per-process ``batch_size`` is the global batch the checkpoint was taken with: global batch i
    is then the same samples, split W' ways instead of W.
    """
    size = per_rank_batch_size(source)
    ranks = distributed.world_size()
    if saved_global_batch is None or size is None or size * ranks == saved_global_batch:
        return
    fix = (
        f"pass batch_size={saved_global_batch // ranks} per process"
        if saved_global_batch % ranks == 0
        else f"{saved_global_batch} does not divide by {ranks}: resume on a number of processes that divides it"
    )
    raise ValueError(
        f"`batch_size`: this mid-epoch checkpoint was taken with a global batch of {saved_global_batch} samples "
        f"({saved_world_size} process(es)); this run has {ranks} process(es) x batch_size={size} = {size * ranks}. "
        f"To continue the epoch with the same batches, {fix} (or resume from an end-of-epoch checkpoint)."
    )
