"""Optimizer policies: the learning rate and momentum of every optimizer update, written out as phases.

A :class:`Phase` lists values step by step (a :class:`linspace`, a :class:`cosinespace`, any list, or a
constant held for ``steps`` updates); an :class:`OptimizerPolicy` plays phases one after another, setting
each value on the optimizer just before the update it belongs to. :func:`one_cycle_phases` and
:func:`sgdr_phases` build the two classic policies. The names and arguments are Poutyne's.

A momentum value goes to the param groups' ``momentum`` (SGD, RMSprop) or to the first of their ``betas``
(Adam and its relatives). Once the phases are exhausted, the last values stay.

>>> import torch
>>> from trainwell import Model
>>> network = torch.nn.Linear(2, 1)
>>> model = Model(network, torch.optim.SGD(network.parameters(), lr=0.1, momentum=0.9), 'mse')
>>> policy = OptimizerPolicy(one_cycle_phases(steps=20, lr=(0.01, 0.1), momentum=(0.95, 0.85)))
>>> history = model.fit(torch.randn(40, 2), torch.randn(40, 1), batch_size=4, epochs=2, verbose=False,
...                     callbacks=[policy])
>>> policy.current_step, round(model.optimizer.param_groups[0]['lr'], 4)  # the fine-tuning phase's end
(20, 0.01)
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from trainwell.callbacks.base import Callback
from trainwell.callbacks.lr_scheduler_base import set_group_value

__all__ = ["OptimizerPolicy", "Phase", "cosinespace", "linspace", "one_cycle_phases", "sgdr_phases"]


def _check_steps(steps: object, name: str = "steps") -> int:
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 0:
        raise ValueError(f"`{name}` must be an int >= 0. Received: {name}={steps!r}.")
    return steps


class linspace:  # noqa: N801 (Poutyne's name, lower-case like numpy's)
    """``steps`` values going linearly from ``start`` to ``end``, both included; computed lazily.

    >>> list(linspace(1, 0, 5))
    [1.0, 0.75, 0.5, 0.25, 0.0]
    """

    def __init__(self, start: float, end: float, steps: int) -> None:
        self.start = float(start)
        self.end = float(end)
        self.steps = _check_steps(steps)

    def fraction(self, index: int) -> float:
        """How far ``index`` is along the space, from 0 to 1 (a one-value space stays at ``start``)."""
        return index / (self.steps - 1) if self.steps > 1 else 0.0

    def value(self, index: int) -> float:
        """The value at position ``index``."""
        fraction = self.fraction(index)
        # A weighted sum, not start + (end - start) * fraction: both ends come out exactly.
        return self.start * (1.0 - fraction) + self.end * fraction

    def __len__(self) -> int:
        return self.steps

    def __iter__(self) -> Iterator[float]:
        return (self.value(index) for index in range(self.steps))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.start}, {self.end}, {self.steps})"


class cosinespace(linspace):  # noqa: N801
    """``steps`` values going from ``start`` to ``end`` along half a cosine: slow, fast, then slow again.

    >>> [round(value, 3) for value in cosinespace(1, 0, 5)]
    [1.0, 0.854, 0.5, 0.146, 0.0]
    """

    def value(self, index: int) -> float:
        """The value at position ``index``."""
        weight = (1.0 + math.cos(math.pi * self.fraction(index))) / 2.0  # 1 at the start, 0 at the end
        return self.start * weight + self.end * (1.0 - weight)


class Phase:
    """A stretch of optimizer updates with given learning rates and/or momenta, one value per update.

    Args:
        lr: the learning rates: a space (:class:`linspace`, :class:`cosinespace`, a list...), or one
            number held for ``steps`` updates.
        momentum: the momenta, in the same forms.
        steps: the number of updates; required when a value is a single number, and checked against the
            length of the spaces otherwise.

    >>> phase = Phase(lr=linspace(0.1, 0.3, 3), momentum=0.9)
    >>> len(phase), list(phase)[-1]
    (3, {'lr': 0.3, 'momentum': 0.9})
    """

    def __init__(
        self,
        *,
        lr: float | Iterable[float] | None = None,
        momentum: float | Iterable[float] | None = None,
        steps: int | None = None,
    ) -> None:
        if lr is None and momentum is None:
            raise ValueError("A Phase needs `lr` and/or `momentum`. Received neither.")
        if steps is not None:
            _check_steps(steps)
        given = steps
        columns: dict[str, float | list[float]] = {}
        for name, value in (("lr", lr), ("momentum", momentum)):
            if value is None:
                continue
            if isinstance(value, (int, float)):
                columns[name] = float(value)
            elif isinstance(value, Iterable) and not isinstance(value, str):
                columns[name] = [float(item) for item in value]  # generators too: read once, here
            else:
                raise TypeError(
                    f"`{name}` must be a number or an iterable of numbers (such as linspace(...)). Received: "
                    f"{name}={value!r}."
                )
        lengths = {name: len(values) for name, values in columns.items() if isinstance(values, list)}
        if steps is None:
            if not lengths:
                raise ValueError(
                    f"A Phase of constant values needs `steps`, the number of updates to hold them. Received: "
                    f"lr={lr!r}, momentum={momentum!r}, steps=None."
                )
            steps = next(iter(lengths.values()))
        if any(length != steps for length in lengths.values()):
            raise ValueError(
                "The spaces of a Phase must all have the same length, equal to `steps` when it is given. "
                f"Received: steps={'None' if given is None else given} and spaces of lengths {lengths}."
            )
        self.steps: int = steps
        self.configuration: dict[str, list[float]] = {
            name: values if isinstance(values, list) else [values] * steps for name, values in columns.items()
        }

    def at(self, index: int) -> dict[str, float]:
        """The values of the phase's ``index``-th update."""
        return {name: values[index] for name, values in self.configuration.items()}

    def __len__(self) -> int:
        return self.steps

    def __iter__(self) -> Iterator[dict[str, float]]:
        return (self.at(index) for index in range(self.steps))

    def __repr__(self) -> str:
        values = ", ".join(f"{name}=[{values[0]:g} .. {values[-1]:g}]" for name, values in self.configuration.items())
        return f"Phase({values}, steps={self.steps})" if self.steps else "Phase(steps=0)"


def one_cycle_phases(
    steps: int,
    lr: tuple[float, float] = (0.1, 1),
    momentum: tuple[float, float] = (0.95, 0.85),
    finetune_lr: float = 0.01,
    finetune_fraction: float = 0.1,
) -> list[Phase]:
    """The one-cycle policy (Smith and Topin, https://arxiv.org/abs/1708.07120) over ``steps`` updates.

    The rate climbs linearly from ``lr[0]`` to ``lr[1]`` while the momentum falls from ``momentum[0]`` to
    ``momentum[1]``; both go back over as many updates; then, for the last ``finetune_fraction`` of the
    updates, the rate falls linearly to ``finetune_lr`` at momentum ``momentum[0]``.

    >>> [len(phase) for phase in one_cycle_phases(100)]
    [45, 45, 10]
    """
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"`steps` must be a positive int (the total number of updates). Received: steps={steps!r}.")
    if not 0 <= finetune_fraction < 1:
        raise ValueError(f"`finetune_fraction` must be in [0, 1). Received: finetune_fraction={finetune_fraction!r}.")
    finetune = int(steps * finetune_fraction)
    rising = (steps - finetune) // 2
    falling = steps - finetune - rising
    low_lr, high_lr = lr
    high_momentum, low_momentum = momentum
    return [
        Phase(lr=linspace(low_lr, high_lr, rising), momentum=linspace(high_momentum, low_momentum, rising)),
        Phase(lr=linspace(high_lr, low_lr, falling), momentum=linspace(low_momentum, high_momentum, falling)),
        Phase(lr=linspace(low_lr, finetune_lr, finetune), momentum=high_momentum, steps=finetune),
    ]


def sgdr_phases(
    base_cycle_length: int, cycles: int, lr: tuple[float, float] = (1.0, 0.1), cycle_mult: int = 2
) -> list[Phase]:
    """Cosine annealing with warm restarts (SGDR, Loshchilov and Hutter, https://arxiv.org/abs/1608.03983).

    Each cycle anneals the rate from ``lr[0]`` to ``lr[1]`` along a cosine, then restarts; cycle ``i``
    lasts ``base_cycle_length * cycle_mult ** i`` updates.

    >>> [len(phase) for phase in sgdr_phases(base_cycle_length=10, cycles=3)]
    [10, 20, 40]
    """
    if not isinstance(base_cycle_length, int) or base_cycle_length < 1:
        raise ValueError(
            f"`base_cycle_length` must be a positive int. Received: base_cycle_length={base_cycle_length!r}."
        )
    if not isinstance(cycles, int) or cycles < 1:
        raise ValueError(f"`cycles` must be a positive int. Received: cycles={cycles!r}.")
    if not isinstance(cycle_mult, int) or cycle_mult < 1:
        raise ValueError(f"`cycle_mult` must be a positive int. Received: cycle_mult={cycle_mult!r}.")
    return [Phase(lr=cosinespace(lr[0], lr[1], base_cycle_length * cycle_mult**cycle)) for cycle in range(cycles)]


class OptimizerPolicy(Callback):
    """Sets the optimizer's learning rate and momentum before every update, following ``phases`` in a row.

    The position counts optimizer updates, so with ``batches_per_step=k`` one value covers k batches.
    It is part of :meth:`state_dict`, so a resumed run continues where the policy was.

    Args:
        phases: the :class:`Phase` instances, played one after the other.
        initial_step: the update to start at (an alternative to :meth:`load_state_dict` for restarting).

    >>> policy = OptimizerPolicy(sgdr_phases(base_cycle_length=4, cycles=2, lr=(0.1, 0.01)))
    >>> policy.total_steps, policy.all_steps()[4]
    (12, {'lr': 0.1})
    """

    def __init__(self, phases: Sequence[Phase], *, initial_step: int = 0) -> None:
        if isinstance(phases, Phase):
            phases = [phases]
        if not isinstance(phases, Sequence) or not phases or not all(isinstance(phase, Phase) for phase in phases):
            raise TypeError(
                f"`phases` must be a non-empty list of Phase instances (see one_cycle_phases and sgdr_phases). "
                f"Received: phases={phases!r}."
            )
        self.phases = list(phases)
        self._ends = list(itertools.accumulate(len(phase) for phase in self.phases))
        self.total_steps = self._ends[-1]
        self._start = _check_steps(initial_step, "initial_step")
        self._first_update: int | None = None  # the model's update count when this run started
        self._applied: int | None = None

    @property
    def current_step(self) -> int:
        """Optimizer updates made under this policy so far (counting ``initial_step``)."""
        if self._first_update is None:
            return self._start
        return self._start + self.model.state.optimizer_steps - self._first_update

    def values_at(self, step: int) -> dict[str, float]:
        """The values of update ``step`` (from 0).

        >>> OptimizerPolicy([Phase(lr=0.1, steps=2), Phase(lr=0.2, steps=1)]).values_at(2)
        {'lr': 0.2}
        """
        index = bisect.bisect_right(self._ends, step)
        start = self._ends[index - 1] if index else 0
        return self.phases[index].at(step - start)

    def __iter__(self) -> Iterator[dict[str, float]]:
        """The values of the updates still to come, from :attr:`current_step` to the end (as in Poutyne).

        >>> list(OptimizerPolicy([Phase(lr=0.1, steps=2), Phase(lr=0.2, steps=1)], initial_step=1))
        [{'lr': 0.1}, {'lr': 0.2}]
        """
        for step in range(self.current_step, self.total_steps):
            yield self.values_at(step)

    def all_steps(self) -> list[dict[str, float]]:
        """The values of every update, in order (the position is unchanged)."""
        return [values for phase in self.phases for values in phase]

    def on_train_begin(self, logs: Mapping[str, Any]) -> None:
        """Checks that the optimizer has what the phases set, and starts counting updates."""
        if any("momentum" in phase.configuration for phase in self.phases):
            for index, group in enumerate(self.model.optimizer.param_groups):
                if "momentum" not in group and "betas" not in group:
                    raise ValueError(
                        f"The policy sets a momentum, but param group {index} of the "
                        f"{type(self.model.optimizer).__name__} optimizer has neither `momentum` nor `betas`: use "
                        "an optimizer with momentum or phases without it."
                    )
        self._first_update = self.model.state.optimizer_steps
        self._applied = None

    def on_train_batch_begin(self, batch_number: int, logs: Mapping[str, Any]) -> None:
        """Sets the values of the coming update (once for the k batches of an accumulated update)."""
        step = self.current_step
        if step != self._applied and step < self.total_steps:
            self._apply(self.values_at(step))
            self._applied = step

    def on_train_end(self, logs: Mapping[str, Any]) -> None:
        """Freezes the position: later runs of the model without this policy do not move it."""
        self._start = self.current_step
        self._first_update = None

    def _apply(self, values: Mapping[str, float]) -> None:
        for group in self.model.optimizer.param_groups:
            for name, value in values.items():
                if name == "momentum" and "momentum" not in group:
                    set_group_value(group, "betas", (value, *group["betas"][1:]))
                else:
                    set_group_value(group, name, value)

    def state_dict(self) -> dict[str, Any]:
        """The policy's position: ``{'current_step': updates made under it}``."""
        return {"current_step": self.current_step}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continues from the position in ``state``, from the next update on."""
        self._start = int(state["current_step"])
        if self._first_update is not None:
            self._first_update = self.model.state.optimizer_steps
        self._applied = None

    def __repr__(self) -> str:
        return f"OptimizerPolicy({len(self.phases)} phases, {self.total_steps} steps, current_step={self.current_step})"
