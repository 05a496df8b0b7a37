"""F-beta score, precision and recall, accumulated exactly over an epoch (Poutyne's ``FBeta`` and its aliases).

Each batch is added to a confusion matrix kept on the device (rows: true class, columns: predicted class)
with ``index_put_(..., accumulate=True)`` and 0/1 weights for ignored or masked targets, so no step waits
for the device. Scores are derived from the matrix, as Poutyne computes them: a ratio with a zero
denominator is 0, and the macro average is the mean over every class of the predictions (a class that
never occurs counts as 0), i.e. scikit-learn's ``labels=range(num_classes), zero_division=0``.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch

from trainwell.metrics.base import check_names
from trainwell.metrics.metric import Metric

__all__ = ["F1", "BinaryF1", "BinaryPrecision", "BinaryRecall", "FBeta", "Precision", "Recall"]

_METRICS = ("fscore", "precision", "recall")
_AVERAGES = ("macro", "micro", "binary")


@contextmanager
def _debug_mode(mode: str | None) -> Iterator[None]:
    """Sets torch's deterministic debug mode for the block (nothing when ``mode`` is None)."""
    if mode is None:
        yield
        return
    previous = torch.get_deterministic_debug_mode()
    torch.set_deterministic_debug_mode(mode)
    try:
        yield
    finally:
        torch.set_deterministic_debug_mode(previous)


class FBeta(Metric):
    """F-beta score, precision and/or recall of a classifier, on each batch and over the epoch.

    Args:
        metric: ``'fscore'``, ``'precision'`` or ``'recall'``; None reports all three, in that order.
        average: ``'macro'`` (unweighted mean over the classes), ``'micro'`` (global counts), ``'binary'``
            (the ``pos_label`` class of a two-class problem) or an int (that class's score alone).
        beta: weight of recall relative to precision in the F-score (> 0).
        pos_label: the positive class when ``average='binary'`` (0 or 1).
        ignore_index: targets equal to this value are left out (None: none is).
        threshold: with one score per sample (logits or probabilities), a sample is of class 1 when its
            score is above ``threshold`` (use 0.5 for probabilities).
        names: log keys overriding the defaults (``fscore_macro``, ``precision_micro``, ``recall_3``,
            ``fscore_binary_1``...): one per reported value.
        make_deterministic: True runs the updates under ``torch.set_deterministic_debug_mode('error')``,
            False under ``'default'``, None leaves torch's setting alone.

    Predictions are scores of shape ``(N, C)`` or ``(N, C, d1, ...)`` (the class is their argmax) with
    targets ``(N,)`` or ``(N, d1, ...)``, or one score per target (two classes, thresholded). The targets
    may come as a pair ``(targets, mask)``: targets whose mask is 0 are left out.

    ``metric(y_pred, y_true)`` adds the batch and returns its own scores as tensors (no host transfer);
    ``compute()`` returns the epoch's scores as Python floats (a float, or ``[fscore, precision, recall]``).

    >>> metric = FBeta(metric='fscore', average='macro')
    >>> metric.update(torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]), torch.tensor([0, 1, 1]))
    >>> metric.__name__, round(metric.compute(), 4)
    ('fscore_macro', 0.6667)
    """

    higher_is_better = True

    def __init__(
        self,
        *,
        metric: str | None = None,
        average: str | int = "macro",
        beta: float = 1.0,
        pos_label: int = 1,
        ignore_index: int | None = -100,
        threshold: float = 0.0,
        names: str | Sequence[str] | None = None,
        make_deterministic: bool | None = None,
    ) -> None:
        super().__init__()
        if metric is not None and metric not in _METRICS:
            raise ValueError(f"`metric` must be 'fscore', 'precision', 'recall' or None. Received: metric={metric!r}.")
        is_label = isinstance(average, int) and not isinstance(average, bool)
        if not is_label and average not in _AVERAGES:
            raise ValueError(
                f"`average` must be 'macro', 'micro', 'binary' or an int label. Received: average={average!r}."
            )
        if isinstance(beta, bool) or not isinstance(beta, (int, float)) or beta <= 0:
            raise ValueError(f"`beta` must be a positive number. Received: beta={beta!r}.")
        if metric in ("precision", "recall") and beta != 1.0:
            warnings.warn(f"`beta` has no effect on {metric}. Received: beta={beta!r}.", UserWarning, stacklevel=2)
        if average == "binary" and pos_label not in (0, 1):
            raise ValueError(f"`pos_label` must be 0 or 1 with average='binary'. Received: pos_label={pos_label!r}.")
        self.metrics: tuple[str, ...] = _METRICS if metric is None else (metric,)
        self.average = average
        self.beta = float(beta)
        self.pos_label = pos_label
        self.ignore_index = ignore_index
        self.threshold = threshold
        modes = {True: "error", False: "default"}
        self.deterministic_debug_mode = None if make_deterministic is None else modes[bool(make_deterministic)]
        # Poutyne's attribute names for the same settings.
        self._metric, self._beta = metric, self.beta
        self._average = average if not is_label else None
        self._label: int | None = average if is_label else pos_label if average == "binary" else None  # type: ignore[assignment]
        suffix = "_".join(str(part) for part in (self._average, self._label) if part is not None)
        default = tuple(f"{name}_{suffix}" for name in self.metrics)
        self.names = default if names is None else check_names(names, "names")
        if len(self.names) != len(self.metrics):
            raise ValueError(
                f"`names` must give one name per reported value ({len(self.metrics)}: "
                f"{', '.join(self.metrics)}). Received: names={names!r}."
            )
        self.__name__: str | list[str] = self.names[0] if len(self.names) == 1 else list(self.names)
        # The number of classes is only known from the first predictions: the buffer is created then.
        self.confusion: torch.Tensor | None
        self.register_buffer("confusion", None)

    # -- Poutyne's view of the state: per-class sums ----------------------------------------------------

    def _sums(self, dim: int | None) -> torch.Tensor | None:
        if self.confusion is None:
            return None
        counts = self.confusion.to(torch.float32)
        if dim is None:
            return counts.diagonal().clone()
        return counts.sum(dim=dim)

    @property
    def _true_positive_sum(self) -> torch.Tensor | None:
        """Per class: the targets of the class predicted as such."""
        return self._sums(None)

    @property
    def _pred_sum(self) -> torch.Tensor | None:
        """Per class: the targets predicted as the class."""
        return self._sums(0)

    @property
    def _true_sum(self) -> torch.Tensor | None:
        """Per class: the targets of the class."""
        return self._sums(1)

    @property
    def _total_sum(self) -> torch.Tensor | None:
        """Per class: the number of targets counted (the same for every class)."""
        if self.confusion is None:
            return None
        return self.confusion.sum().to(torch.float32).repeat(self.confusion.shape[0])

    # -- accumulation ---------------------------------------------------------------------------------

    def _classes(self, y_pred: torch.Tensor, y_true: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
        """Returns the predicted class and the target of every counted element, and the number of classes."""
        if y_pred.numel() == y_true.numel():
            # One score per target: two classes, split by the threshold.
            return (y_pred.reshape(y_true.shape) > self.threshold).long(), y_true, 2
        if y_pred.dim() >= 2 and y_pred.numel() == y_true.numel() * y_pred.shape[1]:
            predicted = y_pred.argmax(dim=1)
            if self.average == "binary" and y_pred.shape[1] != 2:
                raise ValueError(
                    "FBeta(average='binary') expects logits of shape (N,) or (N, 1), or scores of shape (N, 2), "
                    f"with targets of shape (N,). Received: y_pred of shape {tuple(y_pred.shape)}, "
                    f"y_true of shape {tuple(y_true.shape)}."
                )
            return predicted, y_true.reshape(predicted.shape), y_pred.shape[1]
        raise ValueError(
            "FBeta expects scores of shape (N, C, ...) and targets of shape (N, ...), or one score per target. "
            f"Received: y_pred of shape {tuple(y_pred.shape)}, y_true of shape {tuple(y_true.shape)}."
        )

    def _add_batch(self, y_pred: torch.Tensor, y_true: Any, into: torch.Tensor | None) -> torch.Tensor:
        """Adds the batch to the confusion matrix ``into`` (a new one when None) and returns the matrix."""
        mask = None
        if isinstance(y_true, (tuple, list)):
            y_true, mask = y_true
        with _debug_mode(self.deterministic_debug_mode):
            predicted, targets, num_classes = self._classes(y_pred.detach(), y_true)
            self._check_classes(num_classes)
            if into is None:
                into = torch.zeros(num_classes, num_classes, dtype=torch.long, device=predicted.device)
            targets = targets.reshape(-1).long()
            if self.ignore_index is None:
                valid = torch.ones_like(targets, dtype=torch.bool)
            else:
                valid = targets != self.ignore_index
            if mask is not None:
                valid = valid & mask.reshape(-1).to(torch.bool)
            # Left-out targets go to cell (0, 0) with a zero weight instead of being filtered out (no sync).
            rows = torch.where(valid, targets, torch.zeros_like(targets))
            cells = rows * num_classes + predicted.reshape(-1)
            into.view(-1).index_put_((cells,), valid.long(), accumulate=True)
        return into

    def _check_classes(self, batch_classes: int) -> None:
        if self.confusion is not None and self.confusion.shape[0] != batch_classes:
            raise ValueError(
                f"FBeta was updated with {self.confusion.shape[0]} classes and now receives {batch_classes}. "
                "Every batch must have the same number of classes (y_pred.shape[1])."
            )

    def update(self, y_pred: torch.Tensor, y_true: Any) -> None:
        """Adds one batch to the confusion matrix (no host sync)."""
        self.confusion = self._add_batch(y_pred, y_true, self.confusion)

    def forward(self, y_pred: torch.Tensor, y_true: Any) -> torch.Tensor | list[torch.Tensor]:
        """Adds one batch and returns its own scores: a 0-d tensor, or ``[fscore, precision, recall]``."""
        batch = self._add_batch(y_pred, y_true, None)
        self.confusion = batch.clone() if self.confusion is None else self.confusion.add_(batch)
        values = self._scores(batch)
        return values[0] if len(self.metrics) == 1 else list(values.unbind())

    # -- scores -----------------------------------------------------------------------------------------

    def compute(self) -> float | list[float]:
        """The epoch's scores as Python floats: a float, or ``[fscore, precision, recall]``.

        Raises:
            RuntimeError: no batch was added yet.
        """
        if self.confusion is None:
            raise RuntimeError("FBeta.compute() was called before any batch was added with update() or forward().")
        values = self._scores(self.confusion).tolist()
        return values[0] if len(self.metrics) == 1 else values

    def compute_on_device(self) -> torch.Tensor:
        """The epoch's scores as a tensor on the metric's device (zeros before any batch)."""
        if self.confusion is None:
            return torch.zeros(()) if len(self.metrics) == 1 else torch.zeros(len(self.metrics))
        values = self._scores(self.confusion)
        return values[0] if len(self.metrics) == 1 else values

    def reset(self) -> None:
        """Zeroes the confusion matrix (kept in place: the number of classes stays known)."""
        if self.confusion is not None:
            self.confusion.zero_()

    def _scores(self, confusion: torch.Tensor) -> torch.Tensor:
        """The requested scores of a confusion matrix, as a float32 tensor with one value per metric."""
        # float64 keeps the ratios exact enough to match scikit-learn; MPS has no float64.
        dtype = torch.float32 if confusion.device.type == "mps" else torch.float64
        counts = confusion.to(dtype)
        true_positives, predicted, actual = counts.diagonal(), counts.sum(dim=0), counts.sum(dim=1)
        if self.average == "micro":
            true_positives, predicted, actual = true_positives.sum(), predicted.sum(), actual.sum()
        elif self._label is not None:
            label = self._label
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
            values = values.mean(dim=1)  # every class counts, those never seen with a score of 0
        return values.to(torch.float32)

    def extra_repr(self) -> str:
        """Shown in the module's repr: ``F1(names=('fscore_macro',))``."""
        return f"names={self.names}"


def _safe_divide(numerator: torch.Tensor, denominator: torch.Tensor) -> torch.Tensor:
    # A ratio with a zero denominator is 0 (scikit-learn's zero_division=0).
    tiny = torch.finfo(denominator.dtype).tiny
    return torch.where(denominator > 0, numerator / denominator.clamp_min(tiny), torch.zeros_like(numerator))


def _no_beta(name: str, kwargs: dict[str, Any]) -> None:
    if "beta" in kwargs:
        raise ValueError(f"`beta` cannot be given to {name}, whose beta is 1. Use FBeta(beta=...) instead.")


class F1(FBeta):
    """The F1 score (``FBeta(metric='fscore', beta=1)``), logged as ``fscore_macro`` by default.

    >>> F1().names, F1('micro').names
    (('fscore_macro',), ('fscore_micro',))
    """

    def __init__(self, average: str | int = "macro", **kwargs: Any) -> None:
        _no_beta("F1", kwargs)
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


class BinaryF1(FBeta):
    """The F1 score of the positive class of a two-class problem, logged as ``bin_fscore``.

    >>> BinaryF1().names, BinaryF1(pos_label=0).average
    (('bin_fscore',), 'binary')
    """

    def __init__(self, **kwargs: Any) -> None:
        _no_beta("BinaryF1", kwargs)
        kwargs.setdefault("names", "bin_fscore")
        super().__init__(metric="fscore", average="binary", **kwargs)


class BinaryPrecision(FBeta):
    """The precision of the positive class of a two-class problem, logged as ``bin_precision``.

    >>> BinaryPrecision().names
    ('bin_precision',)
    """

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("names", "bin_precision")
        super().__init__(metric="precision", average="binary", **kwargs)


class BinaryRecall(FBeta):
    """The recall of the positive class of a two-class problem, logged as ``bin_recall``.

    >>> BinaryRecall().names
    ('bin_recall',)
    """

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("names", "bin_recall")
        super().__init__(metric="recall", average="binary", **kwargs)
