"""The learning-rate range test: train briefly with a growing learning rate and watch the loss.

:func:`find_lr` runs ``Model.fit`` (or ``fit_generator``) for ``num_steps`` batches while a callback
raises the learning rate exponentially from ``start_lr`` to ``end_lr``, records each batch's loss, and
stops once the loss diverges. Afterwards the model is exactly as before: weights, buffers, optimizer
state and learning rates, the loop's counters and the random generators, so a ``fit`` that follows
runs as if the test had never happened. The suggestion is a tenth of the rate at the lowest loss.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from trainwell.callbacks.base import Callback
from trainwell.engine.dry_run import has_uninitialized_parameters
from trainwell.model.lazy_layers import ensure_optimizer
from trainwell.utils.checks import check_positive_int
from trainwell.utils.rng import capture_rng, restore_rng

__all__ = ["LRFinderResult", "LRRangeTest", "find_lr"]


@dataclass
class LRFinderResult:
    """What the range test measured.

    Attributes:
        lrs: the learning rate of each training batch, increasing exponentially.
        losses: each batch's loss.
        smoothed_losses: the bias-corrected exponential moving average of ``losses``.
        diverged: whether the test stopped early because the loss blew up.
    """

    lrs: list[float]
    losses: list[float]
    smoothed_losses: list[float]
    diverged: bool

    @property
    def lr_at_min_loss(self) -> float | None:
        """The learning rate at the lowest smoothed loss (usually too high to train with: divide by ~10)."""
        if not self.smoothed_losses:
            return None
        return self.lrs[int(np.argmin(self.smoothed_losses))]

    @property
    def suggestion(self) -> float | None:
        """A learning rate to train with: one tenth of :attr:`lr_at_min_loss`.

        The lowest loss is reached just before training becomes unstable; an order of magnitude below
        it the loss still falls steeply and training is stable. (The point of steepest descent of the
        smoothed loss was tried and rejected: on small data it is dominated by the noise of the first
        batches.) None when the lowest smoothed loss lies in the first tenth of the points, where the
        rate is still too small to change anything: the loss never went down.
        """
        if not self.smoothed_losses:
            return None
        lowest = int(np.argmin(self.smoothed_losses))
        if lowest < max(1, len(self.smoothed_losses) // 10):
            return None
        return self.lrs[lowest] / 10

    def plot(self, path: str | os.PathLike[str] | None = None, *, ax: Any = None) -> Any:
        """Draws the loss against the learning rate (log scale), with the suggestion marked.

        Args:
            path: when given, the figure is saved there (the extension picks the format: .png, .pdf...)
                and closed.
            ax: matplotlib axes to draw on (default: a new figure).

        Returns:
            The matplotlib figure.
        """
        from trainwell.tools.plotting import _pyplot

        plt = _pyplot()
        if ax is None:
            figure, ax = plt.subplots(figsize=(6, 4))
        else:
            figure = ax.figure
        ax.plot(self.lrs, self.losses, alpha=0.4, label="loss")
        ax.plot(self.lrs, self.smoothed_losses, label="smoothed loss")
        suggestion = self.suggestion
        if suggestion is not None:
            ax.axvline(suggestion, color="red", linestyle="--", label=f"suggestion {suggestion:.2e}")
        ax.set_xscale("log")
        ax.set_xlabel("learning rate")
        ax.set_ylabel("loss")
        ax.set_title("Learning rate range test")
        ax.grid(alpha=0.3)
        ax.legend()
        if path is not None:
            figure.tight_layout()
            figure.savefig(path)
            plt.close(figure)
        return figure


class LRRangeTest(Callback):
    """Sets an exponentially increasing learning rate on every batch and records the losses.

    Every parameter group gets the same rate. Training is stopped after ``num_steps`` batches, or as
    soon as the smoothed loss exceeds ``diverge_factor`` times its best value or a loss is not finite.
    :func:`find_lr` is the usual way to use it; it also restores the model afterwards.

    Args:
        start_lr: the first batch's learning rate.
        end_lr: the learning rate of batch ``num_steps``.
        num_steps: how many batches the test lasts at most.
        smooth: the moving average's factor (0: no smoothing).
        diverge_factor: the smoothed loss over its best that counts as divergence.
    """

    reads_gradients = False  # its on_train_batch_end never looks at gradients

    def __init__(self, start_lr: float, end_lr: float, num_steps: int, smooth: float, diverge_factor: float) -> None:
        self.start_lr, self.end_lr, self.num_steps = start_lr, end_lr, num_steps
        self.smooth, self.diverge_factor = smooth, diverge_factor
        self.result = LRFinderResult([], [], [], diverged=False)
        self._average = 0.0
        self._best = math.inf

    def _rate(self, step: int) -> float:
        return self.start_lr * (self.end_lr / self.start_lr) ** (step / (self.num_steps - 1))

    def on_train_batch_begin(self, batch_number: int, logs: Mapping[str, Any]) -> None:
        """Sets the next rate of the exponential schedule on every parameter group."""
        rate = self._rate(len(self.result.lrs))
        for group in self.model.optimizer.param_groups:
            if isinstance(group["lr"], torch.Tensor):
                group["lr"].fill_(rate)  # a capturable optimizer's rate lives in a tensor: keep that tensor
            else:
                group["lr"] = rate
        self.result.lrs.append(rate)

    def on_train_batch_end(self, batch_number: int, logs: Mapping[str, Any]) -> None:
        """Records the batch's loss and stops on divergence or after ``num_steps`` batches."""
        loss = float(logs["loss"])
        result = self.result
        result.losses.append(loss)
        self._average = self.smooth * self._average + (1 - self.smooth) * loss
        # Divided by (1 - smooth^n): the average starts at 0 and would otherwise underestimate early losses.
        smoothed = self._average / (1 - self.smooth ** len(result.losses))
        result.smoothed_losses.append(smoothed)
        if not math.isfinite(smoothed) or smoothed > self.diverge_factor * self._best:
            result.diverged = True
            self.model.stop_training = True
        self._best = min(self._best, smoothed)
        if len(result.losses) >= self.num_steps:
            self.model.stop_training = True


def find_lr(
    model: Any,
    data: Any,
    y: Any = None,
    *,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    num_steps: int = 100,
    batch_size: int = 32,
    smooth: float = 0.98,
    diverge_factor: float = 4.0,
) -> LRFinderResult:
    """Runs the learning-rate range test on a :class:`~trainwell.Model`, then puts the model back.

    Args:
        model: a trainwell ``Model`` with an optimizer and a loss.
        data: in-memory inputs (with ``y``), or, when ``y`` is None, an iterable of ``(x, y)`` batches
            (a DataLoader, a list, a generator), restarted when it runs out before ``num_steps``.
        y: the targets of in-memory ``data``.
        start_lr: the first learning rate.
        end_lr: the last learning rate, reached at batch ``num_steps``.
        num_steps: the number of batches (the test stops earlier when the loss diverges).
        batch_size: the batch size for in-memory ``data``.
        smooth: the factor of the loss's exponential moving average, in [0, 1).
        diverge_factor: the test stops when the smoothed loss exceeds this many times its best.

    Returns:
        The :class:`LRFinderResult`: ``lrs``, ``losses``, ``suggestion``, ``plot()``.

    Raises:
        TypeError: ``model`` is not a trainwell Model, or in-memory ``data`` came without ``y``.
        ValueError: an argument is out of range.
        RuntimeError: the model has no optimizer, or lazy layers were not materialized yet.

    The weights, buffers, optimizer state (learning rates included), the loop's counters and every
    random generator are restored bit for bit; a one-shot generator's consumed batches cannot be.

    >>> from torch import nn
    >>> from trainwell import Model
    >>> model = Model(nn.Linear(3, 1), 'sgd', 'mse')
    >>> result = find_lr(model, torch.randn(256, 3), torch.randn(256, 1), num_steps=20)
    >>> len(result.lrs) <= 20, result.lrs[0]
    (True, 1e-07)
    """
    _check_arguments(model, data, y, start_lr, end_lr, num_steps, smooth, diverge_factor)
    check_positive_int(batch_size, "batch_size")
    recorder = LRRangeTest(float(start_lr), float(end_lr), num_steps, float(smooth), float(diverge_factor))
    saved = _Saved(model)
    try:
        options: dict[str, Any] = {"epochs": 1, "steps_per_epoch": num_steps, "verbose": False, "callbacks": [recorder]}
        if y is None:
            model.fit_generator(data, **options)
        else:
            model.fit(data, y, batch_size=batch_size, **options)
    finally:
        saved.restore()
    return recorder.result


class _Saved:
    """Copies of everything a few training batches change, and their restoration in place."""

    def __init__(self, model: Any) -> None:
        self.model = model
        # Clones, not references: training changes the live tensors in place.
        self.weights = {name: tensor.detach().clone() for name, tensor in model.network.state_dict().items()}
        self.optimizer = copy.deepcopy(model.optimizer.state_dict())
        self.loop = dataclasses.replace(model.state)
        self.modes = {module: module.training for module in model.network.modules()}
        self.stop_training = model.stop_training
        self.rng = capture_rng()

    def restore(self) -> None:
        model = self.model
        # load_state_dict copies into the existing tensors: the optimizer keeps holding the same parameters.
        model.network.load_state_dict(self.weights)
        model.optimizer.load_state_dict(self.optimizer)
        for item in dataclasses.fields(self.loop):
            setattr(model.state, item.name, getattr(self.loop, item.name))
        for module, training in self.modes.items():
            module.train(training)
        model.optimizer.zero_grad(set_to_none=True)
        model.stop_training = self.stop_training
        restore_rng(self.rng)


def _check_arguments(
    model: Any,
    data: Any,
    y: Any,
    start_lr: float,
    end_lr: float,
    num_steps: int,
    smooth: float,
    diverge_factor: float,
) -> None:
    from trainwell.model.model import Model  # here: model.py is the facade and may one day import this module

    if not isinstance(model, Model):
        raise TypeError(
            f"`model` must be a trainwell Model. Received: model of type {type(model).__name__}. "
            "Wrap the network: Model(network, optimizer, loss_function)."
        )
    ensure_optimizer(model)  # a network materialized by hand gets its waiting named optimizer now
    if has_uninitialized_parameters(model.network):
        raise RuntimeError(
            "The network has lazy layers without shapes yet, whose weights could not be restored after the "
            "test. Call model.materialize(sample_x) (or trainwell.materialize(model.network, sample_x)) first."
        )
    if model.optimizer is None:
        raise RuntimeError("This Model has no optimizer: pass `optimizer` to Model(...) before calling find_lr.")
    if y is None and isinstance(data, (torch.Tensor, np.ndarray)):
        raise TypeError(
            f"`y` is required with in-memory `data`. Received: data of type {type(data).__name__} and y=None. "
            "Pass find_lr(model, x, y), or an iterable of (x, y) batches as `data`."
        )
    for name, value in (("start_lr", start_lr), ("end_lr", end_lr), ("diverge_factor", diverge_factor)):
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0:
            raise ValueError(f"`{name}` must be a positive number. Received: {name}={value!r}.")
    if end_lr <= start_lr:
        raise ValueError(
            f"`end_lr` must be larger than `start_lr`: the test increases the rate. Received: start_lr={start_lr!r}, "
            f"end_lr={end_lr!r}."
        )
    if not isinstance(num_steps, int) or isinstance(num_steps, bool) or num_steps < 2:
        raise ValueError(f"`num_steps` must be an int of at least 2. Received: num_steps={num_steps!r}.")
    if not isinstance(smooth, (int, float)) or not 0 <= smooth < 1:
        raise ValueError(f"`smooth` must be a number in [0, 1) (0: no smoothing). Received: smooth={smooth!r}.")
    if diverge_factor <= 1:
        raise ValueError(
            f"`diverge_factor` must be larger than 1 (a loss this many times its best stops the test). "
            f"Received: diverge_factor={diverge_factor!r}."
        )
