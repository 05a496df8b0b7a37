"""Shared helper: the learning rates each epoch trained with, which the epoch logs no longer carry.

As in Poutyne, the history ``fit`` returns and the logs callbacks receive hold no ``lr``: the loop keeps
the epoch's rates in ``model.state.learning_rates`` (read before ``on_epoch_end``, so an epoch scheduler
stepping there does not change them) and loggers write them. Tests read them with :class:`LearningRates`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from trainwell.callbacks.base import Callback, epoch_learning_rates


class LearningRates(Callback):
    """Records ``epoch_learning_rates(model)`` at every ``on_epoch_end``, wherever it stands in the list.

    Attributes:
        epochs: one dict per epoch ended (``{'lr': ...}``, ``lr_group_<i>`` or ``lr_<name>`` keys).
    """

    reads_gradients = False  # it listens to no batch hook anyway

    def __init__(self) -> None:
        self.epochs: list[dict[str, float]] = []

    def on_epoch_end(self, epoch_number: int, logs: Mapping[str, Any]) -> None:
        assert not any(key == "lr" or key.startswith("lr_") for key in logs), sorted(logs)  # Poutyne's contract
        self.epochs.append(epoch_learning_rates(self.model))

    def values(self, key: str = "lr") -> list[float]:
        """The rate ``key`` of every epoch, in order."""
        return [rates[key] for rates in self.epochs]

    def beside(self, history: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The history with each epoch's rates after ``epoch`` and ``time``: the rows loggers write."""
        assert all("lr" not in logs for logs in history)
        return [
            {**{key: logs[key] for key in ("epoch", "time") if key in logs}, **rates, **logs}
            for logs, rates in zip(history, self.epochs, strict=True)
        ]
