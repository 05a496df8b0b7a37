"""The bottom layer: helpers that import nothing else of trainwell.

:mod:`~trainwell.utils.tensors` (nested tensor helpers and ``set_seeds``, exported to users here as in
Poutyne's ``utils``), :mod:`~trainwell.utils.checks` (argument checks with errors that say how to fix the
call), :mod:`~trainwell.utils.names` ("did you mean" errors for names), :mod:`~trainwell.utils.rng` (every random
generator's state as checkpointable values) and
:mod:`~trainwell.utils.lazy_names` (lazy package namespaces).
"""

from trainwell.utils.tensors import numpy_to_torch, set_seeds, torch_apply, torch_to, torch_to_numpy

__all__ = ["numpy_to_torch", "set_seeds", "torch_apply", "torch_to", "torch_to_numpy"]
