"""Batch classification metrics: accuracy, binary accuracy and top-k accuracy.

Every function here returns a percentage (0-100) as a tensor on the input's device: the mean over the
targets by default, their sum with ``reduction='sum'`` or one value per target with ``reduction='none'``,
as Poutyne's. None of them reads a value back to the host: ignored targets are removed by weighting with a
0/1 mask instead of by boolean indexing, whose output size would depend on the data (and so force a sync
on CUDA).
"""

from __future__ import annotations

from functools import partial

import torch

from trainwell.metrics.base import BatchMetric

__all__ = [
    "TOPK_VALUES",
    "Accuracy",
    "BinaryAccuracy",
    "TopKAccuracy",
    "acc",
    "accuracy",
    "accuracy_hits",
    "bin_acc",
    "binary_accuracy",
    "topk",
    "topk_accuracy",
    "topk_hits",
]

REDUCTIONS = ("mean", "sum", "none")

# The k of the predefined 'top{k}' names, as in Poutyne: 1 to 10, then every ten up to 100.
TOPK_VALUES: tuple[int, ...] = (*range(1, 11), *range(20, 101, 10))


def _hit_counts(hits: torch.Tensor, y_true: torch.Tensor, ignore_index: int) -> torch.Tensor:
    """``[hits, valid targets]`` of a batch, the form the loop sums exactly over an epoch."""
    valid = y_true != ignore_index
    if ignore_index >= 0:
        # A non-negative ignore_index is a real class index that argmax can produce: mask its hits out.
        hits = hits & valid
    # A negative ignore_index never equals a predicted class, so hits needs no mask (one op less per batch).
    # count_nonzero is the cheapest reduction of a boolean mask (measured): this runs every batch.
    return torch.stack((torch.count_nonzero(hits), torch.count_nonzero(valid)))


def _check_reduction(reduction: str) -> str:
    if reduction not in REDUCTIONS:
        raise ValueError(f"`reduction` must be 'mean', 'sum' or 'none'. Received: reduction={reduction!r}.")
    return reduction


def _reduced(hits: torch.Tensor, y_true: torch.Tensor, ignore_index: int, reduction: str) -> torch.Tensor:
    """Hits of a batch as a percentage: the mean over counted targets, their sum, or one per target."""
    if _check_reduction(reduction) == "mean":
        return _percentage(_hit_counts(hits, y_true, ignore_index))
    per_target = (hits & (y_true != ignore_index)).to(torch.float32) * 100.0
    return per_target if reduction == "none" else per_target.sum()


def _percentage(counts: torch.Tensor) -> torch.Tensor:
    # clamp_min keeps an all-ignored batch at 0 instead of NaN, without a data-dependent branch.
    return counts[0] * 100.0 / counts[1].clamp_min(1)


def accuracy_counts(y_pred: torch.Tensor, y_true: torch.Tensor, ignore_index: int = -100) -> torch.Tensor:
    """``[correct, counted]`` for :func:`accuracy`: the numerator and denominator of the percentage.

    >>> accuracy_counts(torch.tensor([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]]), torch.tensor([1, 1, -100]))
    tensor([1, 2])
    """
    return _hit_counts(y_pred.argmax(dim=1) == y_true, y_true, ignore_index)


def accuracy_hits(y_pred: torch.Tensor, y_true: torch.Tensor) -> torch.Tensor:
    """The number of targets whose highest score is the true class (every target counts).

    >>> accuracy_hits(torch.tensor([[0.1, 0.9], [0.8, 0.2]]), torch.tensor([1, 1]))
    tensor(1)
    """
    return torch.count_nonzero(y_pred.argmax(dim=1) == y_true)


def topk_hits(y_pred: torch.Tensor, y_true: torch.Tensor, k: int = 5) -> torch.Tensor:
    """The number of targets among the ``k`` highest scores (every target counts).

    >>> topk_hits(torch.tensor([[0.5, 0.3, 0.2], [0.5, 0.3, 0.2]]), torch.tensor([1, 2]), k=2)
    tensor(1)
    """
    return torch.count_nonzero((y_pred.topk(k, dim=1).indices == y_true.unsqueeze(1)).any(dim=1))


def topk_counts(y_pred: torch.Tensor, y_true: torch.Tensor, k: int = 5, ignore_index: int = -100) -> torch.Tensor:
    """``[hits, counted]`` for :func:`topk_accuracy`.

    >>> topk_counts(torch.tensor([[0.5, 0.3, 0.2], [0.5, 0.3, 0.2]]), torch.tensor([1, 2]), k=2)
    tensor([1, 2])
    """
    best = y_pred.topk(k, dim=1).indices  # (N, k, d1, ...)
    return _hit_counts((best == y_true.unsqueeze(1)).any(dim=1), y_true, ignore_index)


def accuracy(
    y_pred: torch.Tensor, y_true: torch.Tensor, ignore_index: int = -100, *, reduction: str = "mean"
) -> torch.Tensor:
    """Percentage of targets whose highest score is the true class.

    Args:
        y_pred: scores or logits, shape ``(N, C)`` or ``(N, C, d1, ...)``; the class is the argmax over dim 1.
        y_true: class indices, shape ``(N,)`` or ``(N, d1, ...)``.
        ignore_index: targets equal to this value are left out of the count.
        reduction: ``'mean'`` (the percentage of hits among the counted targets), ``'sum'`` (100 per hit)
            or ``'none'`` (100 or 0 per target, 0 for ignored ones).

    Returns:
        A scalar float tensor (a tensor shaped like ``y_true`` with ``'none'``), on ``y_pred``'s device.

    >>> accuracy(torch.tensor([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]]), torch.tensor([1, 1, -100]))
    tensor(50.)
    >>> accuracy(torch.tensor([[0.1, 0.9], [0.8, 0.2]]), torch.tensor([1, 1]), reduction='none')
    tensor([100.,   0.])
    """
    if reduction == "mean":
        return _percentage(accuracy_counts(y_pred, y_true, ignore_index))
    return _reduced(y_pred.argmax(dim=1) == y_true, y_true, ignore_index, reduction)


def binary_accuracy(
    y_pred: torch.Tensor, y_true: torch.Tensor, threshold: float = 0.0, *, reduction: str = "mean"
) -> torch.Tensor:
    """Percentage of correct binary predictions, a prediction being positive when above ``threshold``.

    Args:
        y_pred: logits of any shape (use ``threshold=0.5`` for probabilities).
        y_true: 0/1 targets (int, bool or float) with as many elements as ``y_pred``; ``(N,)`` targets
            with ``(N, 1)`` predictions are accepted.
        threshold: the decision threshold.
        reduction: ``'mean'``, ``'sum'`` (100 per hit) or ``'none'`` (100 or 0 per target).

    Returns:
        A scalar float tensor between 0 and 100 (one value per target with ``'none'``).

    >>> binary_accuracy(torch.tensor([2.0, -1.0, 0.5, -3.0]), torch.tensor([1, 0, 0, 0]))
    tensor(75.)
    """
    _check_reduction(reduction)
    if y_pred.shape != y_true.shape and y_pred.numel() == y_true.numel():
        # (N, 1) logits against (N,) targets: broadcasting would compare every pair.
        y_pred = y_pred.reshape(y_true.shape)
    hits = ((y_pred > threshold) == (y_true > 0.5)).to(torch.float32) * 100.0
    return hits.mean() if reduction == "mean" else hits.sum() if reduction == "sum" else hits


def topk_accuracy(
    y_pred: torch.Tensor, y_true: torch.Tensor, k: int = 5, ignore_index: int = -100, *, reduction: str = "mean"
) -> torch.Tensor:
    """Percentage of targets whose class is among the ``k`` highest scores.

    Args:
        y_pred: scores or logits, shape ``(N, C)`` or ``(N, C, d1, ...)``.
        y_true: class indices, shape ``(N,)`` or ``(N, d1, ...)``.
        k: how many of the best-scored classes count as a hit.
        ignore_index: targets equal to this value are left out of the count.
        reduction: ``'mean'``, ``'sum'`` (100 per hit) or ``'none'`` (100 or 0 per target).

    >>> topk_accuracy(torch.tensor([[0.5, 0.3, 0.2], [0.5, 0.3, 0.2]]), torch.tensor([1, 2]), k=2)
    tensor(50.)
    """
    if reduction == "mean":
        return _percentage(topk_counts(y_pred, y_true, k, ignore_index))
    hits = (y_pred.topk(k, dim=1).indices == y_true.unsqueeze(1)).any(dim=1)
    return _reduced(hits, y_true, ignore_index, reduction)


# Poutyne's spellings of the same functions.
acc = accuracy
bin_acc = binary_accuracy
topk = topk_accuracy


class Accuracy(BatchMetric):
    """:func:`accuracy` as a batch metric logged under ``acc`` (or ``name``).

    >>> Accuracy()(torch.tensor([[0.2, 0.8]]), torch.tensor([1]))
    tensor(100.)
    """

    def __init__(self, ignore_index: int = -100, name: str = "acc", *, reduction: str = "mean") -> None:
        exact = _check_reduction(reduction) == "mean"  # a percentage of counts: summed exactly by the loop
        super().__init__(
            partial(accuracy, ignore_index=ignore_index, reduction=reduction),
            (name,),
            higher_is_better=True,
            counts=partial(accuracy_counts, ignore_index=ignore_index) if exact else None,
            scale=100.0,
            # A negative ignore_index can never be a predicted class: with all targets >= 0, hits suffice.
            hits=accuracy_hits if ignore_index < 0 else None,
            additive=True,  # correct and counted targets, each sample on its own
        )
        self.ignore_index, self.reduction = ignore_index, reduction


class BinaryAccuracy(BatchMetric):
    """:func:`binary_accuracy` as a batch metric logged under ``bin_acc`` (or ``name``).

    >>> BinaryAccuracy()(torch.tensor([1.5, -0.5]), torch.tensor([1.0, 1.0]))
    tensor(50.)
    """

    def __init__(self, threshold: float = 0.0, name: str = "bin_acc", *, reduction: str = "mean") -> None:
        fn = partial(binary_accuracy, threshold=threshold, reduction=_check_reduction(reduction))
        super().__init__(fn, (name,), higher_is_better=True)
        self.threshold, self.reduction = threshold, reduction


class TopKAccuracy(BatchMetric):
    """:func:`topk_accuracy` as a batch metric logged under ``top{k}`` (or ``name``).

    >>> TopKAccuracy(2).names
    ('top2',)
    """

    def __init__(self, k: int, ignore_index: int = -100, name: str | None = None, *, reduction: str = "mean") -> None:
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"`k` must be a positive int. Received: k={k!r} (type {type(k).__name__}).")
        exact = _check_reduction(reduction) == "mean"
        fn = partial(topk_accuracy, k=k, ignore_index=ignore_index, reduction=reduction)
        counts = partial(topk_counts, k=k, ignore_index=ignore_index) if exact else None
        hits = partial(topk_hits, k=k) if ignore_index < 0 else None
        super().__init__(
            fn, (name or f"top{k}",), higher_is_better=True, counts=counts, scale=100.0, hits=hits, additive=True
        )
        self.k, self.ignore_index, self.reduction = k, ignore_index, reduction
