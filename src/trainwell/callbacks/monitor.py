"""Watching one logged value for improvement.

Shared by checkpoints, best-model restore, early stopping and plateau schedulers, so that they all
agree on what "better" means.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from typing import Any

from trainwell.losses import LOSS_ALIASES, LOSS_NAMES
from trainwell.metrics.base import direction_of

__all__ = ["MissingLogError", "Monitor", "infer_mode", "metric_direction"]


class MissingLogError(KeyError, ValueError):
    """A monitored value is not in the logs.

    Both a ``KeyError`` (what Poutyne raises, a missing log key) and a ``ValueError`` (a wrong ``monitor``
    value), so that either ``except`` catches it. Its message is shown as written, without the quotes a
    plain ``KeyError`` adds.
    """

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


# Log keys (without the 'val_'/'test_' prefix) where a smaller value is better, checked first ('mape' is
# an error, not a mean average precision). Loss names (trainwell.losses) count too.
_LOWER_IS_BETTER_PREFIXES = (
    "loss",
    "mse",
    "mae",
    "rmse",
    "msle",
    "mape",
    "smape",
    "err",
    "error",
    "wer",
    "cer",
    "perplexity",
    "ppl",
    "nll",
    "kl_div",
)
# ...and where a larger one is better.
_HIGHER_IS_BETTER_PREFIXES = (
    "acc",
    "bin_acc",
    "balanced_acc",
    "top",
    "fscore",
    "bin_fscore",
    "precision",
    "recall",
    "f1",
    "r2",
    "auc",
    "auroc",
    "roc_auc",
    "average_precision",
    "iou",
    "jaccard",
    "dice",
    "bleu",
    "rouge",
    "map",
    "explained_variance",
)


def _strip_phase(name: str) -> str:
    for prefix in ("val_", "test_"):
        if name.startswith(prefix):
            return name[len(prefix) :]
    return name


def _direction_from_name(name: str) -> str | None:
    key = _strip_phase(name).lower()
    losses = {loss.lower() for loss in (*LOSS_NAMES, *LOSS_ALIASES)}
    if "loss" in key or key in losses or key.startswith(_LOWER_IS_BETTER_PREFIXES) or key.endswith("_error"):
        return "min"
    if key.startswith(_HIGHER_IS_BETTER_PREFIXES) or key.endswith(("_score", "accuracy")):
        return "max"
    return None


def _direction_from_model(name: str, model: Any) -> str | None:
    key = _strip_phase(name)
    # A Model's tracked epoch metrics carry the names and directions (its epoch_metrics are the user's objects).
    epoch = getattr(model, "_epoch_metrics", None)
    if epoch is None:
        epoch = getattr(model, "epoch_metrics", None)
    for metric in [*(getattr(model, "batch_metrics", None) or []), *(epoch or [])]:
        higher = direction_of(metric, key)
        if higher is not None:
            return "max" if higher else "min"
    return None


def metric_direction(monitor: str, model: Any = None) -> str | None:
    """Whether a logged value is better small (``'min'``) or large (``'max'``); None when it cannot be told.

    The model's metrics are asked first: trainwell's metrics and torchmetrics objects declare
    ``higher_is_better`` (a metric renamed with a ``(name, metric)`` pair keeps its direction). Then the
    name decides: losses and errors (``loss``, ``mse``, ``mae``, ``*_error``...) are minimized;
    accuracies, F-scores, R², AUC, IoU, ``*_score``... maximized. ``val_`` and ``test_`` prefixes are
    ignored.

    Args:
        monitor: the log key, such as ``'val_loss'`` or ``'val_multiclass_auroc'``.
        model: a :class:`~trainwell.Model` (or anything with ``batch_metrics``/``epoch_metrics``), or None.

    >>> metric_direction('val_acc'), metric_direction('val_loss_g'), metric_direction('r2_score')
    ('max', 'min', 'max')
    >>> metric_direction('val_my_value') is None
    True
    """
    if model is not None:
        found = _direction_from_model(monitor, model)
        if found is not None:
            return found
    return _direction_from_name(monitor)


def infer_mode(monitor: str, model: Any = None) -> str:
    """The direction of a log key: :func:`metric_direction`, or 'min' (Poutyne's default) when unknown.

    >>> infer_mode('val_acc'), infer_mode('val_loss'), infer_mode('fscore_macro'), infer_mode('val_mae')
    ('max', 'min', 'max', 'min')
    """
    return metric_direction(monitor, model) or "min"


class Monitor:
    """The best value of one log key seen so far, and whether a new value improves on it.

    Args:
        monitor: the key to read from the epoch logs (``'val_loss'``, ``'val_acc'``...).
        mode: ``'min'``, ``'max'``, or ``'auto'``: inferred by :func:`metric_direction`, from the model's
            metrics once :meth:`set_model` gives it, else from the key's name. When neither tells, a
            warning says so and smaller is taken as better.
        min_delta: how much a value must beat the best by to count as an improvement.
        owner: the name of the callback using it, for error messages.

    >>> monitor = Monitor('val_acc', 'max')
    >>> monitor.update({'val_acc': 90.0}), monitor.update({'val_acc': 85.0}), monitor.best
    (True, False, 90.0)
    >>> Monitor('val_top5', 'auto').mode
    'max'
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
        self.auto = mode == "auto"
        self.min_delta = float(min_delta)
        self.owner = owner
        self.best_epoch: int | None = None
        self._mode: str | None = None
        self.best: float = math.nan  # set with the mode: +inf for 'min', -inf for 'max'
        self._set_mode(_direction_from_name(monitor) if self.auto else mode)

    def _set_mode(self, mode: str | None) -> None:
        if mode is None or mode == self._mode:
            return
        self._mode = mode
        if self.best_epoch is None and not math.isfinite(self.best):  # nothing recorded or restored yet
            self.best = math.inf if mode == "min" else -math.inf

    @property
    def mode(self) -> str:
        """``'min'`` or ``'max'``; with ``mode='auto'`` and no way to tell, warns once and takes ``'min'``."""
        if self._mode is None:
            warnings.warn(
                f"{self.owner} cannot tell whether a larger or a smaller {self.monitor!r} is better: no metric of "
                "the model declares it (higher_is_better) and the name is not a known loss or score. Smaller is "
                f"taken as better; pass mode='max' or mode='min' to {self.owner} to choose.",
                stacklevel=3,
            )
            self._set_mode("min")
        assert self._mode is not None
        return self._mode

    def set_model(self, model: Any) -> None:
        """With ``mode='auto'``, takes the direction from the model's metric logged as ``monitor``.

        A metric's own ``higher_is_better`` wins over what the name suggests. Called by the callbacks'
        ``set_model``, before training starts, so an undecidable direction is reported before any epoch.
        """
        if not self.auto:
            return
        found = _direction_from_model(self.monitor, model)
        if found is not None:
            self._set_mode(found)
        self.mode  # noqa: B018 (warns now, before training, when the direction is still unknown)

    def value(self, logs: Mapping[str, Any]) -> float:
        """Reads the monitored value; a :class:`MissingLogError` lists the available keys when it is missing."""
        if self.monitor not in logs:
            available = sorted(key for key in logs if key not in ("epoch", "batch", "size"))
            hint = ""
            if self.monitor.startswith("val_") and not any(key.startswith("val_") for key in logs):
                hint = " Pass validation data to fit, or monitor a training value."
            raise MissingLogError(
                f"{self.owner} monitors {self.monitor!r}, which is not in the logs. Available keys: {available}.{hint}"
            )
        return float(logs[self.monitor])

    def is_improvement(self, value: float) -> bool:
        """Whether ``value`` beats the best by more than ``min_delta`` (NaN never does)."""
        mode = self.mode
        if math.isnan(value):
            return False
        if mode == "min":
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
