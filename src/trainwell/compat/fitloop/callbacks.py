"""The trainwell callbacks a ``FitLoop`` adds: the best weights by ``criteria``, and its schedulers, stepped.

:class:`BestWeights` is trainwell's ``BestModelRestore`` kept for the ``FitLoop``'s whole life (so the
best score and weights are those of every ``fit`` so far, as in fitloop), writing the best weights to
disk atomically as safetensors when ``save_to_disk`` is on. :class:`GivenScheduler` steps a scheduler
the user built (fitloop took ``lr_scheduler`` and never stepped it). :class:`Snapshot` puts everything
back after a sanity check or a profile.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from typing import Any

import torch

from trainwell.callbacks.best_model_restore import BestModelRestore
from trainwell.callbacks.lr_scheduler_base import SchedulerCallback
from trainwell.storage.files import save_tensors
from trainwell.utils.rng import capture_rng, restore_rng

__all__ = ["BestWeights", "GivenScheduler", "Snapshot"]


class BestWeights(BestModelRestore):
    """Keeps the weights of the best epoch by ``monitor``; loads them at the end of a ``fit`` when ``restore``.

    Args:
        monitor: the epoch-log key (``'val_accuracy'`` for ``criteria='accuracy'``).
        mode: ``'max'`` or ``'min'``.
        path: where to write the best weights at every improvement (None: memory only).
    """

    def __init__(self, monitor: str, mode: str, path: str | os.PathLike[str] | None = None) -> None:
        super().__init__(monitor=monitor, mode=mode)
        self.path = path
        self.restore = False

    def on_epoch_end(self, epoch_number: int, logs: Mapping[str, Any]) -> None:  # noqa: D102
        before = self.best_weights
        super().on_epoch_end(epoch_number, logs)
        if self.path is not None and self.best_weights is not before and self.best_weights is not None:
            save_tensors(self.path, self.best_weights)  # atomic: temporary file, fsync, rename

    def on_train_end(self, logs: Mapping[str, Any]) -> None:  # noqa: D102
        if self.restore:
            super().on_train_end(logs)


class GivenScheduler(SchedulerCallback):
    """Steps a scheduler built by the user, each epoch (or each step); ``ReduceLROnPlateau`` gets ``monitor``.

    Args:
        scheduler: a ``torch.optim.lr_scheduler`` object (or anything with ``step``, ``state_dict`` and
            ``load_state_dict``).
        step_every: ``'epoch'`` or ``'step'``.
        monitor: the epoch-log key a plateau scheduler watches.
    """

    def __init__(self, scheduler: Any, step_every: str = "epoch", monitor: str = "loss") -> None:
        super().__init__(step_every)
        missing = [name for name in ("step", "state_dict", "load_state_dict") if not hasattr(scheduler, name)]
        if missing:
            raise TypeError(
                f"`lr_scheduler` must be a torch.optim.lr_scheduler object (or have step, state_dict and "
                f"load_state_dict). Received a {type(scheduler).__name__}, which has no {', '.join(missing)}."
            )
        self.given = scheduler
        self.monitor = monitor

    def make_scheduler(self, optimizer: torch.optim.Optimizer) -> Any:
        """The user's scheduler: it is already built on its optimizer."""
        return self.given

    def on_epoch_end(self, epoch_number: int, logs: Mapping[str, Any]) -> None:  # noqa: D102
        if isinstance(self.given, torch.optim.lr_scheduler.ReduceLROnPlateau):
            if self.monitor not in logs:
                raise KeyError(
                    f"The ReduceLROnPlateau given as `lr_scheduler` watches {self.monitor!r}, which the epoch logs do "
                    f"not hold (they hold {sorted(logs)}): set `criteria` to a value valid_epoch_end returns."
                )
            self.given.step(float(logs[self.monitor]))
        else:
            super().on_epoch_end(epoch_number, logs)


class Snapshot:
    """Copies of the weights, optimizers, schedulers and random generators; :meth:`restore` puts them back."""

    def __init__(self, model: torch.nn.Module, optimizers: list[Any], schedulers: list[Any]) -> None:
        self.model = model
        self.weights = {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}
        self.training = {name: module.training for name, module in model.named_modules()}
        self.optimizers = [(optimizer, copy.deepcopy(optimizer.state_dict())) for optimizer in optimizers]
        self.schedulers = [(scheduler, copy.deepcopy(scheduler.state_dict())) for scheduler in schedulers]
        self.rng = capture_rng()

    def restore(self) -> None:
        """Puts everything back as it was when the snapshot was taken."""
        self.model.load_state_dict(self.weights)
        for name, module in self.model.named_modules():
            module.training = self.training.get(name, module.training)
        for optimizer, state in self.optimizers:
            optimizer.load_state_dict(state)
            optimizer.zero_grad(set_to_none=True)
        for scheduler, state in self.schedulers:
            scheduler.load_state_dict(state)
        restore_rng(self.rng)
