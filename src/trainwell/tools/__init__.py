"""The toolbox around training: network summaries, the learning-rate finder, history plots, layers.

:mod:`~trainwell.tools.summary`, :mod:`~trainwell.tools.lr_finder`, :mod:`~trainwell.tools.plotting`
and :mod:`~trainwell.tools.layers` (``Lambda``). Each is exported from ``trainwell`` and loaded on first use.
"""
