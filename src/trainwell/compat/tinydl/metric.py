"""tinydl's ``Metric`` contract, ``calculate(scores, targets)``, and the metrics tinydl ships.

A metric is an object with a ``name`` and a ``calculate(scores, targets)`` method returning one number
(a 0-d tensor or a float). Reporters name the metrics they want; the dialect's runner hands them to
trainwell's loop, which calls ``calculate`` on every batch for batch reporters, and once on the whole
epoch's scores and targets for epoch and run reporters. Two metrics with the same name are the same
metric to a reporter, as in tinydl.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import torch
from torch.nn import functional

__all__ = ["BinaryCrossentropy", "CrossEntropy", "Metric", "RocAuc", "measure"]


class Metric(ABC):
    """Base class of tinydl metrics: subclasses implement :meth:`calculate`.

    Args:
        name: the metric's name in reports and TensorBoard tags (default: the class name).

    Attributes:
        value: the last value :meth:`calculate` computed (None before the first call).

    >>> class MeanScore(Metric):
    ...     def calculate(self, scores, targets):
    ...         self.value = scores.mean()
    ...         return self.value
    >>> MeanScore().calculate(torch.tensor([1.0, 3.0]), None)
    tensor(2.)
    >>> MeanScore() == MeanScore('MeanScore')
    True
    """

    def __init__(self, name: str | None = None) -> None:
        self.name = type(self).__name__ if name is None else name
        self.value: Any = None

    @abstractmethod
    def calculate(self, scores: torch.Tensor, targets: torch.Tensor) -> Any:
        """Computes the metric on ``scores`` (the network's outputs) and ``targets``, and returns it."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Metric):
            return NotImplemented
        return self.name == other.name

    def __hash__(self) -> int:
        return hash(self.name)


class CrossEntropy(Metric):
    """Cross-entropy of class scores (logits) against class labels, averaged over the examples; name ``'CE'``.

    >>> round(float(CrossEntropy().calculate(torch.tensor([[2.0, 0.0]]), torch.tensor([0]))), 4)
    0.1269
    """

    def __init__(self, name: str | None = None) -> None:
        super().__init__("CE" if name is None else name)

    def calculate(self, scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The mean cross-entropy of ``scores`` (N, C) against labels ``targets`` (N,)."""
        self.value = functional.cross_entropy(scores, targets)
        return self.value


class BinaryCrossentropy(Metric):
    """Binary cross-entropy of probabilities in [0, 1] against 0/1 targets; name ``'BCE'``.

    >>> round(float(BinaryCrossentropy().calculate(torch.tensor([0.9]), torch.tensor([1.0]))), 4)
    0.1054
    """

    def __init__(self, name: str | None = None) -> None:
        super().__init__("BCE" if name is None else name)

    def calculate(self, scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The mean binary cross-entropy of probabilities ``scores`` against ``targets``."""
        self.value = functional.binary_cross_entropy(scores, targets.to(scores.dtype))
        return self.value


class RocAuc(Metric):
    """Area under the ROC curve (scikit-learn's ``roc_auc_score``); name ``'ROC_AUC'``.

    Scores of shape (N,) or (N, 1) are binary scores; scores of shape (N, C) are class logits, turned
    into probabilities and scored one class against the rest. It needs scikit-learn and copies the
    values to the CPU, so it is best used in epoch and run reporters, computed once per epoch.

    >>> float(RocAuc().calculate(torch.tensor([0.1, 0.8, 0.3, 0.9]), torch.tensor([0, 1, 0, 1])))
    1.0
    """

    def __init__(self, name: str | None = None) -> None:
        super().__init__("ROC_AUC" if name is None else name)

    def calculate(self, scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The ROC AUC of ``scores`` against ``targets``."""
        from sklearn.metrics import roc_auc_score

        truth = targets.detach().cpu().numpy()
        if scores.dim() == 2 and scores.shape[1] > 1:
            probabilities = scores.detach().float().softmax(dim=1).cpu().numpy()
            value = roc_auc_score(truth, probabilities, multi_class="ovr")
        else:
            value = roc_auc_score(truth, scores.detach().float().reshape(-1).cpu().numpy())
        self.value = torch.tensor(float(value))
        return self.value


def measure(metric: Metric, scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``metric.calculate(scores, targets)`` as a detached 0-d float tensor on the scores' device.

    A ``calculate`` that only sets ``metric.value`` (tinydl's first API) works too.

    Raises:
        TypeError: the metric returned neither a number nor a one-element tensor.

    >>> measure(CrossEntropy(), torch.zeros(2, 2), torch.tensor([0, 1])).shape
    torch.Size([])
    """
    result = metric.calculate(scores, targets)
    if result is None:
        result = metric.value
    device = scores.device if isinstance(scores, torch.Tensor) else None
    if isinstance(result, torch.Tensor) and result.numel() == 1:
        return result.detach().reshape(()).float().to(device)
    try:
        return torch.tensor(float(result), device=device)
    except (TypeError, ValueError):
        raise TypeError(
            f"{type(metric).__name__}.calculate(scores, targets) must return one number (a float or a 0-d tensor). "
            f"Received a {type(result).__name__}: {result!r}."
        ) from None
