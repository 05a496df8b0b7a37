"""The sanity check: a few validation and training batches before the first epoch, then everything put back.

A bug in the evaluation path (a loss that fails in eval mode, a validation set of the wrong shape, a
metric that cannot compute) otherwise shows only after a whole training epoch. ``fit`` therefore runs
``n`` validation batches (forward, loss, metrics) and ``n`` training batches (forward, loss, backward,
metrics; the default step applies no optimizer) before calling any callback. Afterwards the weights,
buffers (batch-norm statistics), gradients, optimizer states, gradient scaler, loop counters, module
modes and every random generator are exactly as before, so the run is bit for bit the one it would have
been without the check.

Only sources that can be read again from their start without anything the user could notice are used
(tensors in memory, DataLoaders over map-style datasets, lists and tuples of batches): a generator's
batches would be lost to the real epoch, and a user's own iterable may count its calls or consume a
stream, so those are left alone.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterable
from contextlib import AbstractContextManager
from itertools import islice
from typing import Any

import torch
from torch.utils.data import DataLoader, IterableDataset

from trainwell.data.sources import IterableBatches, TensorBatches
from trainwell.utils.rng import capture_rng, restore_rng

__all__ = ["DEFAULT_SANITY_BATCHES", "check_sanity_option", "sanity_check"]

DEFAULT_SANITY_BATCHES = 2


def check_sanity_option(value: Any) -> int:
    """The number of batches ``Model(sanity_check=...)`` asks for: True -> 2, False -> 0, an int as is.

    >>> check_sanity_option(True), check_sanity_option(False), check_sanity_option(5)
    (2, 0, 5)
    """
    if isinstance(value, bool):
        return DEFAULT_SANITY_BATCHES if value else 0
    if isinstance(value, int) and value >= 0:
        return value
    raise TypeError(
        "`sanity_check` must be True (2 batches), False (no check) or a number of batches >= 0. "
        f"Received: sanity_check={value!r} (type {type(value).__name__})."
    )


def reiterable(source: Any) -> Iterable[Any] | None:
    """The iterable to read a few batches from without disturbing the run, or None when there is none.

    Only sources whose reading changes nothing the user can see are read ahead: in-memory tensors, lists
    and tuples of batches, and ``DataLoader`` s over map-style datasets (their shuffle is put back with the
    random generators). Anything else (a generator, a stream, a user's iterable class, whose reading may
    consume data or count calls) is left alone, as is an empty source. ``IterableBatches`` keeps its own
    iterator across epochs (``steps_per_epoch``): the user's iterable inside it is read through a fresh
    ``iter()`` instead, and its length is the one read when the source was built.

    >>> reiterable([(1, 2)]) is not None, reiterable(iter([(1, 2)]))
    (True, None)
    """
    inner = source.source if isinstance(source, IterableBatches) else source
    if isinstance(inner, DataLoader):
        if isinstance(inner.dataset, IterableDataset):
            return None
    elif not isinstance(inner, (TensorBatches, list, tuple)):
        return None
    length = source.length if isinstance(source, IterableBatches) else len(inner)
    return inner if length else None


def _generators(source: Any) -> list[torch.Generator]:
    """The torch generators a DataLoader draws its shuffle from when the user gave it one."""
    holders = [source, getattr(source, "sampler", None), getattr(source, "batch_sampler", None)]
    holders.append(getattr(holders[2], "sampler", None))
    found = [getattr(holder, "generator", None) for holder in holders if holder is not None]
    unique: dict[int, torch.Generator] = {id(item): item for item in found if isinstance(item, torch.Generator)}
    return list(unique.values())


class _Saved:
    """Copies of everything a few batches can change, and their restoration in place.

    The default step never applies the optimizer, so its parameters cannot change: only buffers and
    gradients are copied. A custom step may step its optimizers: the whole network and every optimizer
    state are copied then.
    """

    def __init__(self, model: Any, sources: list[Iterable[Any]], custom: bool) -> None:
        steps, network = model._steps, model.network
        self.model = model
        self.rng = capture_rng()
        self.generators = [(generator, generator.get_state()) for s in sources for generator in _generators(s)]
        self.loop_state = dataclasses.replace(model._loop.state)
        context = steps.context
        self.context = None if context is None else dict(vars(context))
        self.steps = (steps.check_next_targets, steps.all_targets, steps.examples_in_step)
        self.gradient_state = steps.gradient_state()
        steps.set_gradient_state((False, False, []))  # the check's own batches clear nothing
        self.precision = (copy.deepcopy(steps.precision.state_dict()), getattr(steps.precision, "_skipped", None))
        self.modes = {module: module.training for module in network.modules()}
        self.stop_training = model.stop_training
        parameters = list(network.parameters())
        if model.optimizer is not None:
            parameters += [p for group in model.optimizer.param_groups for p in group["params"]]
        self.grads = {
            id(parameter): (parameter, None if parameter.grad is None else parameter.grad.detach().clone())
            for parameter in parameters
        }
        # Clones: training changes the live tensors in place.
        if custom:
            self.network = {name: tensor.detach().clone() for name, tensor in network.state_dict().items()}
            self.optimizer = None if model.optimizer is None else copy.deepcopy(model.optimizer.state_dict())
        else:
            self.buffers = [(buffer, buffer.detach().clone()) for buffer in network.buffers()]
        self.custom = custom

    def restore(self) -> None:
        model = self.model
        steps, network = model._steps, model.network
        with torch.no_grad():
            if self.custom:
                network.load_state_dict(self.network)  # copies into the same tensors: optimizers keep them
                if self.optimizer is not None:
                    model.optimizer.load_state_dict(self.optimizer)
            else:
                for buffer, saved in self.buffers:
                    buffer.copy_(saved)
        for parameter, grad in self.grads.values():
            parameter.grad = grad
        for epoch_metric in model._epoch_metrics:
            epoch_metric.reset()  # every phase starts from a reset; no partial sums linger
        for item in dataclasses.fields(self.loop_state):
            setattr(model._loop.state, item.name, getattr(self.loop_state, item.name))
        if self.context is not None:
            vars(steps.context).update(self.context)
        steps.check_next_targets, steps.all_targets, steps.examples_in_step = self.steps
        steps.set_gradient_state(self.gradient_state)
        precision_state, skipped = self.precision
        if precision_state is not None:
            steps.precision.load_state_dict(precision_state)
        if hasattr(steps.precision, "_skipped"):
            steps.precision._skipped = skipped
        for module, training in self.modes.items():
            module.train(training)
        model.stop_training = self.stop_training
        for generator, state in self.generators:
            generator.set_state(state)
        restore_rng(self.rng)


def sanity_check(model: Any, train: Any, valid: Any, batches: int, epoch: int = 1) -> None:
    """Runs ``batches`` validation then training batches of a ``fit`` and puts the model back exactly.

    Args:
        model: the :class:`~trainwell.Model` about to train (its device and precision already bound).
        train: the training batch source of the ``fit``.
        valid: the validation batch source, or None.
        batches: how many batches of each (0 skips the check).
        epoch: the epoch the ``fit`` starts with: ``model.state`` shows it during the check, as it will
            during the real batches (code that reads the loop's position works the same).

    Raises:
        Whatever the batches raise, with a note saying it came from the sanity check and how to turn it
        off. The model is restored before the error propagates.

    >>> from torch import nn
    >>> from trainwell import Model
    >>> model = Model(nn.Linear(3, 2), 'sgd', 'cross_entropy')
    >>> data = [(torch.randn(4, 3), torch.randint(2, (4,)))] * 3
    >>> before = model.network.weight.clone()
    >>> sanity_check(model, data, data, 2)
    >>> torch.equal(before, model.network.weight), model.network.weight.grad is None
    (True, True)
    """
    if batches <= 0 or model._loop.pending_resume is not None:
        # A run resumed mid-epoch was checked when it started; reading batches again would only cost I/O.
        return
    steps = model._steps
    # Validation first: a broken evaluation path is what would otherwise surface only after an epoch.
    candidates = [("valid", valid, steps.evaluate_function), ("train", train, steps.train_function)]
    phases: list[tuple[str, Iterable[Any], Any]] = []
    arguments = {}
    for phase, source, function in candidates:
        usable = reiterable(source)
        if usable is not None:
            phases.append((phase, usable, function))
            arguments[phase] = getattr(source, "argument", "generator")  # the reiterable view has no name
    if not phases:
        return
    custom = any(function is not None for _, _, function in phases)
    saved = _Saved(model, [source for _, source, _ in phases], custom)
    try:
        for phase, source, function in phases:
            _run_phase(model, phase, source, function, batches, epoch, arguments[phase])
    finally:
        saved.restore()


def _run_phase(
    model: Any, phase: str, source: Iterable[Any], function: Any, batches: int, epoch: int, argument: str
) -> None:
    loop, steps = model._loop, model._steps
    training = phase == "train"
    tracker = loop.new_tracker(with_loss=function is None, source=source)
    state = loop.state
    state.phase, state.epoch, state.epoch_done = phase, epoch, False
    steps.check_next_targets = True
    steps.data_argument = argument
    steps.network.train(training)
    grad_mode: AbstractContextManager[Any] = torch.enable_grad() if training else torch.no_grad()
    context = steps.context
    number = 0
    try:
        with grad_mode:
            for number, batch in enumerate(islice(source, batches), 1):
                state.batch = number
                if function is None:
                    result = steps.forward_backward(batch, accumulate=False) if training else steps.evaluate(batch)
                else:
                    context.phase, context.epoch, context.batch_number = phase, epoch, number
                    result = steps.run_custom(function, batch)
                tracker.update(result.loss, result.y_pred, result.y_true, result.size, result.values)
        tracker.compute()  # epoch metrics fail here, not after an epoch
    except Exception as error:
        step = "training" if training else "validation"
        add_note = getattr(error, "add_note", None)  # Python >= 3.11; the error itself is what matters
        if add_note is not None:
            add_note(
                f"Raised by trainwell's sanity check, in {step} batch {max(number, 1)} of {batches} run before the "
                "first epoch so that such errors show at once. Model(..., sanity_check=False) turns the check off."
            )
        raise
