"""What a user's own step function receives, and what its epoch functions read back.

A custom training step is ``step(ctx, batch) -> dict``: :class:`StepContext` hands it the networks, the
optimizers, the loss, the device and where the loop is, plus ``backward``/``optimizer_step`` helpers
that apply mixed precision when it is on. What it returns is read by
:mod:`trainwell.engine.step_outputs`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from trainwell.data.batches import to_device
from trainwell.engine.steps import Steps

__all__ = ["EPOCH_FUNCTION_NAMES", "StepContext"]

# fitloop's stage names: per phase, a function called when its epoch starts and one when it ends.
EPOCH_FUNCTION_NAMES = tuple(
    f"{phase}_epoch_{moment}" for phase in ("train", "valid", "test") for moment in ("start", "end")
)


class StepContext:
    """Everything a custom step or epoch function needs, kept up to date by the loop.

    Attributes:
        model: the :class:`~trainwell.Model` being run.
        networks: the sub-networks by name (the items of an ``nn.ModuleDict`` network, else
            ``{'network': network}``), as they should be called (wrapped for distributed training).
        optimizers: the optimizers by name (``{'optimizer': optimizer}`` for a single one).
        loss_function: the model's loss, or None.
        device: where batches go (the batch a step receives is already there).
        phase: 'train', 'valid' or 'test'.
        epoch: the epoch number (from 1).
        batch_number: the batch number in the phase (from 1).
        global_step: training batches processed since the model was created.
    """

    def __init__(self, model: Any, steps: Steps) -> None:
        self.model = model
        self._steps = steps
        self.phase = "train"
        self.epoch = 0
        self.batch_number = 0
        self.global_step = 0

    # -- what the step works with -------------------------------------------------------------------------
    @property
    def network(self) -> nn.Module:
        """The whole network, as it should be called."""
        return self._steps.network

    @property
    def networks(self) -> dict[str, nn.Module]:
        """The sub-networks by name, as they should be called."""
        if self._steps.networks is not None:
            return self._steps.networks
        network = self._steps.network
        inner = getattr(network, "module", network)  # DistributedDataParallel / DataParallel wrap the module
        if isinstance(inner, nn.ModuleDict):
            return dict(inner.items())
        return {"network": network}

    @property
    def optimizer(self) -> Any:
        """The model's optimizer (an :class:`~trainwell.optimizers.OptimizerGroup` when there are several)."""
        return self._steps.optimizer

    @property
    def optimizers(self) -> Mapping[str, torch.optim.Optimizer]:
        """The optimizers by name."""
        optimizer = self._steps.optimizer
        if optimizer is None:
            return {}
        if isinstance(optimizer, torch.optim.Optimizer):
            return {"optimizer": optimizer}
        return optimizer

    @property
    def loss_function(self) -> Callable[..., torch.Tensor] | None:
        """The model's loss function, or None."""
        return self._steps.loss_function

    @property
    def device(self) -> torch.device | None:
        """Where batches go, or None to leave them where they are."""
        return self._steps.device

    # -- helpers that respect mixed precision ----------------------------------------------------------------
    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """The model's mixed-precision context (a no-op at ``precision='32'``): wrap forward and loss in it."""
        return self._steps.autocast()

    def backward(self, loss: torch.Tensor) -> None:
        """``loss.backward()``, scaled first when ``precision='16'`` uses a gradient scaler."""
        self._steps.backward(loss)

    def optimizer_step(self, optimizer: torch.optim.Optimizer | str) -> None:
        """Steps ``optimizer`` (or the one with that name) on its gradients, then clears them.

        With ``precision='16'`` the gradients are unscaled and the step is skipped when they overflowed,
        as ``torch.amp.GradScaler`` does; gradient-clipping callbacks run just before the step.
        """
        if isinstance(optimizer, str):
            optimizers = self.optimizers
            if optimizer not in optimizers:
                raise KeyError(f"No optimizer named {optimizer!r}; this model has {sorted(optimizers)}.")
            optimizer = optimizers[optimizer]
        self._steps.apply_optimizer(optimizer)

    def to_device(self, obj: Any) -> Any:
        """Moves tensors nested in tuples, lists and dicts to the model's device."""
        return to_device(obj, self._steps.device)
