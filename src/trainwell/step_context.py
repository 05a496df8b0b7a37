"""What a user's own step function receives, and what its epoch functions read back.

A custom training step is ``step(ctx, batch) -> dict``: :class:`StepContext` hands it the networks, the
optimizers, the loss, the device and where the loop is, plus ``backward``/``optimizer_step`` helpers
that apply mixed precision when it is on. The dict it returns is split by :func:`split_step_output`:
scalars are logged (averaged over the epoch weighted by batch size, like the built-in loss), ``y_pred``
and ``y_true`` feed the model's metrics, and everything is kept for the phase's epoch-end function as
:class:`StepOutputs`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from trainwell.data import batch_size_of, to_device

if TYPE_CHECKING:
    from trainwell.steps import Steps

__all__ = ["EPOCH_FUNCTION_NAMES", "StepContext", "StepOutputs", "split_step_output"]

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


class StepOutputs:
    """What the steps of one phase returned, for its epoch-end function.

    ``outputs['d_loss']`` stacks that key's per-step values (scalars become a 1-D tensor; tensors are
    concatenated along their first dimension); ``outputs.sizes`` are the steps' batch sizes and
    ``outputs.size`` their sum.

    >>> outputs = StepOutputs([{'hits': torch.tensor(3.)}, {'hits': torch.tensor(1.)}], [4, 2])
    >>> outputs['hits'].sum() / outputs.size, len(outputs)
    (tensor(0.6667), 2)
    """

    def __init__(self, steps: list[dict[str, Any]], sizes: list[int]) -> None:
        self.steps = steps
        self.sizes = sizes

    @property
    def size(self) -> int:
        """The number of examples the phase processed."""
        return sum(self.sizes)

    def __len__(self) -> int:
        return len(self.steps)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.steps)

    def keys(self) -> list[str]:
        """The keys the steps returned."""
        return list(self.steps[0]) if self.steps else []

    def __getitem__(self, key: str) -> Any:
        if not self.steps or key not in self.steps[0]:
            raise KeyError(f"The steps returned no value named {key!r}; they returned {self.keys()}.")
        values = [step[key] for step in self.steps]
        first = values[0]
        if isinstance(first, torch.Tensor):
            return torch.stack(values) if first.dim() == 0 else torch.cat(values)
        if isinstance(first, (int, float)):
            return torch.tensor(values)
        return values


def split_step_output(output: Any, batch: Any) -> tuple[dict[str, torch.Tensor], Any, Any, int, dict[str, Any]]:
    """Splits what a custom step returned into logged scalars, metric inputs, batch size and raw outputs.

    Returns:
        ``(logged, y_pred, y_true, size, kept)``: the scalars to log (detached 0-d tensors), the
        ``y_pred``/``y_true`` for the model's metrics (or None), the batch size (``size`` key, else the
        first dimension of the batch's first tensor), and every returned value, detached.

    >>> logged, y_pred, _, size, _ = split_step_output({'loss': torch.tensor(2.0), 'size': 5}, None)
    >>> logged, y_pred, size
    ({'loss': tensor(2.)}, None, 5)
    """
    if output is None:
        output = {}
    if not isinstance(output, Mapping):
        raise TypeError(
            "A custom step must return a dict of values to log, such as {'loss': loss}, or None. "
            f"Received a {type(output).__name__}."
        )
    kept: dict[str, Any] = {}
    logged: dict[str, torch.Tensor] = {}
    for key, value in output.items():
        if isinstance(value, torch.Tensor):
            value = value.detach()
            if value.dim() == 0 and key not in ("y_pred", "y_true", "size"):
                logged[key] = value
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and key != "size":
            logged[key] = torch.tensor(float(value))
        kept[key] = value
    size = output.get("size")
    size = int(size) if size is not None else batch_size_of(batch)
    return logged, kept.get("y_pred"), kept.get("y_true"), size, kept
