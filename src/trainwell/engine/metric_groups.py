"""Batches held so that additive metrics are computed once for several of them instead of per batch.

A few small kernels per batch cost more than their work on a CPU (the argmax of a 256 x 10 output takes
about 10 us, mostly fixed cost), and each is a launch on a GPU. A metric whose counts are sums over samples
(:class:`~trainwell.metrics.BatchMetric` with ``additive=True``: accuracy, top-k) gives the same integer
counts on the concatenated outputs of several batches as summed over each, so while no one reads a batch's
metric values the tracker hands the batches here and gets one result per group.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

__all__ = ["HeldBatches"]

Producer = Callable[[Any, Any], torch.Tensor]


class HeldBatches:
    """The outputs and targets of the batches not yet computed, and per column the groups' results.

    Args:
        metrics: ``(column, counts function)`` of the additive metrics, by column of the tracker's values.
        columns: how many columns the tracker's values have.

    >>> from trainwell.metrics.classification import accuracy_hits
    >>> held = HeldBatches([(1, accuracy_hits)], 2)
    >>> held.hold(torch.tensor([[0.0, 1.0]]), torch.tensor([1]))
    >>> held.hold(torch.tensor([[1.0, 0.0]]), torch.tensor([1]))
    >>> held.flush(); held.results[1]
    [tensor(1)]
    """

    # The most output and target bytes held: past a megabyte the kernels' work dominates their fixed cost,
    # so holding more would save nothing and keep memory.
    limit_bytes = 1 << 20

    def __init__(self, metrics: Sequence[tuple[int, Producer]], columns: int) -> None:
        self.metrics = list(metrics)
        self.batches: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.bytes = 0
        # Per column, the results of the groups computed since the tracker's last fold.
        self.results: list[list[torch.Tensor]] = [[] for _ in range(columns)]

    def hold(self, y_pred: torch.Tensor, y_true: torch.Tensor) -> None:
        """Adds a batch, computing the group first when the batch cannot be concatenated to it."""
        if self.batches:
            first_pred, first_true = self.batches[0]
            if (
                y_pred.shape[1:] != first_pred.shape[1:]
                or y_true.shape[1:] != first_true.shape[1:]
                or y_pred.dtype != first_pred.dtype
                or y_true.dtype != first_true.dtype
                or y_pred.device != first_pred.device
                or y_true.device != first_true.device
            ):
                self.flush()  # outputs of another shape (a longer sequence) start a new group
        self.batches.append((y_pred, y_true))
        self.bytes += y_pred.numel() * y_pred.element_size() + y_true.numel() * y_true.element_size()
        if self.bytes >= self.limit_bytes:
            self.flush()

    def flush(self) -> None:
        """Computes the metrics on the held batches at once; their results wait in :attr:`results`."""
        batches = self.batches
        if not batches:
            return
        if len(batches) == 1:
            y_pred, y_true = batches[0]
        else:
            y_pred = torch.cat([pred for pred, _ in batches])
            y_true = torch.cat([true for _, true in batches])
        for column, produce in self.metrics:
            self.results[column].append(produce(y_pred, y_true))
        self.batches, self.bytes = [], 0

    def clear_results(self) -> None:
        """Forgets the results (the tracker has folded them into its sums)."""
        self.results = [[] for _ in self.results]

    def one_batch(self, values: Sequence[Any], pair: tuple[torch.Tensor, torch.Tensor]) -> list[Any]:
        """``values`` of one batch with its grouped metrics (None there) computed for that batch alone."""
        filled = list(values)
        for column, produce in self.metrics:
            if filled[column] is None:
                filled[column] = produce(*pair)
        return filled

    def state_dict(self) -> list[list[torch.Tensor]]:
        """Copies of the results, after computing the held batches (for a mid-phase checkpoint)."""
        self.flush()
        return [[value.clone() for value in column] for column in self.results]

    def load_state_dict(self, results: Sequence[Sequence[torch.Tensor]] | None) -> None:
        """Restores :meth:`state_dict` (None or missing columns: no results, as in older checkpoints)."""
        self.batches, self.bytes = [], 0
        self.clear_results()
        for column, saved in enumerate(list(results or [])[: len(self.results)]):
            self.results[column] = list(saved)
