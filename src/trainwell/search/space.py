"""A search space: what each hyperparameter may take, checked once, then asked of Optuna or enumerated.

A space is a ``dict`` from names to entries, or a :class:`~trainwell.search.grid.Hyperparameter` grid:

- a list or tuple: the choices (tinydl's lists), ``{'width': [16, 32, 64]}``;
- a Python ``range``: those integers, ``{'depth': range(1, 4)}``;
- :class:`Range`: the integers or floats between two bounds (both included), ``Range(0.0, 0.5)``,
  ``Range(8, 128, step=8)``; :class:`LogRange` (``Range(..., log=True)``) draws them on a log scale.

Every entry can be drawn at random or suggested by an Optuna trial; entries with finitely many values
(lists, ranges, a :class:`Range` of ints or with a ``step``) can also be enumerated by a grid.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from trainwell.search.grid import Hyperparameter

__all__ = ["LogRange", "Range", "Space"]

_OPTUNA_CHOICE_TYPES = (type(None), bool, int, float, str)


@dataclass(frozen=True)
class Range:
    """The numbers between ``low`` and ``high`` (both included): ints when both bounds are ints.

    Args:
        low: the smallest value.
        high: the largest value, at least ``low``.
        step: only multiples of ``step`` above ``low`` (None: any int, or any float).
        log: draw on a log scale (``low`` must be > 0, and no ``step``).

    >>> Range(8, 32, step=8).values()
    [8, 16, 24, 32]
    >>> Range(0.0, 0.5).is_finite
    False
    """

    low: float
    high: float
    step: float | None = None
    log: bool = False

    @property
    def is_int(self) -> bool:
        """Whether the values are ints (both bounds and the step are ints)."""
        return all(isinstance(v, int) and not isinstance(v, bool) for v in (self.low, self.high, self.step or 1))

    @property
    def is_finite(self) -> bool:
        """Whether a grid can list the values: ints, or floats with a ``step``."""
        return self.is_int or self.step is not None

    def values(self) -> list[Any]:
        """Every value, smallest first (only for a finite range)."""
        step = self.step if self.step is not None else 1
        count = math.floor((self.high - self.low) / step + 1e-9) + 1
        if self.is_int:
            return [int(self.low + index * step) for index in range(count)]
        return [float(self.low + index * step) for index in range(count)]

    def draw(self, rng: random.Random) -> Any:
        """One value at random (uniform, or uniform in log space)."""
        if self.step is not None or self.is_int:
            if self.log:  # a log-uniform int: draw the float, round to the nearest allowed value
                value = math.exp(rng.uniform(math.log(self.low), math.log(self.high)))
                return min(self.values(), key=lambda allowed: abs(allowed - value))
            return rng.choice(self.values())
        if self.log:
            return math.exp(rng.uniform(math.log(self.low), math.log(self.high)))
        return rng.uniform(self.low, self.high)


def LogRange(low: float, high: float, step: float | None = None) -> Range:  # noqa: N802 (reads as a type)
    """``Range(low, high, log=True)``: values drawn on a log scale, as learning rates usually are.

    >>> LogRange(1e-4, 1e-1)
    Range(low=0.0001, high=0.1, step=None, log=True)
    """
    return Range(low, high, step=step, log=True)


class Space:
    """A checked search space. Built from a ``dict`` of entries or a ``Hyperparameter`` grid.

    Args:
        space: ``{name: entry}`` (see the module's docstring) or a ``Hyperparameter``.

    Raises:
        TypeError: the space is not a mapping, a name is not a string, or an entry is of no known kind.
        ValueError: an entry holds no value, or has bounds in the wrong order.

    >>> space = Space({'lr': LogRange(1e-3, 1e-1), 'width': [16, 32]})
    >>> space.names
    ['lr', 'width']
    """

    def __init__(self, space: Any) -> None:
        if isinstance(space, Hyperparameter):
            space = {name: list(values) for name, values in space.choices.items()}
        if not isinstance(space, Mapping):
            raise TypeError(
                "`space` must be a dict mapping each hyperparameter name to its values (a list, a range, "
                f"Range(low, high) or LogRange(low, high)), or a Hyperparameter grid. Received: space={space!r} "
                f"(type {type(space).__name__}). Example: {{'lr': LogRange(1e-4, 1e-1), 'width': [16, 32]}}."
            )
        if not space:
            raise ValueError("`space` is empty: give at least one hyperparameter, e.g. {'lr': LogRange(1e-4, 1e-1)}.")
        self.entries: dict[str, Range | tuple[Any, ...]] = {}
        for name, entry in space.items():
            if not isinstance(name, str):
                raise TypeError(
                    f"Hyperparameter names in `space` must be strings. Received the key {name!r} "
                    f"(type {type(name).__name__})."
                )
            self.entries[name] = _checked_entry(name, entry)

    @property
    def names(self) -> list[str]:
        """The hyperparameter names, in the order given."""
        return list(self.entries)

    def grid(self) -> Hyperparameter:
        """Every combination, tinydl's order (the last name varies fastest); only for finite entries."""
        lists: dict[str, list[Any]] = {}
        for name, entry in self.entries.items():
            if isinstance(entry, Range):
                if not entry.is_finite:
                    raise ValueError(
                        f"sampler='grid' needs finitely many values, but `space[{name!r}]` is {entry!r}, a "
                        f"continuous range. Give a list, a step (Range({entry.low}, {entry.high}, step=...)), "
                        "or use sampler='random' or 'tpe'."
                    )
                lists[name] = entry.values()
            else:
                lists[name] = list(entry)
        return Hyperparameter(lists)

    def draw(self, rng: random.Random) -> dict[str, Any]:
        """One point at random, every entry drawn in order from ``rng``."""
        return {
            name: entry.draw(rng) if isinstance(entry, Range) else rng.choice(entry)
            for name, entry in self.entries.items()
        }

    def suggest(self, trial: Any) -> dict[str, Any]:
        """The trial's parameters, asked of an Optuna trial (fixed ones come back as they were set)."""
        params: dict[str, Any] = {}
        for name, entry in self.entries.items():
            if isinstance(entry, tuple):
                params[name] = trial.suggest_categorical(name, list(entry))
            elif entry.is_int:
                params[name] = trial.suggest_int(
                    name, int(entry.low), int(entry.high), step=int(entry.step or 1), log=entry.log
                )
            else:
                step = None if entry.step is None else float(entry.step)
                params[name] = trial.suggest_float(name, float(entry.low), float(entry.high), step=step, log=entry.log)
        return params

    def describe(self) -> dict[str, Any]:
        """A JSON view of the space, stored with the study to recognise the same search when it resumes."""
        return {
            name: (
                {"low": entry.low, "high": entry.high, "step": entry.step, "log": entry.log}
                if isinstance(entry, Range)
                else list(entry)
            )
            for name, entry in self.entries.items()
        }

    def first_point(self) -> dict[str, Any]:
        """The first value of each entry (the lower bound of a range): a point to build a probe model at."""
        return {name: entry.low if isinstance(entry, Range) else entry[0] for name, entry in self.entries.items()}


def _checked_entry(name: str, entry: Any) -> Range | tuple[Any, ...]:
    where = f"`space[{name!r}]`"
    if isinstance(entry, range):
        if len(entry) == 0 or entry.step < 0:
            raise ValueError(f"{where} is {entry!r}, which holds no value (or counts down). Received: {entry!r}.")
        return _checked_range(where, Range(entry.start, entry[-1], step=entry.step))
    if isinstance(entry, Range):
        return _checked_range(where, entry)
    if isinstance(entry, (str, bytes)) or not isinstance(entry, Sequence):
        raise TypeError(
            f"{where} must be a list of choices, a range, Range(low, high) or LogRange(low, high). Received: "
            f"{where[1:-1]}={entry!r} (type {type(entry).__name__}). Wrap a single value in a list: [{entry!r}]."
        )
    if len(entry) == 0:
        raise ValueError(f"{where} is an empty list: give at least one value, or leave {name!r} out of the space.")
    for value in entry:
        # Optuna stores choices in its database: only these types survive the trip and compare equal after it.
        if not isinstance(value, _OPTUNA_CHOICE_TYPES):
            raise TypeError(
                f"{where} holds {value!r} (type {type(value).__name__}), but choices must be None, bool, int, "
                "float or str (they are stored in the study's database). Give names, e.g. ['relu', 'tanh'], and "
                "map them to objects in your build function."
            )
    return tuple(entry)


def _checked_range(where: str, entry: Range) -> Range:
    for bound in ("low", "high"):
        value = getattr(entry, bound)
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            raise TypeError(f"{where}: `{bound}` must be a finite number. Received: {bound}={value!r}.")
    if entry.low > entry.high:
        raise ValueError(f"{where}: `low` must be <= `high`. Received: low={entry.low}, high={entry.high}.")
    if entry.step is not None and (
        not isinstance(entry.step, (int, float)) or isinstance(entry.step, bool) or not entry.step > 0
    ):
        raise ValueError(f"{where}: `step` must be a positive number or None. Received: step={entry.step!r}.")
    if entry.log and entry.low <= 0:
        raise ValueError(f"{where}: a log range needs `low` > 0. Received: low={entry.low}.")
    if entry.log and entry.step not in (None, 1):
        raise ValueError(f"{where}: a log range takes no `step` (Optuna's rule). Received: step={entry.step!r}.")
    return entry
