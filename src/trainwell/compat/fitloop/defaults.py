"""fitloop's default stage functions, for classification: loss and accuracy, with no per-batch host sync.

fitloop's defaults called ``.item()`` on every batch; these return device tensors, which trainwell keeps
on the device until the epoch-end function sums them (one host read per value per epoch).
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["FitLoopDefaults"]


class FitLoopDefaults:
    """Stage functions a ``FitLoop`` uses when none are given: cross-entropy-style loss and accuracy.

    The steps return ``running_loss`` (the batch's loss times its size) and ``running_correct`` (how many
    predictions were right); the epoch ends return ``loss`` and ``accuracy`` over the epoch. ``criteria``
    is the default model-selection value when the default validation step is used.
    """

    batch_step_criteria = "running_correct"
    batch_step_loss = "running_loss"
    criteria = "accuracy"
    loss = "loss"

    @staticmethod
    def _common_batch_step(state: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        data, targets = state.batch
        scores = state.model(data)
        loss = state.loss_function(scores, targets)
        values = {
            FitLoopDefaults.batch_step_criteria: (scores.detach().argmax(dim=1) == targets).sum(),
            FitLoopDefaults.batch_step_loss: loss.detach() * state.batch_size,
        }
        return loss, values

    @staticmethod
    def train_step(state: Any) -> dict[str, torch.Tensor]:
        """Forward, loss, backward and optimizer step; returns the batch's loss sum and correct count."""
        loss, values = FitLoopDefaults._common_batch_step(state)
        loss.backward()
        state.optimizer.step()
        return values

    @staticmethod
    def valid_step(state: Any) -> dict[str, torch.Tensor]:
        """Forward and loss; returns the batch's loss sum and correct count."""
        return FitLoopDefaults._common_batch_step(state)[1]

    @staticmethod
    def test_step(state: Any) -> dict[str, torch.Tensor]:
        """Forward and loss; returns the batch's loss sum and correct count."""
        return FitLoopDefaults._common_batch_step(state)[1]

    @staticmethod
    def _common_epoch_end(state: Any) -> dict[str, torch.Tensor]:
        return {
            FitLoopDefaults.criteria: state[FitLoopDefaults.batch_step_criteria].sum() / state.size,
            FitLoopDefaults.loss: state[FitLoopDefaults.batch_step_loss].sum() / state.size,
        }

    @staticmethod
    def train_epoch_end(state: Any) -> dict[str, torch.Tensor]:
        """``loss`` and ``accuracy`` (a fraction) over the epoch."""
        return FitLoopDefaults._common_epoch_end(state)

    @staticmethod
    def valid_epoch_end(state: Any) -> dict[str, torch.Tensor]:
        """``loss`` and ``accuracy`` (a fraction) over the epoch."""
        return FitLoopDefaults._common_epoch_end(state)

    @staticmethod
    def test_epoch_end(state: Any) -> dict[str, torch.Tensor]:
        """``loss`` and ``accuracy`` (a fraction) over the epoch."""
        return FitLoopDefaults._common_epoch_end(state)
