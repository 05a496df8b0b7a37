"""F-beta score, precision and recall, accumulated exactly over an epoch.

Each update adds the batch to a confusion matrix kept on the device (rows: true class, columns: predicted
class), with ``index_put_(..., accumulate=True)`` and 0/1 weights for ignored targets, so no step ever waits
for the device. Scores are derived from the matrix at the end of the epoch, following scikit-learn's
definitions (``zero_division=0``; macro averaging over the labels present in targets or predictions).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from trainwell.metrics.base import EpochMetric, check_names

__all__ = ["F1", "FBeta", "Precision", "Recall"]

_METRICS = ("fscore", "precision", "recall")
_AVERAGES = ("macro", "micro", "binary")


class FBeta(EpochMetric):
    """F-beta score, precision and/or recall of a classifier over a whole epoch.

    Args:
        metric: ``'fscore'``, ``'precision'`` or ``'recall'``; None reports all three, in that order.
        average: ``'macro'`` (unweighted mean over labels), ``'micro'`` (global counts), ``'binary'``
            (the ``pos_label`` class of a binary problem) or an int (that label's score alone).
        beta: weight of recall relative to precision in the F-score.
        pos_label: the positive class when ``average='binary'``.
        ignore_index: targets equal to this value are left out.
        threshold: with ``average='binary'`` and one logit per sample, a sample is positive (class 1)
            when its logit is above ``threshold``.
        names: log keys overriding the defaults (``fscore_macro``, ``precision_micro``, ``recall_3``,
            ``fscore_binary_1``..., as in Poutyne): one per reported value.

    Multiclass predictions are scores of shape ``(N, C)`` or ``(N, C, d1, ...)`` (the class is their
    argmax) with targets ``(N,)`` or ``(N, d1, ...)``. Binary predictions are logits ``(N,)`` or
    ``(N, 1)`` thresholded at ``threshold``, or scores ``(N, 2)``, with 0/1 targets.

    >>> metric = FBeta(metric='fscore', average='macro')
    >>> metric.update(torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]), torch.tensor([0, 1, 1]))
    >>> metric.names, round(metric.compute().item(), 4)
    (('fscore_macro',), 0.6667)
    """

    higher_is_better = True

    def __init__(
        self,
        *,
        metric: str | None = None,
        average: str | int = "macro",
        beta: float = 1.0,
        pos_label: int = 1,
        ignore_index: int = -100,
        threshold: float = 0.0,
        names: str | Sequence[str] | None = None,
    ) -> None:
        super().__init__()
        if metric is not None and metric not in _METRICS:
            raise ValueError(f"`metric` must be 'fscore', 'precision', 'recall' or None. Received: metric={metric!r}.")
        is_label = isinstance(average, int) and not isinstance(average, bool)
        if not is_label and average not in _AVERAGES:
            raise ValueError(
                f"`average` must be 'macro', 'micro', 'binary' or an int label. Received: average={average!r}."
            )
        if isinstance(beta, bool) or not isinstance(beta, (int, float)) or beta < 0:
            raise ValueError(f"`beta` must be a non-negative number. Received: beta={beta!r}.")
        if average == "binary" and pos_label not in (0, 1):
            raise ValueError(f"`pos_label` must be 0 or 1 with average='binary'. Received: pos_label={pos_label!r}.")
        self.metrics: tuple[str, ...] = _METRICS if metric is None else (metric,)
        self.average = average
        self.beta = float(beta)
        self.pos_label = pos_label
        self.ignore_index = ignore_index
        self.threshold = threshold
        suffix = f"binary_{pos_label}" if average == "binary" else str(average)
        default = tuple(f"{name}_{suffix}" for name in self.metrics)
        self.names = default if names is None else check_names(names, "names")
        if len(self.names) != len(self.metrics):
            raise ValueError(
                f"`names` must give one name per reported value ({len(self.metrics)}: "
                f"{', '.join(self.metrics)}). Received: names={names!r}."
            )

    # -- accumulation ---------------------------------------------------------------------------------

    def _classes(self, y_pred: torch.Tensor, y_true: torch.Tensor) -> tuple[torch.Tensor, int]:
        """Returns the predicted class of every target, and the number of classes."""
        if self.average != "binary":
            if y_pred.dim() != y_true.dim() + 1:
                raise ValueError(
                    "FBeta expects scores of shape (N, C, ...) and targets of shape (N, ...). "
                    f"Received: y_pred of shape {tuple(y_pred.shape)}, y_true of shape {tuple(y_true.shape)}."
                )
            return y_pred.argmax(dim=1), y_pred.shape[1]
        if y_pred.dim() == y_true.dim() + 1 and y_pred.shape[1] == 2:
            return y_pred.argmax(dim=1), 2
        if y_pred.numel() == y_true.numel():
            return (y_pred.reshape(y_true.shape) > self.threshold).long(), 2
        raise ValueError(
            "FBeta(average='binary') expects logits of shape (N,) or (N, 1), or scores of shape (N, 2), "
            f"with targets of shape (N,). Received: y_pred of shape {tuple(y_pred.shape)}, "
            f"y_true of shape {tuple(y_true.shape)}."
        )

    def update(self, y_pred: torch.Tensor, y_true: torch.Tensor) -> None:
        """Adds one batch to the confusion matrix (no host sync)."""
        predicted, num_classes = self._classes(y_pred.detach(), y_true)
        targets = y_true.reshape(-1).long()
        predicted = predicted.reshape(-1)
        confusion = self._state.get("confusion")
        if confusion is None:
            # The number of classes is only known from the first predictions.
            confusion = torch.zeros(num_classes, num_classes, dtype=torch.long, device=predicted.device)
            self._state["confusion"] = confusion
        elif confusion.shape[0] != num_classes:
            raise ValueError(
                f"FBeta was updated with {confusion.shape[0]} classes and now receives {num_classes}. "
                "Every batch must have the same number of classes (y_pred.shape[1])."
            )
        valid = targets != self.ignore_index
        # Ignored targets are redirected to cell (0, 0) with a zero weight instead of being filtered out.
        rows = torch.where(valid, targets, torch.zeros_like(targets))
        confusion.view(-1).index_put_((rows * num_classes + predicted,), valid.long(), accumulate=True)

    # -- scores -----------------------------------------------------------------------------------------

    def compute(self) -> torch.Tensor:
        """Returns the requested scores: a scalar tensor, or one value per name."""
        confusion = self._state.get("confusion")
        if confusion is None:
            values = torch.zeros(len(self.metrics))
            return values[0] if len(self.metrics) == 1 else values
        # float64 keeps the ratios exact enough to match scikit-learn; MPS has no float64.
        dtype = torch.float32 if confusion.device.type == "mps" else torch.float64
        counts = confusion.to(dtype)
        true_positives = counts.diagonal()
        predicted = counts.sum(dim=0)
        actual = counts.sum(dim=1)
        if self.average == "micro":
            true_positives, predicted, actual = true_positives.sum(), predicted.sum(), actual.sum()
        elif self.average == "binary":
            label = self.pos_label
            true_positives, predicted, actual = true_positives[label], predicted[label], actual[label]
        elif self.average != "macro":
            label = int(self.average)
            if not 0 <= label < counts.shape[0]:
                raise ValueError(
                    f"`average` selects label {label}, but the predictions have {counts.shape[0]} classes."
                )
            true_positives, predicted, actual = true_positives[label], predicted[label], actual[label]
        beta2 = self.beta**2
        scores = {
            "precision": _safe_divide(true_positives, predicted),
            "recall": _safe_divide(true_positives, actual),
            # (1 + b²) tp / ((1 + b²) tp + b² fn + fp), written with fn = actual - tp and fp = predicted - tp.
            "fscore": _safe_divide((1 + beta2) * true_positives, beta2 * actual + predicted),
        }
        values = torch.stack([scores[name] for name in self.metrics])
        if self.average == "macro":
            # Like scikit-learn, average over the labels seen in the targets or the predictions only.
            present = ((predicted + actual) > 0).to(dtype)
            values = (values * present).sum(dim=1) / present.sum().clamp_min(1.0)
        values = values.to(torch.float32)
        return values[0] if len(self.metrics) == 1 else values


def _safe_divide(numerator: torch.Tensor, denominator: torch.Tensor) -> torch.Tensor:
    # zero_division=0: a ratio with a zero denominator is 0.
    tiny = torch.finfo(denominator.dtype).tiny
    return torch.where(denominator > 0, numerator / denominator.clamp_min(tiny), torch.zeros_like(numerator))


class F1(FBeta):
    """The F1 score (``FBeta(metric='fscore', beta=1)``), logged as ``fscore_macro`` by default.

    >>> F1().names, F1('micro').names
    (('fscore_macro',), ('fscore_micro',))
    """

    def __init__(self, average: str | int = "macro", **kwargs: Any) -> None:
        super().__init__(metric="fscore", average=average, **kwargs)


class Precision(FBeta):
    """Precision (``FBeta(metric='precision')``), logged as ``precision_macro`` by default.

    >>> Precision().names
    ('precision_macro',)
    """

    def __init__(self, average: str | int = "macro", **kwargs: Any) -> None:
        super().__init__(metric="precision", average=average, **kwargs)


class Recall(FBeta):
    """Recall (``FBeta(metric='recall')``), logged as ``recall_macro`` by default.

    >>> Recall().names
    ('recall_macro',)
    """

    def __init__(self, average: str | int = "macro", **kwargs: Any) -> None:
        super().__init__(metric="recall", average=average, **kwargs)
