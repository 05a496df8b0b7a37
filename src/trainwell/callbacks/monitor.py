"""Watching one logged value for improvement.

Shared by checkpoints, best-model restore, early stopping and plateau schedulers, so that they all
agree on what "better" means.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

__all__ = ["Monitor", "infer_mode"]

# Log keys (without the 'val_'/'test_' prefix) where a larger value is better. Anything else that is
# monitored with mode='auto' is taken as a loss or an error, where smaller is better.
_HIGHER_IS_BETTER_PREFIXES = (
    "acc",
    "bin_acc",
    "top",
    "fscore",
    "bin_fscore",
    "precision",
    "recall",
    "f1",
    "r2",
    "auc",
    "auroc",
    "iou",
    "jaccard",
    "dice",
    "bleu",
    "rouge",
    "map",
)


def infer_mode(monitor: str) -> str:
    """The direction of a log key: 'max' for accuracies, F-scores, R²..., 'min' otherwise.

    >>> infer_mode('val_acc'), infer_mode('val_loss'), infer_mode('fscore_macro'), infer_mode('val_mae')
    ('max', 'min', 'max', 'min')
    """
    name = monitor
    for prefix in ("val_", "test_"):
        if name.startswith(prefix):
            name = name[len(prefix) :]
            break
    return "max" if name.lower().startswith(_HIGHER_IS_BETTER_PREFIXES) else "min"


class Monitor:
    """The best value of one log key seen so far, and whether a new value improves on it.

    Args:
        monitor: the key to read from the epoch logs (``'val_loss'``, ``'val_acc'``...).
        mode: ``'min'``, ``'max'``, or ``'auto'`` (inferred from the key by :func:`infer_mode`).
        min_delta: how much a value must beat the best by to count as an improvement.
        owner: the name of the callback using it, for error messages.

    >>> monitor = Monitor('val_acc', 'max')
    >>> monitor.update({'val_acc': 90.0}), monitor.update({'val_acc': 85.0}), monitor.best
    (True, False, 90.0)
    """

    def __init__(self, monitor: str, mode: str = "min", min_delta: float = 0.0, owner: str = "callback") -> None:
        if not isinstance(monitor, str) or not monitor:
            raise TypeError(
                f"`monitor` must be the name of a logged value, such as 'val_loss'. Received: monitor={monitor!r}."
            )
        if mode not in ("min", "max", "auto"):
            raise ValueError(f"`mode` must be 'min', 'max' or 'auto'. Received: mode={mode!r}.")
        if not isinstance(min_delta, (int, float)) or min_delta < 0:
            raise ValueError(f"`min_delta` must be a number >= 0. Received: min_delta={min_delta!r}.")
        self.monitor = monitor
        self.mode = infer_mode(monitor) if mode == "auto" else mode
        self.min_delta = float(min_delta)
        self.owner = owner
        self.best: float = math.inf if self.mode == "min" else -math.inf
        self.best_epoch: int | None = None

    def value(self, logs: Mapping[str, Any]) -> float:
        """Reads the monitored value, with a ValueError listing the available keys when it is missing."""
        if self.monitor not in logs:
            available = sorted(key for key in logs if key not in ("epoch", "batch", "size"))
            hint = ""
            if self.monitor.startswith("val_") and not any(key.startswith("val_") for key in logs):
                hint = " Pass validation data to fit, or monitor a training value."
            raise ValueError(
                f"{self.owner} monitors {self.monitor!r}, which is not in the logs. Available keys: {available}.{hint}"
            )
        return float(logs[self.monitor])

    def is_improvement(self, value: float) -> bool:
        """Whether ``value`` beats the best by more than ``min_delta`` (NaN never does)."""
        if math.isnan(value):
            return False
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def update(self, logs: Mapping[str, Any], epoch: int | None = None) -> bool:
        """Reads the value from ``logs``; records and returns True when it is an improvement."""
        value = self.value(logs)
        if not self.is_improvement(value):
            return False
        self.best = value
        self.best_epoch = epoch if epoch is not None else logs.get("epoch")
        return True

    def state_dict(self) -> dict[str, Any]:
        """The best value and its epoch (infinities are stored as strings: JSON has none)."""
        return {"best": _encode_float(self.best), "best_epoch": self.best_epoch}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restores :meth:`state_dict`."""
        self.best = _decode_float(state["best"])
        self.best_epoch = state["best_epoch"]


def _encode_float(value: float) -> float | str:
    return value if math.isfinite(value) else repr(value)


def _decode_float(value: float | str) -> float:
    return float(value)
