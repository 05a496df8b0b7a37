"""Epoch logs as TensorBoard scalars: ``TensorBoardLogger``.

TensorBoard is an optional dependency (``pip install 'trainwell[tensorboard]'``): it is imported when a
TensorBoard callback is created, never when trainwell is.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from numbers import Real
from typing import Any

from trainwell.callbacks.base import Callback, with_learning_rates

__all__ = ["TensorBoardLogger"]


def require_tensorboard(owner: str) -> None:
    """Raises an ImportError naming the extra to install when the ``tensorboard`` package is missing."""
    try:
        import tensorboard  # noqa: F401
    except ImportError as error:
        raise ImportError(
            f"{owner} needs the `tensorboard` package, which is not installed. Install it with "
            "`pip install 'trainwell[tensorboard]'` (or `pip install tensorboard`)."
        ) from error


def resolve_writer(writer: Any, owner: str) -> tuple[Any, bool]:
    """The SummaryWriter to log to, and whether the callback created it (and so must close it).

    Args:
        writer: a ``torch.utils.tensorboard.SummaryWriter`` (or any object with ``add_scalar`` and
            ``add_scalars``), or a directory path for which one is created.
        owner: the callback's name, for error messages.
    """
    require_tensorboard(owner)
    is_writer = all(
        callable(getattr(writer, method, None)) for method in ("add_scalar", "add_scalars", "flush", "close")
    )
    if isinstance(writer, (str, os.PathLike)) and not is_writer:  # a writer wins (a mock is path-like too)
        from torch.utils.tensorboard import SummaryWriter

        return SummaryWriter(log_dir=os.fspath(writer)), True
    if not is_writer:
        raise TypeError(
            f"`writer` must be a torch.utils.tensorboard.SummaryWriter or a log directory path. Received: writer "
            f"of type {type(writer).__name__}. Create one with `SummaryWriter('runs/my_run')`."
        )
    return writer, False


def scalar_items(logs: Mapping[str, Any]) -> list[tuple[str, float]]:
    """The loggable ``(key, value)`` pairs of epoch logs: real numbers (the ``epoch`` counter too, as in Poutyne)."""
    return [
        (key, float(value)) for key, value in logs.items() if isinstance(value, Real) and not isinstance(value, bool)
    ]


def chart_name(key: str) -> str:
    """The chart a log key belongs to when training and validation share charts.

    >>> chart_name('val_acc'), chart_name('acc'), chart_name('lr_group_1')
    ('acc', 'acc', 'lr')
    """
    if key.startswith("val_"):
        return key[len("val_") :]
    if key.startswith("lr_group_"):
        return "lr"
    return key


class TensorBoardLogger(Callback):
    """Logs every epoch value (loss, metrics, ``val_`` values, learning rates, time, epoch) to TensorBoard.

    Each value is a scalar at step = epoch number. As in Poutyne, by default a value and its ``val_``
    counterpart share one chart named after the value (``loss`` holds the series ``loss`` and
    ``val_loss``, written with ``add_scalars``), and learning rates of several parameter groups share
    the ``lr`` chart. With ``split_train_val=True`` every key gets its own chart (``add_scalar``).
    The writer is flushed every epoch and closed at the end of training (a SummaryWriter reopens by
    itself if used again).

    Args:
        writer: a ``torch.utils.tensorboard.SummaryWriter``, or a log directory for which the callback
            creates one.
        split_train_val: one chart per log key instead of training and validation together.

    >>> import tempfile, torch
    >>> from trainwell import Model
    >>> logger = TensorBoardLogger(tempfile.mkdtemp())
    >>> _ = Model(torch.nn.Linear(2, 1), 'sgd', 'mse').fit(torch.ones(4, 2), torch.ones(4, 1), epochs=2,
    ...                                                    verbose=False, callbacks=[logger])
    """

    def __init__(self, writer: Any, split_train_val: bool = False) -> None:
        if not isinstance(split_train_val, bool):
            raise TypeError(f"`split_train_val` must be True or False. Received: split_train_val={split_train_val!r}.")
        self.writer, self._owns_writer = resolve_writer(writer, type(self).__name__)
        self.split_train_val = split_train_val

    def on_epoch_end(self, epoch_number: int, logs: Mapping[str, Any]) -> None:  # noqa: D102
        items = scalar_items(with_learning_rates(self.model, logs))  # the logs carry no lr (Poutyne's contract)
        if self.split_train_val:
            for key, value in items:
                self.writer.add_scalar(key, value, epoch_number)
        else:
            charts: dict[str, dict[str, float]] = {}
            for key, value in items:
                charts.setdefault(chart_name(key), {})[key] = value
            for chart, series in charts.items():
                self.writer.add_scalars(chart, series, epoch_number)
        self.writer.flush()

    def on_train_end(self, logs: Mapping[str, Any]) -> None:  # noqa: D102
        self.writer.close()
