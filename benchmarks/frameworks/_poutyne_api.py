"""Shared by trainwell and Poutyne: both expose Poutyne's ``Model`` API."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch.utils.data import TensorDataset

from benchmarks.common import Task


def prepare_with(model_class: type, task: Task) -> Callable[[], Any]:
    """``Model(network, optimizer, loss, batch_metrics=["accuracy"])`` and the scenario's one call."""
    model = model_class(task.network, task.optimizer(), task.loss_function(), batch_metrics=["accuracy"])
    if task.device.type != "cpu":
        model.to(task.device)
    kind, bs = task.scenario.kind, task.batch_size
    if kind == "fit" and task.scenario.data == "tensors":
        return lambda: model.fit(task.x, task.y, batch_size=bs, epochs=task.epochs, verbose=False)
    if kind == "fit" and task.scenario.data == "dataset":
        dataset = TensorDataset(task.x, task.y)
        return lambda: model.fit_dataset(dataset, batch_size=bs, epochs=task.epochs, verbose=False)
    if kind == "fit":
        loader = task.loader()
        return lambda: model.fit_generator(loader, epochs=task.epochs, verbose=False)
    if kind == "evaluate":
        return lambda: model.evaluate(task.x, task.y, batch_size=bs, verbose=False)
    return lambda: model.predict(task.x, batch_size=bs, verbose=False)
