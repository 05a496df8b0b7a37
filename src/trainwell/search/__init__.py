"""Hyperparameter searches: spaces of parameters, and searches running one Experiment per trial.

:mod:`~trainwell.search.grid` holds ``Hyperparameter``, the grid of every combination;
:mod:`~trainwell.search.space` the entries of a space (lists, ranges, ``Range``, ``LogRange``);
:mod:`~trainwell.search.search` the :class:`Search` itself, on Optuna (imported when a search starts).
"""

from trainwell.search.grid import Hyperparameter
from trainwell.search.space import LogRange, Range
from trainwell.utils.lazy_names import lazy_names

__all__ = ["Hyperparameter", "LogRange", "Range", "Search", "search_from_config"]

# Search pulls in the experiment layer: loaded on first use, so that `Hyperparameter` stays cheap.
_LAZY = {"Search": "trainwell.search.search", "search_from_config": "trainwell.search.config"}
__getattr__, __dir__ = lazy_names(globals(), _LAZY, __all__)
