"""tinydl's ``Hyperparameter``: every combination of a dict of value lists, on trainwell's grid.

tinydl takes a value that is not a list as the only value to try, and its ``get_experiments()`` is a
generator on the object, so a second loop over it finds nothing. This one is trainwell's
:class:`~trainwell.search.grid.Hyperparameter`: ``get_experiments()`` can be iterated any number of
times, has ``len`` and indexing, and ``sample(n)`` draws a random search.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from trainwell.search import grid

__all__ = ["Hyperparameter"]


class Hyperparameter(grid.Hyperparameter):
    """Every combination of the values in ``hparam``, one ``dict`` per experiment, in tinydl's order.

    Args:
        hparam: ``{name: [value, ...]}``; a value that is not a list is the only value of its name
            (``{'epochs': 3}`` means ``{'epochs': [3]}``; a tuple is one value too).

    >>> hyperparameter = Hyperparameter({'batchsize': [128, 256], 'lr': [2e-3, 2e-4], 'epochs': 3})
    >>> for experiment in hyperparameter.get_experiments():
    ...     print(experiment)
    {'batchsize': 128, 'lr': 0.002, 'epochs': 3}
    {'batchsize': 128, 'lr': 0.0002, 'epochs': 3}
    {'batchsize': 256, 'lr': 0.002, 'epochs': 3}
    {'batchsize': 256, 'lr': 0.0002, 'epochs': 3}
    >>> hyperparameter.num_experiments, len(list(hyperparameter.get_experiments()))
    (4, 4)
    """

    def __init__(self, hparam: Mapping[str, Any]) -> None:
        if not isinstance(hparam, Mapping):
            raise TypeError(
                "`hparam` must be a dict mapping each hyperparameter name to a list of values. "
                f"Received: hparam of type {type(hparam).__name__}. Example: {{'lr': [1e-3, 1e-4]}}."
            )
        self.hparam = {name: list(values) if isinstance(values, list) else [values] for name, values in hparam.items()}
        super().__init__(self.hparam)

    @property
    def experiments(self) -> list[dict[str, Any]]:
        """Every experiment, as a list."""
        return list(self.get_experiments())

    @property
    def num_experiments(self) -> int:
        """The number of experiments."""
        return len(self)
