"""Hyperparameter spaces for searches: the grid of every combination, and random draws from it.

:class:`Hyperparameter` is the search space. A grid search iterates :meth:`Hyperparameter.get_experiments`;
a random search draws :meth:`Hyperparameter.sample`; an Optuna objective can read
:attr:`Hyperparameter.choices` as categorical distributions. Each experiment is a plain ``dict`` that a
runner passes on to the code building the model, so one space serves every kind of search.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

__all__ = ["Experiments", "Hyperparameter"]


class Experiments:
    """The combinations of a :class:`Hyperparameter` grid: re-iterable, sized and indexable.

    Every iteration starts over from the first combination, and each one is a new ``dict``, so a
    runner may iterate twice (count, then run) or edit an experiment without changing the grid.
    """

    def __init__(self, choices: Mapping[str, tuple[Any, ...]]) -> None:
        self._choices = choices

    def __iter__(self) -> Iterator[dict[str, Any]]:
        names = list(self._choices)
        # product() varies its last argument fastest: the last key changes from one experiment to the next.
        for values in itertools.product(*self._choices.values()):
            yield dict(zip(names, values, strict=True))

    def __len__(self) -> int:
        return math.prod(len(values) for values in self._choices.values())

    def __getitem__(self, index: int) -> dict[str, Any]:
        size = len(self)
        if not isinstance(index, int) or isinstance(index, bool):
            raise TypeError(f"Experiments are indexed by int. Received: index={index!r} (type {type(index).__name__}).")
        if not -size <= index < size:
            raise IndexError(f"Experiment index out of range. Received: index={index} for {size} experiment(s).")
        index %= size
        # Mixed-radix decoding, last key least significant, so experiments[i] == list(experiments)[i].
        experiment: dict[str, Any] = {}
        for name, values in reversed(list(self._choices.items())):
            index, position = divmod(index, len(values))
            experiment[name] = values[position]
        return {name: experiment[name] for name in self._choices}

    def __repr__(self) -> str:
        return f"Experiments({len(self)} combinations of {list(self._choices)})"


class Hyperparameter:
    """A search space: for each hyperparameter name, the list of values to try.

    Args:
        grid: ``{name: [value, ...]}``. Keys are strings; each value is a non-empty list (or tuple,
            range...) of the values to try. A single value still goes in a list: ``{'lr': [0.1]}``.
            The lists are copied, so changing them afterwards does not change the space.

    Raises:
        TypeError: ``grid`` is not a mapping, a key is not a string, or a value is not a list.
        ValueError: a value is an empty list.

    >>> space = Hyperparameter({'batchsize': [128, 256], 'lr': [2e-3, 2e-4]})
    >>> for experiment in space.get_experiments():
    ...     print(experiment)
    {'batchsize': 128, 'lr': 0.002}
    {'batchsize': 128, 'lr': 0.0002}
    {'batchsize': 256, 'lr': 0.002}
    {'batchsize': 256, 'lr': 0.0002}
    >>> len(space)
    4
    """

    def __init__(self, grid: Mapping[str, Sequence[Any]]) -> None:
        if not isinstance(grid, Mapping):
            raise TypeError(
                "`grid` must be a dict mapping each hyperparameter name to a list of values. "
                f"Received: grid={grid!r} (type {type(grid).__name__}). Example: {{'lr': [1e-3, 1e-4]}}."
            )
        self._choices: dict[str, tuple[Any, ...]] = {}
        for name, values in grid.items():
            if not isinstance(name, str):
                raise TypeError(
                    f"Hyperparameter names in `grid` must be strings. Received the key {name!r} "
                    f"(type {type(name).__name__})."
                )
            # A string is a sequence too: {'optim': 'adam'} would otherwise try 'a', 'd', 'a', 'm'.
            if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
                raise TypeError(
                    f"`grid[{name!r}]` must be a list of values to try. Received: grid[{name!r}]={values!r} "
                    f"(type {type(values).__name__}). Wrap a single value in a list: {{{name!r}: [{values!r}]}}."
                )
            if len(values) == 0:
                raise ValueError(
                    f"`grid[{name!r}]` is an empty list, so the grid would hold no experiment. "
                    f"Give at least one value: {{{name!r}: [value]}}, or leave {name!r} out."
                )
            self._choices[name] = tuple(values)

    @property
    def names(self) -> list[str]:
        """The hyperparameter names, in the order given."""
        return list(self._choices)

    @property
    def choices(self) -> dict[str, tuple[Any, ...]]:
        """``{name: (value, ...)}``: what an Optuna objective passes to ``trial.suggest_categorical``."""
        return dict(self._choices)

    def get_experiments(self) -> Experiments:
        """Every combination, as a dict per experiment, the last hyperparameter varying fastest.

        The result can be iterated any number of times, has ``len`` and supports ``experiments[i]``.

        >>> experiments = Hyperparameter({'depth': [1, 2], 'act': ['relu', 'tanh']}).get_experiments()
        >>> [e['act'] for e in experiments] == [e['act'] for e in experiments]
        True
        >>> experiments[1]
        {'depth': 1, 'act': 'tanh'}
        """
        return Experiments(self._choices)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.get_experiments())

    def __len__(self) -> int:
        return len(self.get_experiments())

    def sample(self, n: int, seed: int | None = None) -> list[dict[str, Any]]:
        """``n`` distinct combinations drawn at random (a random search over the grid).

        Args:
            n: how many experiments, at most ``len(self)``.
            seed: the same seed gives the same draws; None draws from fresh entropy.

        Raises:
            ValueError: ``n`` is not a positive int, or more than the grid holds.

        >>> space = Hyperparameter({'lr': [0.1, 0.01, 0.001], 'momentum': [0.0, 0.9]})
        >>> space.sample(2, seed=0) == space.sample(2, seed=0)
        True
        """
        size = len(self)
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ValueError(f"`n` must be a positive int. Received: n={n!r} (type {type(n).__name__}).")
        if n > size:
            raise ValueError(
                f"`n` is larger than the grid: it holds {size} distinct experiment(s). Received: n={n}. "
                f"Ask for at most {size}, or iterate get_experiments() for all of them."
            )
        experiments = self.get_experiments()
        # Indices are drawn, not combinations: a huge grid is never expanded to sample a few of it.
        return [experiments[index] for index in random.Random(seed).sample(range(size), n)]

    def __repr__(self) -> str:
        return f"Hyperparameter({self._choices!r})"
