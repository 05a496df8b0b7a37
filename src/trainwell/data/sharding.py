"""Each torchrun rank's part of the data: the same order on every rank, then every W-th sample.

Every rank orders the data the same way (rank 0's shuffle is broadcast) and takes every W-th sample,
starting at its rank. Global batch i is then split between the ranks, so W ranks with batches of b train
like one process with batches of W*b. Training shards are padded to equal lengths by repeating the first
samples of the order (DistributedDataParallel needs every rank to make the same number of steps; nothing
is repeated when the data divides by W); evaluation shards are not padded, so no sample is counted twice
and rank r's outputs are the samples r, r + W, r + 2W... (see :func:`trainwell.distributed.interleave`).
In a single process every function here leaves the data as it is.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch.utils.data import Sampler

from trainwell import distributed

__all__ = ["ShardedSampler", "shard", "shard_length", "shared_permutation"]


def shard_length(num_samples: int, even: bool) -> int:
    """How many of ``num_samples`` samples this rank holds (all of them in a single process).

    >>> shard_length(10, even=True)
    10
    """
    ranks = distributed.world_size()
    if ranks == 1:
        return num_samples
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


def shared_permutation(num_samples: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """A random order of ``num_samples`` indices, the same on every rank (rank 0's)."""
    # Drawn on every rank (so every rank's generator advances as in a single process), then rank 0's is
    # used everywhere: the ranks agree on the order even if their generators were seeded differently.
    return distributed.broadcast_tensor(torch.randperm(num_samples, generator=generator))


class ShardedSampler(Sampler[int]):
    """This rank's indices of another sampler's order: the same order on every rank, then :func:`shard`.

    The wrapped sampler is iterated exactly as in a single process (a ``RandomSampler`` draws from the
    same generators), and rank 0's order is broadcast, so that W ranks with batches of b see the global
    batches of one process with batches of W*b. In a single process it yields the wrapped order.

    Args:
        sampler: the order over the whole dataset (``RandomSampler``, ``SequentialSampler``...).
        even: pad every rank's shard to the same length (training; see :func:`shard`).

    >>> from torch.utils.data import SequentialSampler
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
