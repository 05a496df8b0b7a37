"""Shared helpers: random data split into uneven batches, and a strict sync check around updates."""

from __future__ import annotations

from collections.abc import Iterator

import torch

from tests.sync_guard import SyncGuard


def batches(*tensors: torch.Tensor, sizes: tuple[int, ...] = (37, 64, 5, 94)) -> Iterator[tuple]:
    """Splits tensors along dim 0 into uneven batches (the last one smaller, as in a real epoch)."""
    start = 0
    for size in sizes:
        yield tuple(tensor[start : start + size] for tensor in tensors)
        start += size
    assert start == tensors[0].shape[0]


def update_all(metric, y_pred: torch.Tensor, y_true: torch.Tensor, strict: bool = True) -> None:
    """Feeds every batch to ``metric.update`` under a strict SyncGuard."""
    for pred, true in batches(y_pred, y_true):
        with SyncGuard(strict=strict):
            metric.update(pred, true)


N = 200  # sum of the batch sizes above
