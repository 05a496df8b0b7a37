"""Keeping the best weights in memory and loading them back when training ends."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import torch

from trainwell.callbacks.base import Callback
from trainwell.callbacks.monitor import Monitor

__all__ = ["BestModelRestore"]


class BestModelRestore(Callback):
    """Restores the weights of the best epoch at the end of training.

    Whenever the monitored value improves, a copy of the weights is taken on the CPU (so that it costs
    no accelerator memory); when training ends, that copy is loaded back into the network. A warning
    is given if no epoch ever improved (a monitored value that is always NaN, for instance).

    The copy is part of :meth:`state_dict`, so a run resumed from a checkpoint still ends on the best
    weights of the whole run, even when they came before the interruption.

    Args:
        monitor: the epoch log to watch (``'val_loss'``, ``'val_acc'``...).
        mode: ``'min'``, ``'max'`` or ``'auto'`` (default: from the model's metric, whose
            ``higher_is_better`` decides, else from the name: losses and errors are minimized, accuracies
            and scores maximized).
        verbose: print a line at each improvement and when the weights are restored.

    >>> import torch
    >>> from trainwell import Model
    >>> model = Model(torch.nn.Linear(2, 1), 'sgd', 'mse')
    >>> history = model.fit(torch.randn(8, 2), torch.randn(8, 1), epochs=2, verbose=False,
    ...                     callbacks=[BestModelRestore(monitor='loss')])
    """

    def __init__(self, *, monitor: str = "val_loss", mode: str = "auto", verbose: bool = False) -> None:
        self.monitor = Monitor(monitor, mode, owner="BestModelRestore")
        self.verbose = verbose
        self.best_weights: dict[str, torch.Tensor] | None = None

    def set_model(self, model: Any) -> None:  # noqa: D102
        super().set_model(model)
        self.monitor.set_model(model)

    def on_epoch_end(self, epoch_number: int, logs: Mapping[str, Any]) -> None:  # noqa: D102
        previous = self.monitor.best
        if not self.monitor.update(logs, epoch_number):
            return
        self.best_weights = self.model.get_weight_copies()
        if self.verbose:
            print(
                f"Epoch {epoch_number}: {self.monitor.monitor} improved from {previous:.6g} to "
                f"{self.monitor.best:.6g}; weights kept."
            )

    def on_train_end(self, logs: Mapping[str, Any]) -> None:  # noqa: D102
        if self.best_weights is None:
            warnings.warn(
                f"BestModelRestore: no weights to restore: {self.monitor.monitor} never improved (it may be NaN) "
                "or no epoch was run.",
                stacklevel=2,
            )
            return
        self.model.set_weights(self.best_weights)
        if self.verbose:
            print(f"Restored the weights of epoch {self.monitor.best_epoch}.")

    def state_dict(self) -> dict[str, Any]:
        """The best value, its epoch and the best weights (CPU tensors)."""
        return {"monitor": self.monitor.state_dict(), "best_weights": self.best_weights}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restores :meth:`state_dict`."""
        self.monitor.load_state_dict(state["monitor"])
        weights = state["best_weights"]
        self.best_weights = None if weights is None else dict(weights)
