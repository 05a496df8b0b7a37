"""Learning-rate scheduler callbacks: every ``torch.optim.lr_scheduler`` class, built on the model's optimizer.

Each callback takes the torch class's arguments without the optimizer (``StepLR(step_size=3, gamma=0.1)``),
builds the torch scheduler on the model's optimizer when training starts, and steps it after every epoch,
or after every optimizer update with ``step_every='step'``. :class:`LRScheduler` does the same for any
scheduler class or factory of your own; :class:`SequentialLR` and :class:`ChainedScheduler` combine other
scheduler callbacks; :class:`ReduceLROnPlateau` reads a monitored value from the epoch logs.

Warm-up then cosine annealing, stepped per optimizer update (16 updates: 2 epochs of 8 batches):

>>> import torch
>>> from trainwell import Model
>>> warmup_cosine = SequentialLR(
...     [LinearLR(start_factor=0.1, total_iters=4), CosineAnnealingLR(T_max=12)], milestones=[4], step_every='step'
... )
>>> from trainwell.callbacks import LambdaCallback
>>> from trainwell.callbacks.base import epoch_learning_rates
>>> model = Model(torch.nn.Linear(2, 1), 'sgd', 'mse')
>>> rates = []  # the epoch logs carry no lr (Poutyne's contract): loggers read it from the model
>>> record = LambdaCallback(on_epoch_end=lambda epoch, logs: rates.append(round(epoch_learning_rates(model)['lr'], 5)))
>>> history = model.fit(torch.randn(32, 2), torch.randn(32, 1), batch_size=4, epochs=2, verbose=False,
...                     callbacks=[warmup_cosine, record])
>>> rates  # after 8 updates (4 of warm-up, 4 of cosine), then 16
[0.0075, 0.0]

Every callback's ``state_dict()`` resumes the exact same learning-rate sequence (see
:class:`~trainwell.callbacks.lr_scheduler_base.SchedulerCallback`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import torch
from torch.optim import lr_scheduler as torch_schedulers

from trainwell.callbacks.lr_scheduler_base import SchedulerCallback, check_arguments
from trainwell.callbacks.monitor import Monitor
from trainwell.utils.checks import check_positive_int

__all__ = [
    "ChainedScheduler",
    "ConstantLR",
    "CosineAnnealingLR",
    "CosineAnnealingWarmRestarts",
    "CyclicLR",
    "ExponentialLR",
    "LRScheduler",
    "LambdaLR",
    "LinearLR",
    "MultiStepLR",
    "MultiplicativeLR",
    "OneCycleLR",
    "PolynomialLR",
    "ReduceLROnPlateau",
    "SequentialLR",
    "StepLR",
]

SchedulerFactory = Callable[..., Any]


class LRScheduler(SchedulerCallback):
    """Any scheduler class or factory, called as ``scheduler(optimizer, *args, **kwargs)`` when training starts.

    The object it returns needs ``step()``, ``state_dict()`` and ``load_state_dict()``, as every torch
    scheduler has.

    Args:
        scheduler: a scheduler class (a ``torch.optim.lr_scheduler.LRScheduler`` subclass of your own) or
            a function taking the optimizer first.
        *args: passed after the optimizer.
        step_every: ``'epoch'`` or ``'step'`` (after every optimizer update).
        **kwargs: passed to ``scheduler``.

    >>> halve_every_10 = LRScheduler(torch.optim.lr_scheduler.LambdaLR, lr_lambda=lambda epoch: 0.5 ** (epoch // 10))
    """

    def __init__(self, scheduler: SchedulerFactory, *args: Any, step_every: str = "epoch", **kwargs: Any) -> None:
        super().__init__(step_every)
        if not callable(scheduler):
            raise TypeError(
                "`scheduler` must be a scheduler class or a function taking the optimizer first. Received: "
                f"scheduler of type {type(scheduler).__name__}."
            )
        check_arguments(scheduler, type(self).__name__, args, kwargs)
        self.factory = scheduler
        self.args = args
        self.kwargs = kwargs

    def make_scheduler(self, optimizer: torch.optim.Optimizer) -> Any:
        """``factory(optimizer, *args, **kwargs)``, checked to have what a scheduler needs."""
        scheduler = self.factory(optimizer, *self.args, **self.kwargs)
        missing = [name for name in ("step", "state_dict", "load_state_dict") if not hasattr(scheduler, name)]
        if missing:
            raise TypeError(
                f"{type(self).__name__}'s scheduler factory returned a {type(scheduler).__name__}, which has no "
                f"{', '.join(missing)}: return a torch.optim.lr_scheduler.LRScheduler (or an object with step, "
                "state_dict and load_state_dict)."
            )
        return scheduler

    def __repr__(self) -> str:
        arguments = [repr(argument) for argument in self.args]
        arguments += [f"{key}={value!r}" for key, value in self.kwargs.items()]
        arguments.append(f"step_every={self.step_every!r}")
        if type(self) is LRScheduler:
            arguments.insert(0, getattr(self.factory, "__name__", repr(self.factory)))
        return f"{type(self).__name__}({', '.join(arguments)})"


class _TorchScheduler(LRScheduler):
    """One ``torch.optim.lr_scheduler`` class, named like it, taking its arguments except the optimizer."""

    torch_class: ClassVar[type[Any]]

    def __init__(self, *args: Any, step_every: str = "epoch", **kwargs: Any) -> None:
        super().__init__(self.torch_class, *args, step_every=step_every, **kwargs)


class LambdaLR(_TorchScheduler):
    """:class:`torch.optim.lr_scheduler.LambdaLR`: the initial rate times ``lr_lambda(epoch)``.

    ``lr_lambda`` functions and lambdas are not part of :meth:`state_dict` (torch leaves them out too):
    the callback that loads a state must be built with the same function.

    >>> warmup = LambdaLR(lr_lambda=lambda update: min(1.0, (update + 1) / 100), step_every='step')
    """

    torch_class = torch_schedulers.LambdaLR


class MultiplicativeLR(_TorchScheduler):
    """:class:`torch.optim.lr_scheduler.MultiplicativeLR`: the rate times ``lr_lambda(epoch)`` at each step.

    >>> decay = MultiplicativeLR(lr_lambda=lambda epoch: 0.95)
    """

    torch_class = torch_schedulers.MultiplicativeLR


class StepLR(_TorchScheduler):
    """:class:`torch.optim.lr_scheduler.StepLR`: the rate times ``gamma`` every ``step_size`` epochs.

    >>> decay = StepLR(step_size=30, gamma=0.1)
    """

    torch_class = torch_schedulers.StepLR

    def __init__(self, *args: Any, step_every: str = "epoch", **kwargs: Any) -> None:
        super().__init__(*args, step_every=step_every, **kwargs)
        # torch checks nothing here and fails at the first step (a modulo by zero, or by a string).
        step_size = args[0] if args else kwargs.get("step_size")
        check_positive_int(step_size, "step_size")


class MultiStepLR(_TorchScheduler):
    """:class:`torch.optim.lr_scheduler.MultiStepLR`: the rate times ``gamma`` at each milestone.

    >>> decay = MultiStepLR(milestones=[30, 80], gamma=0.1)
    """

    torch_class = torch_schedulers.MultiStepLR


class ConstantLR(_TorchScheduler):
    """:class:`torch.optim.lr_scheduler.ConstantLR`: the rate times ``factor`` for ``total_iters`` steps.

    >>> low_start = ConstantLR(factor=0.5, total_iters=4)
    """

    torch_class = torch_schedulers.ConstantLR


class LinearLR(_TorchScheduler):
    """:class:`torch.optim.lr_scheduler.LinearLR`: a factor going linearly from ``start_factor`` to ``end_factor``.

    >>> warmup = LinearLR(start_factor=0.01, total_iters=500, step_every='step')
    """

    torch_class = torch_schedulers.LinearLR


class ExponentialLR(_TorchScheduler):
    """:class:`torch.optim.lr_scheduler.ExponentialLR`: the rate times ``gamma`` at each step.

    >>> decay = ExponentialLR(gamma=0.9)
    """

    torch_class = torch_schedulers.ExponentialLR


class PolynomialLR(_TorchScheduler):
    """:class:`torch.optim.lr_scheduler.PolynomialLR`: polynomial decay to 0 over ``total_iters`` steps.

    >>> decay = PolynomialLR(total_iters=100, power=2.0)
    """

    torch_class = torch_schedulers.PolynomialLR


class CosineAnnealingLR(_TorchScheduler):
    """:class:`torch.optim.lr_scheduler.CosineAnnealingLR`: cosine annealing to ``eta_min`` over ``T_max`` steps.

    >>> anneal = CosineAnnealingLR(T_max=100, eta_min=1e-5)
    """

    torch_class = torch_schedulers.CosineAnnealingLR


class CosineAnnealingWarmRestarts(_TorchScheduler):
    """:class:`torch.optim.lr_scheduler.CosineAnnealingWarmRestarts`: cosine cycles of ``T_0 * T_mult**i`` steps.

    >>> sgdr = CosineAnnealingWarmRestarts(T_0=10, T_mult=2, step_every='step')
    """

    torch_class = torch_schedulers.CosineAnnealingWarmRestarts


class CyclicLR(_TorchScheduler):
    """:class:`torch.optim.lr_scheduler.CyclicLR`: the rate cycles between ``base_lr`` and ``max_lr``.

    Torch's schedule counts batches, so it is usually stepped per update. With ``cycle_momentum=True``
    (the default) the optimizer needs a momentum (SGD's ``momentum``, or Adam's ``betas``). A
    ``scale_fn`` function is not part of :meth:`state_dict`: rebuild the callback with it.

    >>> cyclic = CyclicLR(base_lr=0.001, max_lr=0.1, step_size_up=200, step_every='step')
    """

    torch_class = torch_schedulers.CyclicLR


class OneCycleLR(_TorchScheduler):
    """:class:`torch.optim.lr_scheduler.OneCycleLR`: the one-cycle policy over ``total_steps`` updates.

    Torch's schedule counts batches and fails once stepped more than ``total_steps`` times, so step it
    per update and give ``total_steps = epochs * updates per epoch``.

    >>> one_cycle = OneCycleLR(max_lr=0.1, total_steps=1000, step_every='step')
    """

    torch_class = torch_schedulers.OneCycleLR


def _child_scheduler(child: Any, optimizer: torch.optim.Optimizer, owner: str, index: int) -> Any:
    """The torch scheduler of one element of ``schedulers`` in :class:`SequentialLR`/:class:`ChainedScheduler`."""
    if isinstance(child, SchedulerCallback):
        return child.make_scheduler(optimizer)
    scheduler = child(optimizer)
    if isinstance(scheduler, torch_schedulers.ReduceLROnPlateau):
        raise ValueError(
            f"{owner} cannot hold a ReduceLROnPlateau (at schedulers[{index}]): it needs a monitored value."
        )
    return scheduler


def _check_children(schedulers: Any, owner: str, step_every: str) -> list[Any]:
    if not isinstance(schedulers, Sequence) or isinstance(schedulers, str) or not schedulers:
        raise TypeError(
            f"`schedulers` must be a non-empty list of scheduler callbacks (such as LinearLR(...)) or functions "
            f"taking an optimizer. Received: schedulers={schedulers!r}."
        )
    for index, child in enumerate(schedulers):
        if isinstance(child, ReduceLROnPlateau):
            raise ValueError(
                f"{owner} cannot hold a ReduceLROnPlateau (at schedulers[{index}]): it steps on a monitored value. "
                "Use a separate ReduceLROnPlateau callback."
            )
        if isinstance(child, SchedulerCallback):
            if child.step_every == "step" and step_every == "epoch":
                raise ValueError(
                    f"schedulers[{index}] has step_every='step' but {owner} steps its schedulers itself: pass "
                    f"step_every='step' to {owner}(...) instead."
                )
        elif not callable(child):
            raise TypeError(
                f"schedulers[{index}] must be a scheduler callback (such as LinearLR(...)) or a function taking an "
                f"optimizer. Received an object of type {type(child).__name__}."
            )
    return list(schedulers)


class SequentialLR(SchedulerCallback):
    """:class:`torch.optim.lr_scheduler.SequentialLR`: one scheduler after another, switching at milestones.

    Args:
        schedulers: scheduler callbacks (``LinearLR(...)``, ``CosineAnnealingLR(...)``; they only serve as
            recipes here and are not callbacks of the run themselves) or functions ``f(optimizer)``
            returning a torch scheduler.
        milestones: the step counts where the next scheduler takes over (one fewer than ``schedulers``).
        step_every: ``'epoch'`` or ``'step'``; it applies to the whole sequence.

    Warm-up for 500 updates, then cosine annealing over the next 9500:

    >>> warmup_cosine = SequentialLR(
    ...     [LinearLR(start_factor=0.01, total_iters=500), CosineAnnealingLR(T_max=9500)],
    ...     milestones=[500],
    ...     step_every='step',
    ... )
    """

    def __init__(
        self,
        schedulers: Sequence[SchedulerCallback | SchedulerFactory],
        milestones: Sequence[int],
        *,
        step_every: str = "epoch",
    ) -> None:
        super().__init__(step_every)
        self.schedulers = _check_children(schedulers, "SequentialLR", self.step_every)
        if not isinstance(milestones, Sequence) or not all(isinstance(step, int) for step in milestones):
            raise TypeError(f"`milestones` must be a list of ints. Received: milestones={milestones!r}.")
        if len(milestones) != len(self.schedulers) - 1:
            raise ValueError(
                f"`milestones` must have one element fewer than `schedulers` ({len(self.schedulers)}). Received: "
                f"milestones={list(milestones)!r}."
            )
        self.milestones = list(milestones)

    def make_scheduler(self, optimizer: torch.optim.Optimizer) -> Any:
        """Builds every scheduler on ``optimizer``, then torch's SequentialLR over them."""
        children = [
            _child_scheduler(child, optimizer, "SequentialLR", index) for index, child in enumerate(self.schedulers)
        ]
        return torch_schedulers.SequentialLR(optimizer, children, self.milestones)


class ChainedScheduler(SchedulerCallback):
    """:class:`torch.optim.lr_scheduler.ChainedScheduler`: several schedulers stepped together, effects multiplied.

    Args:
        schedulers: scheduler callbacks or functions ``f(optimizer)`` returning a torch scheduler, as in
            :class:`SequentialLR`.
        step_every: ``'epoch'`` or ``'step'``; it applies to every scheduler of the chain.

    >>> warm_and_decay = ChainedScheduler([ConstantLR(factor=0.1, total_iters=2), ExponentialLR(gamma=0.9)])
    """

    def __init__(
        self, schedulers: Sequence[SchedulerCallback | SchedulerFactory], *, step_every: str = "epoch"
    ) -> None:
        super().__init__(step_every)
        self.schedulers = _check_children(schedulers, "ChainedScheduler", self.step_every)

    def make_scheduler(self, optimizer: torch.optim.Optimizer) -> Any:
        """Builds every scheduler on ``optimizer``, then torch's ChainedScheduler over them."""
        children = [
            _child_scheduler(child, optimizer, "ChainedScheduler", index) for index, child in enumerate(self.schedulers)
        ]
        return torch_schedulers.ChainedScheduler(children, optimizer)


class ReduceLROnPlateau(SchedulerCallback):
    """:class:`torch.optim.lr_scheduler.ReduceLROnPlateau` on a value of the epoch logs.

    After ``patience`` epochs without improvement of ``monitor``, the rate is multiplied by ``factor``.

    Args:
        mode: ``'min'``, ``'max'``, or ``'auto'`` (``'max'`` for accuracies and F-scores, else ``'min'``).
        factor: what the rate is multiplied by on a plateau, in (0, 1).
        patience: epochs without improvement tolerated before reducing.
        threshold: how much better a value must be to count as an improvement.
        threshold_mode: ``'rel'`` (relative to the best) or ``'abs'``.
        cooldown: epochs to wait after a reduction before counting bad epochs again.
        min_lr: a floor for the rate (or one per param group).
        eps: reductions smaller than this are skipped.
        monitor: the epoch-log key to watch, such as ``'val_loss'`` or ``'val_acc'``.

    >>> plateau = ReduceLROnPlateau(monitor='val_acc', mode='max', factor=0.5, patience=3)
    """

    def __init__(
        self,
        mode: str = "min",
        factor: float = 0.1,
        patience: int = 10,
        threshold: float = 1e-4,
        threshold_mode: str = "rel",
        cooldown: int = 0,
        min_lr: float | list[float] = 0.0,
        eps: float = 1e-8,
        *,
        monitor: str = "val_loss",
    ) -> None:
        super().__init__("epoch")
        self.monitor = Monitor(monitor, mode, owner="ReduceLROnPlateau")
        if not isinstance(factor, (int, float)) or not 0 < factor < 1:
            raise ValueError(f"`factor` must be a number in (0, 1). Received: factor={factor!r}.")
        if not isinstance(patience, int) or patience < 0:
            raise ValueError(f"`patience` must be an int >= 0. Received: patience={patience!r}.")
        if threshold_mode not in ("rel", "abs"):
            raise ValueError(f"`threshold_mode` must be 'rel' or 'abs'. Received: threshold_mode={threshold_mode!r}.")
        self.options: dict[str, Any] = {
            "mode": self.monitor.mode,
            "factor": factor,
            "patience": patience,
            "threshold": threshold,
            "threshold_mode": threshold_mode,
            "cooldown": cooldown,
            "min_lr": min_lr,
            "eps": eps,
        }

    def make_scheduler(self, optimizer: torch.optim.Optimizer) -> Any:
        """Torch's ReduceLROnPlateau on ``optimizer`` with this callback's options."""
        return torch_schedulers.ReduceLROnPlateau(optimizer, **self.options)

    def on_epoch_end(self, epoch_number: int, logs: Mapping[str, Any]) -> None:
        """Gives the monitored value to the scheduler (a missing key raises, listing the available ones)."""
        self.scheduler.step(self.monitor.value(logs))

    def __repr__(self) -> str:
        options = ", ".join(f"{key}={value!r}" for key, value in self.options.items())
        return f"ReduceLROnPlateau({options}, monitor={self.monitor.monitor!r})"
