"""Keras 3 on its torch backend (``bench`` extra), the same torch module wrapped in ``TorchModuleWrapper``.

``KERAS_BACKEND`` must be ``torch`` before Keras is imported; this module sets it if unset.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras
from keras.layers import TorchModuleWrapper

from benchmarks.common import SEED, Task

if keras.backend.backend() != "torch":
    raise ImportError(f"Keras runs on {keras.backend.backend()!r}, not torch: set KERAS_BACKEND=torch")

VERSION = keras.__version__


def prepare(task: Task) -> Callable[[], Any]:
    """The timed call for ``task``."""
    keras.utils.set_random_seed(SEED + 2)  # as make_task: Python, NumPy, torch
    net = task.network.to(task.device)
    model = keras.Sequential([keras.Input(shape=tuple(task.x.shape[1:])), TorchModuleWrapper(net)])
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=task.lr),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["sparse_categorical_accuracy"],
    )
    kind, bs = task.scenario.kind, task.batch_size
    x, y = task.x.numpy(), task.y.numpy()
    if kind == "fit" and task.scenario.data == "tensors":
        return lambda: model.fit(x, y, batch_size=bs, epochs=task.epochs, shuffle=True, verbose=0)
    if kind == "fit":
        loader = task.loader()
        return lambda: model.fit(loader, epochs=task.epochs, verbose=0)
    if kind == "evaluate":
        return lambda: model.evaluate(x, y, batch_size=bs, verbose=0)
    return lambda: model.predict(x, batch_size=bs, verbose=0)
