"""The bottom layer: helpers that import nothing else of trainwell.

:mod:`~trainwell.utils.tensors` (nested tensor helpers and ``set_seeds``), :mod:`~trainwell.utils.tensor_dataset`
(``TensorDataset`` over nested tensors), :mod:`~trainwell.utils.batch_size` (``get_batch_size``) and
:mod:`~trainwell.utils.warning_settings` are exported to users here, as in Poutyne's ``utils``;
:mod:`~trainwell.utils.checks` (argument checks with errors that say how to fix the call),
:mod:`~trainwell.utils.names` ("did you mean" errors for names), :mod:`~trainwell.utils.files` (atomic
writes), :mod:`~trainwell.utils.rng` (every random generator's state as checkpointable values) and
:mod:`~trainwell.utils.lazy_names` (lazy package namespaces) serve the other layers.
"""

from trainwell.utils.batch_size import get_batch_size
from trainwell.utils.tensor_dataset import TensorDataset
from trainwell.utils.tensors import numpy_to_torch, set_seeds, torch_apply, torch_to, torch_to_numpy
from trainwell.utils.warning_settings import warning_settings

__all__ = [
    "TensorDataset",
    "get_batch_size",
    "numpy_to_torch",
    "set_seeds",
    "torch_apply",
    "torch_to",
    "torch_to_numpy",
    "warning_settings",
]
