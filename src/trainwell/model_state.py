"""The whole training state of a ``Model`` as plain values, and back: what exact resume is built on.

A snapshot holds the weights, the optimizer, the loop's counters, every random generator and, when it
is taken in the middle of an epoch, the epoch's running sums and where its data stopped. Restoring it
and calling ``fit`` again continues as if the run had never stopped. Directories, files and callbacks'
states are the experiment layer's business; everything here is tensors and numbers (no pickle).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from trainwell.loop import ResumePoint
from trainwell.rng import capture_rng, restore_rng

__all__ = ["SNAPSHOT_FORMAT", "TrainingState"]

SNAPSHOT_FORMAT = 1


class TrainingState:
    """``training_state`` / ``restore_training_state`` (mixed into ``Model``)."""

    network: nn.Module
    optimizer: torch.optim.Optimizer | None
    _loop: Any
    _steps: Any
    _move_optimizer_state: Any

    def training_state(self) -> dict[str, Any]:
        """A snapshot of everything that shapes the rest of training.

        Take it at the end of an epoch (``on_epoch_end``) or after a training batch that completed an
        optimizer step (``on_train_batch_end``); in the middle of a gradient accumulation the partial
        gradients would be lost, so that raises.

        Returns:
            A nested dict of tensors and plain values; ``trainwell.checkpoint.save_state`` stores it.
            ``snapshot['next_epoch']`` is the ``initial_epoch`` that continues it.
        """
        state = self._loop.state
        mid_epoch = state.phase == "train" and not state.epoch_done and state.batch > 0
        if not (mid_epoch or state.epoch_done):
            raise RuntimeError(
                "training_state() is taken during fit: at on_epoch_end, or at on_train_batch_end after an "
                f"optimizer step. It was called in phase {state.phase!r}."
            )
        if self._steps.examples_in_step or (mid_epoch and _has_gradients(self.network)):
            raise RuntimeError(
                "training_state() was called in the middle of a gradient accumulation (batches_per_step > 1): "
                "take it after a batch that completes an optimizer step."
            )
        snapshot: dict[str, Any] = {
            "format": SNAPSHOT_FORMAT,
            "next_epoch": state.epoch if mid_epoch else state.epoch + 1,
            "network": dict(self.network.state_dict()),
            "optimizer": self.optimizer.state_dict() if self.optimizer is not None else None,
            "loop": state.state_dict(),
            "steps": self._steps.state_dict(),
            "rng": capture_rng(),
        }
        if mid_epoch:
            snapshot["epoch_in_progress"] = {
                "epoch": state.epoch,
                "batch": state.batch,
                "tracker": state.tracker.state_dict() if state.tracker is not None else None,
                "epoch_rng": state.epoch_rng,
            }
        return snapshot

    def restore_training_state(self, snapshot: dict[str, Any]) -> int:
        """Loads a :meth:`training_state` snapshot; returns the ``initial_epoch`` for the next ``fit``.

        When the snapshot was taken mid-epoch, that ``fit`` continues the epoch at its next batch with
        the epoch's running sums, and the data in the order the interrupted epoch drew it.
        """
        if snapshot.get("format") != SNAPSHOT_FORMAT:
            raise ValueError(
                f"This training state has format {snapshot.get('format')!r}; this trainwell reads format "
                f"{SNAPSHOT_FORMAT}."
            )
        self.network.load_state_dict(snapshot["network"])
        if self.optimizer is not None and snapshot["optimizer"] is not None:
            self.optimizer.load_state_dict(snapshot["optimizer"])
            self._move_optimizer_state()
        self._loop.state.load_state_dict(snapshot["loop"])
        self._steps.load_state_dict(snapshot["steps"])
        restore_rng(snapshot["rng"])
        progress = snapshot.get("epoch_in_progress")
        self._loop.pending_resume = None
        if progress is not None:
            self._loop.pending_resume = ResumePoint(
                epoch=int(progress["epoch"]),
                batch=int(progress["batch"]),
                tracker=progress["tracker"],
                epoch_rng=progress["epoch_rng"],
            )
        return int(snapshot["next_epoch"])


def _has_gradients(network: nn.Module) -> bool:
    # After an optimizer step the gradients are cleared (set to None); anything left is a pending accumulation.
    return any(parameter.grad is not None for parameter in network.parameters())
