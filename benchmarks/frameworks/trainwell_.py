"""trainwell, through its Poutyne-compatible ``Model``."""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from benchmarks.common import Task
from benchmarks.frameworks._poutyne_api import prepare_with
from trainwell import Model  # an ImportError marks trainwell unavailable (Model not written yet)

try:
    VERSION = version("trainwell")
except PackageNotFoundError:  # running from a source checkout
    VERSION = "source"


def _prepare_bert(task: Task) -> Callable[[], Any]:
    """The model's own loss, accuracy on its logits, ``fit_dataset`` with the collator (docs/transformers.md)."""
    from trainwell.integrations.transformers import MetricWrapper, ModelLoss, ModelWrapper, TransformerCollator

    network = ModelWrapper(task.network)
    model = Model(network, task.optimizer(), ModelLoss(), batch_metrics=[MetricWrapper("accuracy")])
    dataset, collate = task.hf_dataset(), TransformerCollator("labels")
    return lambda: model.fit_dataset(
        dataset, batch_size=task.batch_size, epochs=task.epochs, collate_fn=collate, verbose=False
    )


def prepare(task: Task) -> Callable[[], Any]:
    """The timed call for ``task``."""
    if task.scenario.model == "bert":
        return _prepare_bert(task)
    return prepare_with(Model, task)
