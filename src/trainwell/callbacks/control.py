"""Callbacks that decide when training stops: ``EarlyStopping`` and ``TerminateOnNaN``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from trainwell.callbacks.base import Callback
from trainwell.callbacks.monitor import Monitor
from trainwell.utils.checks import check_positive_int

__all__ = ["EarlyStopping", "TerminateOnNaN"]


class EarlyStopping(Callback):
    """Stops training when a monitored value has stopped improving.

    After each epoch, the monitored value is compared with the best so far. An epoch that does not
    improve on it by more than ``min_delta`` adds one to a counter; an improvement resets it. Training
    stops at the end of the epoch where the counter reaches ``max(patience, 1)``: with ``patience=0``
    (Poutyne's default), at the first epoch that does not improve.

    Args:
        monitor: the epoch log to watch (``'val_loss'``, ``'val_acc'``...).
        min_delta: the smallest change that counts as an improvement.
        patience: how many epochs without improvement are tolerated.
        verbose: print a line when training is stopped.
        mode: ``'min'``, ``'max'`` or ``'auto'`` (default: from the model's metric, whose
            ``higher_is_better`` decides, else from the name: losses and errors are minimized, accuracies
            and scores maximized).
        restore_best_weights: when training is stopped by this callback, load back the weights of the
            best epoch (as Keras does); the copy is kept on the CPU.

    >>> import torch
    >>> from trainwell import Model
    >>> stopper = EarlyStopping(monitor='loss', patience=2)
    >>> model = Model(torch.nn.Linear(2, 2), 'sgd', 'cross_entropy')
    >>> history = model.fit(torch.randn(8, 2), torch.zeros(8, dtype=torch.long), epochs=3, verbose=False,
    ...                     callbacks=[stopper])
    """

    def __init__(
        self,
        *,
        monitor: str = "val_loss",
        min_delta: float = 0.0,
        patience: int = 0,
        verbose: bool = False,
        mode: str = "auto",
        restore_best_weights: bool = False,
    ) -> None:
        if not isinstance(patience, int) or isinstance(patience, bool) or patience < 0:
            raise ValueError(f"`patience` must be an int >= 0. Received: patience={patience!r}.")
        self.monitor = Monitor(monitor, mode, min_delta, owner="EarlyStopping")
        self.patience = patience
        self.verbose = verbose
        self.restore_best_weights = restore_best_weights
        self.wait = 0
        self.stopped_epoch: int | None = None
        self.best_weights: dict[str, torch.Tensor] | None = None

    def set_model(self, model: Any) -> None:  # noqa: D102
        super().set_model(model)
        self.monitor.set_model(model)

    def on_train_begin(self, logs: Mapping[str, Any]) -> None:  # noqa: D102
        self.stopped_epoch = None

    def on_epoch_end(self, epoch_number: int, logs: Mapping[str, Any]) -> None:  # noqa: D102
        if self.monitor.update(logs, epoch_number):
            self.wait = 0
            if self.restore_best_weights:
                self.best_weights = self.model.get_weight_copies()
            return
        self.wait += 1
        if self.wait >= max(self.patience, 1):
            self.stopped_epoch = epoch_number
            self.model.stop_training = True
            if self.verbose:
                print(
                    f"Epoch {epoch_number}: early stopping: {self.monitor.monitor} has not improved on "
                    f"{self.monitor.best:.6g} (epoch {self.monitor.best_epoch}) for {self.wait} epoch(s)."
                )

    def on_train_end(self, logs: Mapping[str, Any]) -> None:  # noqa: D102
        if self.restore_best_weights and self.stopped_epoch is not None and self.best_weights is not None:
            self.model.set_weights(self.best_weights)
            if self.verbose:
                print(f"Restored the weights of epoch {self.monitor.best_epoch}.")

    def state_dict(self) -> dict[str, Any]:  # noqa: D102
        state: dict[str, Any] = {"monitor": self.monitor.state_dict(), "wait": self.wait}
        if self.best_weights is not None:
            state["best_weights"] = self.best_weights
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:  # noqa: D102
        self.monitor.load_state_dict(state["monitor"])
        self.wait = int(state["wait"])
        self.best_weights = state.get("best_weights")


class TerminateOnNaN(Callback):
    """Stops training as soon as the training loss is NaN or infinite, naming the epoch and step.

    The check reads the phase's running loss sum, which stays non-finite once any batch loss was, so
    ``check_every_n_steps=k`` catches every bad batch with one host transfer per k batches instead of
    one per batch (the stop then happens up to k-1 batches later).

    Args:
        check_every_n_steps: how often to check, in training batches.
        raise_error: raise a ``FloatingPointError`` instead of stopping at the end of the step.
    """

    reads_gradients = False  # its on_train_batch_end never looks at gradients

    def __init__(self, *, check_every_n_steps: int = 1, raise_error: bool = False) -> None:
        check_positive_int(check_every_n_steps, "check_every_n_steps")
        self.check_every_n_steps = check_every_n_steps
        self.raise_error = raise_error
        self.stopped_at: tuple[int | None, int] | None = None

    def on_train_batch_end(self, batch_number: int, logs: Mapping[str, Any]) -> None:  # noqa: D102
        if batch_number % self.check_every_n_steps:
            return
        if self._loss_is_finite(logs):
            return
        epoch = getattr(getattr(self.model, "state", None), "epoch", None)
        self.stopped_at = (epoch, batch_number)
        where = f" (epoch {epoch})" if epoch else ""
        message = (
            f"Batch {batch_number:d}: Invalid loss, terminating training{where}: the training loss became NaN or "
            "infinite. Lower the learning rate, check the inputs for NaN, or clip gradients (ClipNorm)."
        )
        self.model.stop_training = True
        if self.raise_error:
            raise FloatingPointError(message)
        print(message)

    def _loss_is_finite(self, logs: Mapping[str, Any]) -> bool:
        # In the loop: the phase's running loss sum, on the device (no read of the batch's own loss). Called
        # outside a loop (no tracker): the loss in the logs.
        tracker = getattr(getattr(self.model, "state", None), "tracker", None)
        total = tracker.loss_total() if tracker is not None else None
        if total is None:
            loss = logs.get("loss")
            if loss is None:
                return True
            total = torch.as_tensor(loss)
        return bool(torch.isfinite(total).all())
