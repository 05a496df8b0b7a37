"""The default per-batch steps: train (forward, loss, backward, optimizer), evaluate and predict.

A :class:`Steps` object owns everything one batch needs (network, optimizer, loss, device) and nothing
about epochs, metrics or callbacks, which belong to the loop. Replacing the step (several optimizers,
GANs, mixed precision, clipping) means subclassing or swapping this object, never writing a new loop.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence

from trainwell.data.batches import batch_size_of, split_batch, to_device
from trainwell.engine.gradient_sync import gradient_sync, synchronize_gradients
from trainwell.engine.input_errors import call_checked
from trainwell.engine.optimizer_calls import clear_gradients
from trainwell.engine.precision import MixedPrecision
from trainwell.engine.step_outputs import split_step_output
from trainwell.optimizers import OptimizerGroup
from trainwell.utils.checks import check_targets
from trainwell.utils.tensors import torch_apply

__all__ = ["StepFunction", "StepResult", "Steps", "call_network"]

# A user's own step: ``step(context, batch) -> {name: value}`` (see trainwell.engine.step_context.StepContext).
StepFunction = Callable[[Any, Any], Any]


@dataclass
class StepResult:
    """What one batch produced: the detached loss, the predictions and targets, the batch size.

    A custom step also gives ``values``, the named scalars it logs, and ``outputs``, all it returned.
    """

    loss: torch.Tensor | None
    y_pred: Any
    y_true: Any
    size: int
    values: dict[str, torch.Tensor] | None = None
    outputs: dict[str, Any] | None = None

    def kept(self) -> dict[str, Any]:
        """What an epoch-end function sees of this step."""
        if self.outputs is not None:
            return self.outputs
        return {"loss": self.loss, "y_pred": self.y_pred, "y_true": self.y_true}


def _pair_and_size(batch: Any, argument: str) -> tuple[Any, Any, int]:
    """``(x, y, batch size)`` of a batch, with a shortcut for the common pair of tensors (runs every batch)."""
    kind = type(batch)
    if (kind is tuple or kind is list) and len(batch) == 2:  # a DataLoader yields lists
        x, y = batch
        if type(x) is torch.Tensor and x.dim() > 0:
            return x, y, x.shape[0]
    x, y = split_batch(batch, argument)
    return x, y, batch_size_of(x, y)


def call_network(network: Callable[..., Any], x: Any) -> Any:
    """Calls the network the Poutyne way: a tuple or list of inputs is unpacked into ``network(*x)``.

    A ``PackedSequence`` (a named tuple) is one input, not a tuple of them.
    """
    if isinstance(x, (tuple, list)) and not isinstance(x, PackedSequence):
        return network(*x)
    return network(x)


class Steps:
    """The default train, evaluation and prediction steps for one network and one optimizer.

    Args:
        network: the module to train.
        optimizer: its optimizer, or None for evaluation/prediction only.
        loss_function: ``loss(y_pred, y_true) -> Tensor``, mean-reduced over the batch.
        device: where batches are moved before the forward pass, or None to leave them as they are.

    Gradient accumulation (``batches_per_step=k``) is exact: with k > 1 the step backpropagates
    ``loss * batch_size`` and divides the accumulated gradients by the number of examples before the
    optimizer step, which is the gradient of one batch k times larger, whatever the batch sizes.

    >>> net = nn.Linear(2, 1)
    >>> steps = Steps(net, torch.optim.SGD(net.parameters(), lr=0.1), nn.MSELoss(), None)
    >>> result = steps.forward_backward((torch.ones(4, 2), torch.zeros(4, 1)), accumulate=False)
    >>> result.size, steps.optimizer_step()
    (4, None)
    """

    def __init__(
        self,
        network: nn.Module,
        optimizer: torch.optim.Optimizer | OptimizerGroup | None,
        loss_function: Callable[..., torch.Tensor] | None,
        device: torch.device | None,
    ) -> None:
        self.network = network
        self.optimizer = optimizer
        self.loss_function = loss_function
        self.device = device
        # Mixed precision: a context for forward + loss, and for fp16 a gradient scaler.
        self.precision = MixedPrecision("32")
        self.autocast: Callable[[], contextlib.AbstractContextManager[Any]] = contextlib.nullcontext
        self.mixed = False
        self.examples_in_step = 0
        # Keep the gradients after the optimizer step until the next step begins (a callback may read
        # them in on_train_batch_end); False clears them at once. The loop sets it per epoch.
        self.keep_gradients = False
        self._step_open = False  # gradients of the current step are being accumulated
        self._unsynced = False  # the last backward kept its gradients on this rank (no_sync)
        # The optimizers whose step ran while keep_gradients held: their gradients are kept, not cleared
        # yet. Only those are cleared later, so that training is the same with or without keep_gradients.
        self._kept: list[torch.optim.Optimizer] = []
        # Called when the step's gradients are final (accumulation averaged, later AMP-unscaled) and
        # the optimizer has not run yet: where gradient clipping and gradient statistics belong.
        self.before_optimizer_step: list[Callable[[], None]] = []
        self.check_next_targets = True
        # The user's argument holding the phase's data (set by the loop): named when a batch is malformed.
        self.data_argument = "generator"
        self.check_next_inputs = True  # predict's first batch: its errors name the data argument
        # In-memory targets are checked whole, once per phase, instead of only the first batch's.
        self.all_targets: Any = None
        # A user's own steps, ``step(context, batch) -> dict``, replace forward_backward/evaluate.
        self.train_function: StepFunction | None = None
        self.evaluate_function: StepFunction | None = None
        self.context: Any = None
        # The parts a custom step calls, when they differ from the network's own (compiled, distributed).
        self.networks: dict[str, nn.Module] | None = None
        # trainwell.callbacks.profiler's hook: called with the name of each section of a training step
        # ('copy', 'forward', 'backward', 'optimizer'...) as it ends. None costs one test per section.
        self.timer: Callable[[str], None] | None = None

    def _forward_loss(self, x: Any, y: Any) -> tuple[torch.Tensor, Any, Any]:
        if self.mixed:
            with self.autocast():
                return self._forward_loss_in_context(x, y)
        return self._forward_loss_in_context(x, y)  # no context manager to enter per batch at full precision

    def _forward_loss_in_context(self, x: Any, y: Any) -> tuple[torch.Tensor, Any, Any]:
        device = self.device
        x = to_device(x, device)
        if self.timer is not None:
            self.timer("copy")
        if self.check_next_targets:
            # The first batch of the phase: an error here is most often data of the wrong shape or dtype.
            y_pred = call_checked(self._call_network, self.network, x, self.data_argument)
        else:
            y_pred = call_network(self.network, x)
        if self.check_next_targets:
            # Once per phase: the first batch proves the targets match the loss and the output size.
            if self.loss_function is None:
                raise RuntimeError(
                    "This Model has no loss function: pass `loss_function` to Model(...) to train or evaluate."
                )
            check_targets(self.loss_function, y_pred, y if self.all_targets is None else self.all_targets)
            self.check_next_targets = False
        y = to_device(y, device)
        return self.loss_function(y_pred, y), y_pred, y  # type: ignore[misc]

    def forward_backward(self, batch: Any, *, accumulate: bool, sync: bool = True) -> StepResult:
        """Runs forward, loss and backward on a ``(x, y)`` batch, leaving the gradients in place.

        Args:
            batch: the ``(x, y)`` pair.
            accumulate: whether this batch is part of a multi-batch step (``batches_per_step > 1``).
            sync: whether this backward synchronizes the gradients between torchrun ranks. False for
                the micro-batches of an accumulation that do not step the optimizer: DDP's ``no_sync``
                (FSDP's ``set_requires_gradient_sync(False)``) keeps their gradients local, and the next
                synchronized backward reduces the whole sum at once.
        """
        if self.timer is not None:
            self.timer("callbacks")  # the batch-begin callbacks ran since the batch arrived
        if not self._step_open:
            # A step begins: clear the last step's gradients if they were kept for the callbacks.
            self._release_kept()
            self._step_open = True
        x, y, size = _pair_and_size(batch, self.data_argument)
        with gradient_sync(self.network, sync):
            # DDP decides in its forward whether the backward reduces: both run inside the context.
            loss, y_pred, y = self._forward_loss(x, y)
            if accumulate:
                self.backward(loss * size)
                self.examples_in_step += size
            else:
                self.backward(loss)
        self._unsynced = not sync
        y_pred = y_pred.detach() if isinstance(y_pred, torch.Tensor) else torch_apply(y_pred, torch.Tensor.detach)
        return StepResult(loss.detach(), y_pred, y, size)

    def backward(self, loss: torch.Tensor) -> None:
        """Backpropagates ``loss``, through the gradient scaler when fp16 precision uses one."""
        timer = self.timer
        if timer is not None:
            timer("forward")
        if self._kept:
            # A custom step that updates twice in one batch: the gradients of its earlier update, kept for
            # the callbacks, must not add to these (without keep_gradients they were cleared already).
            self._release_kept()
        if self.precision.scaler is not None:
            self.precision.scaler.scale(loss).backward()
        else:
            loss.backward()
        if timer is not None:
            timer("backward")

    def optimizer_step(self) -> None:
        """Applies the optimizer to the gradients gathered since the last step, then clears them."""
        if self.timer is not None:
            self.timer("callbacks")  # the backward-end callbacks
        if self.optimizer is None:
            raise RuntimeError("This Model has no optimizer: pass `optimizer` to Model(...) to train.")
        if self._unsynced:
            # The step ends on a micro-batch that kept its gradients local (an epoch cut short by
            # stop_training): reduce them now, as the synchronized backward would have.
            synchronize_gradients(self.network)
            self._unsynced = False
        if self.examples_in_step:
            # Gradients of sum(loss_i * size_i); dividing by the total gives the big batch's mean gradient.
            scale = 1.0 / self.examples_in_step
            for group in self.optimizer.param_groups:
                for parameter in group["params"]:
                    if parameter.grad is not None:
                        parameter.grad.mul_(scale)
            self.examples_in_step = 0
        self._apply(self._optimizers())

    def _optimizers(self) -> list[torch.optim.Optimizer]:
        optimizer = self.optimizer
        if optimizer is None:
            return []
        return list(optimizer.values()) if isinstance(optimizer, OptimizerGroup) else [optimizer]

    def _release_kept(self) -> None:
        """Clears the gradients kept after their optimizer's step (see ``keep_gradients``)."""
        if self._kept:
            clear_gradients(self._kept)
            self._kept = []

    def apply_optimizer(self, optimizer: torch.optim.Optimizer) -> None:
        """Steps one optimizer on its final gradients (unscaled, clipped by hooks), then clears them."""
        self._apply([optimizer])

    def _apply(self, optimizers: list[torch.optim.Optimizer]) -> None:
        precision = self.precision
        if precision.scaler is not None:
            for optimizer in optimizers:
                precision.scaler.unscale_(optimizer)  # clipping hooks must see the true gradients
        for hook in self.before_optimizer_step:
            hook()
        for optimizer in optimizers:
            precision.step(optimizer)
        if self.keep_gradients:
            self._kept.extend(optimizer for optimizer in optimizers if all(optimizer is not k for k in self._kept))
        else:
            clear_gradients(optimizers)
        self._step_open = False
        precision.update()
        if self.timer is not None:
            self.timer("optimizer")

    def evaluate(self, batch: Any) -> StepResult:
        """Forward and loss without gradients on a ``(x, y)`` batch."""
        x, y, size = _pair_and_size(batch, self.data_argument)
        loss, y_pred, y = self._forward_loss(x, y)
        return StepResult(loss, y_pred, y, size)

    def run_custom(self, function: StepFunction, batch: Any) -> StepResult:
        """Runs a user's step on a batch moved to the device; splits what it returned for the loop."""
        timer = self.timer
        if timer is not None:
            timer("callbacks")
        if torch.is_grad_enabled():
            self._release_kept()  # the last step's, kept for the callbacks until now
        batch = to_device(batch, self.device)
        if timer is not None:
            timer("copy")
        output = function(self.context, batch)
        if timer is not None:
            timer("forward")  # the step's own work after its last backward/optimizer call
        logged, y_pred, y_true, size, kept = split_step_output(output, batch)
        return StepResult(None, y_pred, y_true, size, logged, kept)

    def predict(self, x: Any) -> Any:
        """The network's output on inputs ``x`` (no gradients are tracked by the caller)."""
        x = to_device(x, self.device)
        call: Callable[[Any], Any] = self._call_network
        if self.check_next_inputs:
            self.check_next_inputs = False
            argument = self.data_argument

            def call(inputs: Any) -> Any:
                return call_checked(self._call_network, self.network, inputs, argument)

        if self.mixed:
            with self.autocast():
                return call(x)
        return call(x)

    def _call_network(self, x: Any) -> Any:
        return call_network(self.network, x)

    def set_precision(self, precision: MixedPrecision) -> None:
        """Uses ``precision`` for the following steps (autocast context and gradient scaler)."""
        self.precision = precision
        self.autocast = precision.autocast
        self.mixed = precision.dtype is not None

    @property
    def step_pending(self) -> bool:
        """Whether gradients are being accumulated for an optimizer step that has not run yet."""
        return self._step_open

    def gradient_state(self) -> tuple[bool, bool, list[torch.optim.Optimizer]]:
        """Where the clearing of gradients stands (what the sanity check puts back)."""
        return self.keep_gradients, self._step_open, list(self._kept)

    def set_gradient_state(self, state: tuple[bool, bool, list[torch.optim.Optimizer]]) -> None:
        """Restores :meth:`gradient_state`."""
        self.keep_gradients, self._step_open, kept = state
        self._kept = list(kept)

    def state_dict(self) -> dict[str, Any]:
        """The state a checkpoint needs to continue: a partially accumulated step, the gradient scaler."""
        return {"examples_in_step": self.examples_in_step, "precision": self.precision.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restores :meth:`state_dict`."""
        self.examples_in_step = int(state["examples_in_step"])
        if state.get("precision") is not None:
            self.precision.load_state_dict(state["precision"])
