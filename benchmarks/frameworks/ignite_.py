"""pytorch-ignite (``bench`` extra): ``create_supervised_trainer`` with an attached accuracy metric.

ignite runs on iterables of batches: scenario A1 goes through a shuffled ``DataLoader`` too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ignite
import torch
from ignite.engine import Events, create_supervised_evaluator, create_supervised_trainer
from ignite.metrics import Accuracy, Average, Loss

from benchmarks.common import Task

VERSION = ignite.__version__


def _fit(task: Task) -> Callable[[], Any]:
    net = task.network.to(task.device)
    trainer = create_supervised_trainer(
        net,
        task.optimizer(),
        task.loss_function(),
        device=task.device,
        output_transform=lambda x, y, y_pred, loss: (y_pred, y, loss.item()),
    )
    Accuracy(output_transform=lambda out: (out[0], out[1])).attach(trainer, "accuracy")
    Average(output_transform=lambda out: out[2]).attach(trainer, "loss")
    loader = task.loader()
    return lambda: trainer.run(loader, max_epochs=task.epochs).metrics


def _evaluate(task: Task) -> Callable[[], Any]:
    net = task.network.to(task.device)
    evaluator = create_supervised_evaluator(
        net, metrics={"accuracy": Accuracy(), "loss": Loss(task.loss_function())}, device=task.device
    )
    loader = task.loader(shuffle=False)
    return lambda: evaluator.run(loader).metrics


def _predict(task: Task) -> Callable[[], Any]:
    net = task.network.to(task.device)
    predictor = create_supervised_evaluator(
        net,
        device=task.device,
        prepare_batch=lambda batch, device, non_blocking: (batch[0].to(device), None),
        output_transform=lambda x, y, y_pred: y_pred,
    )
    outputs: list[torch.Tensor] = []
    predictor.add_event_handler(Events.ITERATION_COMPLETED, lambda eng: outputs.append(eng.state.output))
    loader = task.loader(shuffle=False, with_targets=False)

    def run() -> Any:
        outputs.clear()
        predictor.run(loader)
        return torch.cat(outputs).cpu().numpy()

    return run


def prepare(task: Task) -> Callable[[], Any]:
    """The timed call for ``task``."""
    return {"fit": _fit, "evaluate": _evaluate, "predict": _predict}[task.scenario.kind](task)
