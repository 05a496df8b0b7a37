"""Hyperparameter searches: spaces of parameters, and (to come) searches running one Experiment per trial.

:mod:`~trainwell.search.grid` holds ``Hyperparameter``, the grid of every combination.
"""

from trainwell.search.grid import Hyperparameter

__all__ = ["Hyperparameter"]
