"""``Model``: the Keras/Poutyne facade, and its parts.

:mod:`~trainwell.model.model` (the class: building, ``fit*``), :mod:`~trainwell.model.inference`
(``evaluate*``, ``predict*``, ``*_on_batch``), :mod:`~trainwell.model.returns` (Poutyne's return formats),
:mod:`~trainwell.model.weights` (weights, optimizer state, devices), :mod:`~trainwell.model.training_state`
(the whole state for exact resume) and :mod:`~trainwell.model.lazy_layers` (optimizers waiting for lazy
layers' shapes). The model knows nothing of directories: that is :mod:`trainwell.experiment`.
"""

from trainwell.model.model import Model

__all__ = ["Model"]
