"""Reading a user's DataLoader through its batch sampler: the fast path over tensors, and resuming without replay.

A map-style ``DataLoader`` is two things: a batch sampler that decides which samples form each batch,
and a fetch (``dataset[i]`` for each index, then ``collate_fn``) that loads them. trainwell reads the
batch sampler itself, which buys two things:

* **The fast path.** When the dataset is backed by tensors (a ``TensorDataset``, possibly inside
  ``Subset``s), the collate is the default one and the loader runs in the main process, a batch is the
  tensors indexed with the batch's indices: one gather per tensor instead of ``batch_size`` calls to
  ``__getitem__`` and a stack. The random numbers are drawn exactly as the loader's own iterator draws
  them (its base seed, then the sampler's shuffle), so the batches, the results and exact resume are
  bit-identical to iterating the loader.
* **Resuming without replay.** A run resumed after ``k`` batches of an epoch advances the batch sampler
  by ``k`` batches (indices only: nothing is fetched or collated) and restores the random generators of
  the checkpoint before the first sample of batch ``k + 1`` is fetched. With worker processes, every
  batch's random numbers (random augmentations in ``__getitem__``) are seeded from the epoch and the
  batch's number, whichever worker fetches it, so a resumed epoch's batches are those of the
  uninterrupted one.

Anything else (an iterable-style dataset, a ``DataLoader`` subclass, a batch sampler that is not an
iterable of index lists) is iterated as it is.
"""

from __future__ import annotations

import random
import sys
import weakref
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, Subset, TensorDataset, default_collate
from torch.utils.data._utils.collate import collate_tensor_fn, default_collate_fn_map

from trainwell.data.loaders import loader_options

__all__ = ["LoaderReader", "NumberedBatch", "SeededDataset", "reader_of"]

_SEED_MASK = (1 << 63) - 1


def _tensor_backing(dataset: Any) -> tuple[list[torch.Tensor], torch.Tensor | None] | None:
    """The tensors behind ``dataset`` and, through ``Subset``s, the map from its indices to theirs."""
    positions: torch.Tensor | None = None
    while type(dataset) is Subset:
        indices = torch.as_tensor(list(dataset.indices), dtype=torch.long)
        positions = indices if positions is None else indices[positions]
        dataset = dataset.dataset
    if type(dataset) is not TensorDataset:
        return None
    return list(dataset.tensors), positions


def _plain_loader(loader: Any) -> bool:
    # A DataLoader subclass may iterate differently (its own __iter__ or iterator): read it as it is.
    return (
        type(loader) is DataLoader
        and loader.batch_sampler is not None
        and not isinstance(loader.dataset, IterableDataset)
    )


class NumberedBatch(list[int]):
    """The indices of one batch, with the epoch's seed and the batch's number, as workers receive them."""

    def __init__(self, indices: Sequence[int], seed: int, number: int) -> None:
        super().__init__(indices)
        self.seed = seed
        self.number = number

    def __reduce__(self) -> tuple[Any, ...]:
        # Sent to worker processes: rebuilt from plain values.
        return (NumberedBatch, (list(self), self.seed, self.number))


class SeededDataset(Dataset[Any]):
    """A map-style dataset whose batches, in a worker, draw random numbers from the batch's own seed.

    The fetch of batch ``n`` of an epoch seeds torch, ``random`` and NumPy from the epoch's seed and
    ``n`` before it calls the user's dataset, so a random augmentation gives the same result whichever
    worker fetches the batch and whatever that worker fetched before.
    """

    def __init__(self, dataset: Dataset[Any]) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: Any) -> Any:
        return self.dataset[index]

    def __getitems__(self, indices: Sequence[int]) -> list[Any]:
        if isinstance(indices, NumberedBatch):
            # A fixed mix of the two (not hash(): it must agree between processes and runs).
            seed = (indices.seed + 0x9E3779B97F4A7C15 * (indices.number + 1)) & _SEED_MASK
            torch.manual_seed(seed)
            random.seed(seed)
            numpy = sys.modules.get("numpy")
            if numpy is not None:
                numpy.random.seed(seed % 2**32)
        own = getattr(self.dataset, "__getitems__", None)
        if own:
            return list(own(list(indices)))
        return [self.dataset[index] for index in indices]


class _EpochSampler:
    """The user's batch sampler as trainwell reads it, one epoch at a time (see :class:`LoaderReader`)."""

    def __init__(self, inner: Any, reader: LoaderReader) -> None:
        self.inner = inner
        # Weak: the reader holds the copy that holds this sampler, and a cycle would leave the copy's worker
        # processes to the garbage collector, where torch's shutdown of a persistent iterator waits 5 s per
        # worker. Without the cycle they stop as soon as the reader lets go of the copy.
        self._reader = weakref.ref(reader)

    def __len__(self) -> int:
        return len(self.inner)

    def __iter__(self) -> Iterator[list[int]]:
        reader = self._reader()
        if reader is None:
            raise RuntimeError("This DataLoader copy belongs to a finished trainwell run: iterate the original.")
        return reader._indices(self.inner)


class LoaderReader:
    """How trainwell iterates one user ``DataLoader``: see the module's docstring.

    Args:
        loader: a plain ``DataLoader`` over a map-style dataset, batched by a batch sampler.
        capture_state: captures the global random generators (trainwell.utils.rng's ``capture_rng``);
            with worker processes, at the start of every epoch (with the loader's own generators).
        restore_state: puts them back in a captured state (``restore_rng``): when a resumed epoch has
            skipped its done batches, and when an epoch's batch sampler starts.

    >>> import torch
    >>> from torch.utils.data import DataLoader, TensorDataset
    >>> loader = DataLoader(TensorDataset(torch.arange(6.0), torch.arange(6)), batch_size=4)
    >>> reader = reader_of(loader, lambda: None, lambda state: None)
    >>> reader.fast, [batch[1].tolist() for batch in reader]
    (True, [[0, 1, 2, 3], [4, 5]])
    """

    def __init__(
        self,
        loader: DataLoader[Any],
        capture_state: Callable[[], Any],
        restore_state: Callable[[Any], None],
    ) -> None:
        self.loader = loader
        self._capture = capture_state
        self._restore = restore_state
        backing = None
        # The default collate stacks tensors unless a user re-registered how it collates them.
        stacks = loader.collate_fn is default_collate and default_collate_fn_map.get(torch.Tensor) is collate_tensor_fn
        if loader.num_workers == 0 and stacks:
            backing = _tensor_backing(loader.dataset)
        self._backing = backing
        self.fast = backing is not None
        self._skip = 0
        self._resume_state: Any = None
        self._epoch_state: Any = None
        self._workers = loader.num_workers > 0
        self._seeded: DataLoader[Any] | None = None  # the copy iterated when workers fetch

    def release(self) -> None:
        """Lets go of trainwell's copy of the loader, so that its worker processes stop now (end of a run)."""
        self._seeded = None

    def generators(self) -> list[torch.Generator]:
        """The loader's own random generators (its ``generator``, its sampler's): part of an epoch's state."""
        found: list[torch.Generator] = []
        batch_sampler = self.loader.batch_sampler
        for holder in (self.loader, batch_sampler, getattr(batch_sampler, "sampler", None)):
            generator = getattr(holder, "generator", None)
            if isinstance(generator, torch.Generator) and all(generator is not other for other in found):
                found.append(generator)
        return found

    def _capture_epoch(self) -> tuple[Any, list[torch.Tensor]]:
        return self._capture(), [generator.get_state() for generator in self.generators()]

    def _restore_epoch(self, state: tuple[Any, list[torch.Tensor]]) -> None:
        self._restore(state[0])
        for generator, saved in zip(self.generators(), state[1]):
            generator.set_state(saved)

    def __len__(self) -> int:
        return len(self.loader)

    def skip_next_epoch(self, batches: int, resume_state: Any = None) -> None:
        """The next pass leaves out its first ``batches`` batches without fetching them.

        Args:
            batches: how many batches of the epoch were done before the checkpoint.
            resume_state: the generators' states of the checkpoint, restored once the done batches are
                skipped and before batch ``batches + 1`` is fetched (None: left as they are).
        """
        self._skip = batches
        self._resume_state = resume_state

    def __iter__(self) -> Iterator[Any]:
        if self.fast:
            return self._fast_batches()
        if self._workers:
            # Workers fetch: iterate trainwell's copy, whose batches carry their own seeds.
            self._epoch_state = self._capture_epoch()
            return iter(self._seeded_copy())
        if self._skip:
            return iter(self._skipping_copy())
        return iter(self.loader)

    # -- the fast path --------------------------------------------------------------------------------------
    def _fast_batches(self) -> Iterator[list[torch.Tensor]]:
        assert self._backing is not None
        tensors, positions = self._backing
        loader = self.loader
        # What the loader's own iterator draws when it is created: its base seed for worker processes.
        torch.empty((), dtype=torch.int64).random_(generator=loader.generator)
        pin = loader.pin_memory and torch.cuda.is_available()
        for indices in self._skipped(iter(loader.batch_sampler)):  # type: ignore[arg-type]
            index = torch.as_tensor(indices, dtype=torch.long)
            if positions is not None:
                index = positions[index]
            batch = [tensor[index] for tensor in tensors]
            yield [tensor.pin_memory() for tensor in batch] if pin else batch

    def _skipped(self, indices: Iterator[Any]) -> Iterator[Any]:
        """``indices`` after the first ``skip`` batches, the checkpoint's generators restored then."""
        skip, self._skip = self._skip, 0
        state, self._resume_state = self._resume_state, None
        for _ in range(skip):
            if next(indices, None) is None:
                break
        if skip and state is not None:
            self._restore(state)
        return indices

    # -- without workers: a one-epoch copy that skips ---------------------------------------------------------
    def _skipping_copy(self) -> DataLoader[Any]:
        loader = self.loader
        sampler = _EpochSampler(loader.batch_sampler, self)
        return DataLoader(loader.dataset, batch_sampler=sampler, **loader_options(loader))

    # -- with workers: per-batch seeds ----------------------------------------------------------------------
    def _seeded_copy(self) -> DataLoader[Any]:
        if self._seeded is None:
            loader = self.loader
            self._seeded = DataLoader(
                SeededDataset(loader.dataset),
                batch_sampler=_EpochSampler(loader.batch_sampler, self),
                **loader_options(loader),
            )
        return self._seeded

    def _indices(self, inner: Any) -> Iterator[list[int]]:
        """The batch sampler's index lists for one epoch, skipping and seeding as this pass needs."""
        if not self._workers:
            yield from self._skipped(iter(inner))
            return
        # The epoch's random numbers start where the epoch did, whether or not the loader's iterator was
        # created anew (a fresh iterator draws a base seed; persistent workers' reused one does not).
        if self._epoch_state is not None:
            self._restore_epoch(self._epoch_state)
        seed = int(torch.empty((), dtype=torch.int64).random_(generator=self.loader.generator).item())
        done = self._skip
        for number, indices in enumerate(self._skipped(iter(inner)), done):
            yield NumberedBatch(indices, seed, number)


def reader_of(
    source: Any, capture_state: Callable[[], Any], restore_state: Callable[[Any], None]
) -> LoaderReader | None:
    """A :class:`LoaderReader` for a plain map-style ``DataLoader``, or None for anything else."""
    if not _plain_loader(source):
        return None
    return LoaderReader(source, capture_state, restore_state)
