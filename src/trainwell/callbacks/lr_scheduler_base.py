"""What every learning-rate scheduler callback shares: building, stepping and checkpointing a scheduler.

A :class:`SchedulerCallback` owns one scheduler object (a ``torch.optim.lr_scheduler`` instance or
anything with ``step()``, ``state_dict()`` and ``load_state_dict()``). It builds it on the model's
optimizer at the first ``on_train_begin`` and keeps it, so a second ``fit`` continues the schedule
instead of restarting it. It steps the scheduler once per epoch, or once per optimizer update with
``step_every='step'``.

Its :meth:`~SchedulerCallback.state_dict` holds the scheduler's own state, made storable without
pickle (functions and lambdas are left out, as torch itself does for ``LambdaLR``; non-finite floats
become tagged strings), plus the optimizer's scheduled hyper-parameters (``lr``, ``momentum``,
``betas``...), so that a run resumed on a fresh optimizer continues with the exact same rates.
"""

from __future__ import annotations

import difflib
import inspect
import math
from collections.abc import Callable, Mapping
from typing import Any

import torch

from trainwell.callbacks.base import Callback
from trainwell.storage.files import PathOrFile

__all__ = [
    "STEP_EVERY",
    "SchedulerCallback",
    "check_arguments",
    "check_step_every",
    "decode_state",
    "encode_state",
    "set_group_value",
]

STEP_EVERY = ("epoch", "step")

# Optimizer param-group entries that schedulers and policies change: saved with the scheduler so a
# resumed run does not depend on whether the optimizer's own state was restored, or in which order.
_SCHEDULED_KEYS = ("lr", "initial_lr", "momentum", "betas")
_FLOAT_TAG = "__float__"


def check_step_every(step_every: object) -> str:
    """Validates the ``step_every`` argument of the scheduler callbacks.

    >>> check_step_every('step')
    'step'
    """
    if step_every not in STEP_EVERY:
        raise ValueError(
            "`step_every` must be 'epoch' (step the scheduler after each epoch) or 'step' (after each "
            f"optimizer update). Received: step_every={step_every!r}."
        )
    return str(step_every)


def check_arguments(factory: Callable[..., Any], name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Checks, at construction, that ``factory(optimizer, *args, **kwargs)`` is a valid call.

    Mistyped or missing arguments then fail when the callback is created, not when ``fit`` starts.

    >>> check_arguments(torch.optim.lr_scheduler.StepLR, 'StepLR', (), {'step': 3})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    TypeError: StepLR(...) got an unexpected keyword argument 'step' (did you mean 'step_size'?). It accepts: ...
    """
    if "optimizer" in kwargs or (args and isinstance(args[0], torch.optim.Optimizer)):
        # A ValueError, as in Poutyne: the argument is of a valid type but has no place here.
        raise ValueError(
            f"{name}(...) builds its scheduler on the model's optimizer when training starts: remove the "
            "optimizer from its arguments."
        )
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):
        return  # a builtin or C callable without a readable signature: torch checks at build time
    parameters = list(signature.parameters.values())
    names = [parameter.name for parameter in parameters[1:]]
    accepted = f"It accepts: {', '.join(names) or 'nothing else'} (the optimizer is the model's and is not passed)."
    if not any(parameter.kind is inspect.Parameter.VAR_KEYWORD for parameter in parameters):
        for key in kwargs:
            if key not in names:
                close = difflib.get_close_matches(key, names, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise TypeError(f"{name}(...) got an unexpected keyword argument {key!r}{hint}. {accepted}")
    try:
        signature.bind(None, *args, **kwargs)
    except TypeError as error:
        raise TypeError(f"{name}(...) received invalid arguments: {error}. {accepted}") from None


def encode_state(value: Any, path: str = "state") -> Any:
    """A deep copy of a scheduler state that a trainwell checkpoint can store (JSON + tensors).

    Non-finite floats (``ReduceLROnPlateau``'s initial best is ``inf``) become ``{'__float__': 'inf'}``,
    which strict JSON accepts. A value that cannot be stored without pickle raises a TypeError naming
    where it is.

    >>> encode_state({'best': float('inf'), 'last_epoch': 3, 'lr_lambdas': [None]})
    {'best': {'__float__': 'inf'}, 'last_epoch': 3, 'lr_lambdas': [None]}
    """
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, float) and not math.isfinite(value):
        return {_FLOAT_TAG: repr(value)}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, tuple):
        return tuple(encode_state(item, f"{path}[{index}]") for index, item in enumerate(value))
    if isinstance(value, list):
        return [encode_state(item, f"{path}[{index}]") for index, item in enumerate(value)]
    if isinstance(value, dict):
        return {encode_state(key, f"{path} key"): encode_state(item, f"{path}[{key!r}]") for key, item in value.items()}
    raise TypeError(
        f"The scheduler state holds a value of type {type(value).__name__} at {path}, which cannot be stored "
        "without pickle. Scheduler functions must be plain functions or lambdas (left out of the state, as "
        "torch does), or callable objects whose attributes are numbers, strings, tensors or lists/dicts of them."
    )


def decode_state(value: Any) -> Any:
    """Inverse of :func:`encode_state`, returning fresh containers (torch's loaders pop keys from them).

    >>> decode_state({'best': {'__float__': 'inf'}, 'milestones': (2, 4)})
    {'best': inf, 'milestones': (2, 4)}
    """
    if isinstance(value, dict):
        if set(value) == {_FLOAT_TAG}:
            return float(value[_FLOAT_TAG])
        return {decode_state(key): decode_state(item) for key, item in value.items()}
    if isinstance(value, list):
        return [decode_state(item) for item in value]
    if isinstance(value, tuple):
        return tuple(decode_state(item) for item in value)
    return value


class SchedulerCallback(Callback):
    """Base class of the scheduler callbacks: owns one scheduler built on the model's optimizer.

    Subclasses implement :meth:`make_scheduler`. The scheduler is built at the first ``on_train_begin``
    and kept while the model's optimizer stays the same, so a second ``fit`` continues the schedule;
    a model with another optimizer gets a new schedule (carry one over with ``state_dict``).

    Args:
        step_every: ``'epoch'`` steps the scheduler at the end of every epoch; ``'step'`` after every
            optimizer update (every ``batches_per_step`` batches, and once more for an epoch's last,
            incomplete accumulation), which is what per-batch warm-up and annealing need. That last
            update is made after the epoch's last batch ends, so the scheduler steps for it in
            ``on_epoch_end``, after the loop has logged the epoch's ``lr``: the logged rate is then the
            one that update used.

    Attributes:
        scheduler: the scheduler, or None before training starts.
    """

    reads_gradients = False  # its on_train_batch_end never looks at gradients

    def __init__(self, step_every: str = "epoch") -> None:
        self.step_every = check_step_every(step_every)
        self.scheduler: Any = None
        self._optimizer: torch.optim.Optimizer | None = None
        self._pending_state: Mapping[str, Any] | None = None
        self._updates_seen = 0

    def make_scheduler(self, optimizer: torch.optim.Optimizer) -> Any:
        """A new scheduler on ``optimizer``, at the start of its schedule."""
        raise NotImplementedError

    # -- hooks -------------------------------------------------------------------------------------------
    def on_train_begin(self, logs: Mapping[str, Any]) -> None:
        """Builds the scheduler on the model's optimizer, once per optimizer, restoring loaded state."""
        optimizer = self.model.optimizer
        if self.scheduler is None or optimizer is not self._optimizer:
            self.scheduler = self.make_scheduler(optimizer)
            self._optimizer = optimizer
            if self._pending_state is not None:
                self._restore(self._pending_state)
                self._pending_state = None
        # Updates are counted from here, so a model whose counter did not restart (a second fit, or a
        # restored loop state) is handled the same way as a fresh one.
        self._updates_seen = self.model.state.optimizer_steps

    def on_train_batch_end(self, batch_number: int, logs: Mapping[str, Any]) -> None:
        """In per-step mode, steps the scheduler once for each optimizer update since the last call."""
        if self.step_every == "step":
            self._catch_up()

    def on_epoch_end(self, epoch_number: int, logs: Mapping[str, Any]) -> None:
        """Steps the scheduler (per-epoch mode), or for an update made after the last batch ended."""
        if self.step_every == "step":
            # The loop applies an epoch's last, incomplete accumulation after the last batch-end hook.
            self._catch_up()
        else:
            self.scheduler.step()

    def _catch_up(self) -> None:
        updates = self.model.state.optimizer_steps
        for _ in range(updates - self._updates_seen):
            self.scheduler.step()
        self._updates_seen = updates

    # -- state -------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The scheduler's state and the optimizer's scheduled values, storable without pickle.

        Functions and lambdas given to the scheduler (``LambdaLR``'s ``lr_lambda``, ``CyclicLR``'s
        ``scale_fn``) are not part of it: the callback that loads the state is built with them again.
        Empty before training starts (unless a state was loaded, which is then returned as loaded).
        """
        if self.scheduler is None:
            return dict(self._pending_state) if self._pending_state is not None else {}
        optimizer = self._optimizer
        groups = [] if optimizer is None else optimizer.param_groups
        return {
            "class": type(self).__name__,
            "scheduler": encode_state(self.scheduler.state_dict(), "scheduler"),
            "param_groups": [
                {key: encode_state(group[key]) for key in _SCHEDULED_KEYS if key in group} for group in groups
            ],
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restores :meth:`state_dict`: now if the scheduler exists, else when training starts."""
        if not state:
            return
        if state.get("class") != type(self).__name__:
            raise ValueError(
                f"This state was saved by {state.get('class')!r}, not by {type(self).__name__}: load it into "
                "the same kind of scheduler callback it came from."
            )
        if self.scheduler is None:
            self._pending_state = state
        else:
            self._restore(state)

    def save_state(self, f: PathOrFile) -> None:
        """Writes :meth:`state_dict` to a file or path, without pickle (as Poutyne's ``save_state`` does with it)."""
        from trainwell.storage.files import save_state

        save_state(f, self.state_dict())

    def load_state(self, f: PathOrFile) -> None:
        """Reads a state written by :meth:`save_state` and loads it."""
        from trainwell.storage.files import load_state

        self.load_state_dict(load_state(f))

    def _restore(self, state: Mapping[str, Any]) -> None:
        self.scheduler.load_state_dict(decode_state(state["scheduler"]))
        if self._optimizer is None:
            return
        saved_groups = state["param_groups"]
        groups = self._optimizer.param_groups
        if len(saved_groups) != len(groups):
            raise ValueError(
                f"The scheduler state was saved with {len(saved_groups)} parameter groups but the optimizer has "
                f"{len(groups)}: resume with the same optimizer layout."
            )
        for group, saved in zip(groups, saved_groups):
            for key, value in decode_state(saved).items():
                set_group_value(group, key, value)


def set_group_value(group: dict[str, Any], key: str, value: Any) -> None:
    """Sets one hyper-parameter of an optimizer param group, in place when it is a tensor (capturable).

    >>> group = {'lr': 0.1, 'betas': (0.9, 0.999)}
    >>> set_group_value(group, 'betas', [0.8, 0.999]); group
    {'lr': 0.1, 'betas': (0.8, 0.999)}
    """
    current = group.get(key)
    if isinstance(current, torch.Tensor):
        current.fill_(float(value))
    elif key == "betas":
        group[key] = tuple(value)
    else:
        group[key] = value
