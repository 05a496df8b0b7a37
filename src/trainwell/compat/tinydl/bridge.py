"""What joins tinydl's reporters to trainwell's loop: the ``Model``'s metrics, and the callback that reports.

Every metric of a batch reporter becomes a batch metric of the model (its value per batch is in the
batch logs); every metric of an epoch or run reporter is computed once per epoch on the whole epoch's
scores and targets, by an epoch-end function, and lands in the epoch logs under its name (``val_`` in
validation). :class:`ReportingCallback` reads those logs and hands the values to the reporters.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch

from trainwell.callbacks.base import Callback
from trainwell.compat.tinydl.metric import Metric, measure
from trainwell.compat.tinydl.reporter import Reporter
from trainwell.compat.tinydl.stage import Stage
from trainwell.model import Model

__all__ = ["ReportingCallback", "build_model", "default_device", "metrics_of", "reporter_list"]


def default_device() -> torch.device:
    """The device tinydl picks: the GPU when there is one, else the CPU.

    >>> default_device().type in ('cuda', 'cpu')
    True
    """
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def reporter_list(value: Any, argument: str) -> list[Reporter]:
    """A reporter argument as a list: None gives ``[]``, one reporter ``[reporter]``; Nones in a list are dropped.

    >>> reporter_list(None, 'batch_reporters')
    []
    """
    items = [] if value is None else [value] if isinstance(value, Reporter) else value
    if not isinstance(items, Iterable) or isinstance(items, (str, bytes)):
        raise TypeError(f"`{argument}` must be a Reporter or a list of Reporters. Received: {argument}={value!r}.")
    reporters = [item for item in items if item is not None]
    for item in reporters:
        if not isinstance(item, Reporter):
            raise TypeError(
                f"`{argument}` must hold Reporter objects (ConsoleReporter, TensorboardScalarReporter...). "
                f"Received: {item!r} (type {type(item).__name__})."
            )
    return reporters


def metrics_of(reporters: Iterable[Reporter]) -> list[Metric]:
    """The reporters' metrics, one per name (the first one wins), in order.

    >>> from trainwell.compat.tinydl.metric import CrossEntropy
    >>> from trainwell.compat.tinydl.reporter import ConsoleReporter
    >>> first, second = ConsoleReporter(), ConsoleReporter()
    >>> first.add_metrics(CrossEntropy()); second.add_metrics([CrossEntropy(), CrossEntropy('CE2')])
    >>> [metric.name for metric in metrics_of([first, second])]
    ['CE', 'CE2']
    """
    found: dict[str, Metric] = {}
    for reporter in reporters:
        for metric in reporter.metrics:
            found.setdefault(metric.name, metric)
    return list(found.values())


def _batch_metric(metric: Metric) -> Callable[[Any, Any], torch.Tensor]:
    def value(y_pred: Any, y_true: Any) -> torch.Tensor:
        return measure(metric, y_pred, y_true)

    return value


def _epoch_end(metrics: list[Metric]) -> Callable[[Any, Any], dict[str, torch.Tensor]]:
    def end(context: Any, outputs: Any) -> dict[str, torch.Tensor]:
        scores, targets = outputs["y_pred"], outputs["y_true"]  # every batch of the epoch, concatenated
        return {metric.name: measure(metric, scores, targets) for metric in metrics}

    return end


def _predictions_step(context: Any, batch: Any) -> dict[str, Any]:
    """The evaluation step of a ``Validator`` without a loss: scores and targets only."""
    data, targets = batch
    return {"y_pred": context.network(data), "y_true": targets}


def build_model(
    network: torch.nn.Module,
    optimizer: Any,
    loss_fn: Any,
    *,
    batch_metrics: list[Metric],
    epoch_metrics: list[Metric],
    phases: Iterable[str],
    device: Any,
    sanity_check: bool,
) -> Model:
    """The trainwell ``Model`` one tinydl run trains: the reporters' metrics, epoch functions for ``phases``."""
    functions = {f"{phase}_epoch_end": _epoch_end(epoch_metrics) for phase in phases} if epoch_metrics else None
    return Model(
        network,
        optimizer,
        loss_fn,
        batch_metrics=[(metric.name, _batch_metric(metric)) for metric in batch_metrics],
        epoch_functions=functions,
        evaluate_step=None if loss_fn is not None else _predictions_step,
        device=device,
        sanity_check=sanity_check,
    )


class ReportingCallback(Callback):
    """Hands the values trainwell measured to tinydl's reporters, per batch and per epoch.

    Args:
        batch: batch reporters by phase (``'train'``, ``'valid'``, ``'test'``).
        epoch: epoch reporters by phase.
        test_stage: the stage of values measured by ``evaluate`` (a ``Validator`` run on its own).
    """

    reads_gradients = False

    def __init__(
        self,
        batch: Mapping[str, list[Reporter]],
        epoch: Mapping[str, list[Reporter]],
        test_stage: Stage = Stage.VALIDATION,
    ) -> None:
        self.batch = {phase: list(batch.get(phase, [])) for phase in ("train", "valid", "test")}
        self.epoch = {phase: list(epoch.get(phase, [])) for phase in ("train", "valid", "test")}
        self.test_stage = test_stage

    def _every_reporter(self) -> list[Reporter]:
        unique = {
            id(reporter): reporter for group in (self.batch, self.epoch) for lst in group.values() for reporter in lst
        }
        return list(unique.values())

    @staticmethod
    def _report(reporters: list[Reporter], stage: Stage, logs: Mapping[str, Any], prefix: str) -> None:
        for reporter in reporters:
            for metric in reporter.metrics:
                key = prefix + metric.name
                if key not in logs:
                    raise KeyError(
                        f"{reporter.name} reports {metric.name!r}, but the logs hold no {key!r} (they hold "
                        f"{sorted(logs)}). Add metrics to reporters before the run starts."
                    )
                reporter.add_report(stage, metric.name, logs[key])
            reporter.report()

    def on_train_batch_end(self, batch_number: int, logs: Mapping[str, Any]) -> None:  # noqa: D102
        self._report(self.batch["train"], Stage.TRAIN, logs, "")

    def on_valid_batch_end(self, batch_number: int, logs: Mapping[str, Any]) -> None:  # noqa: D102
        self._report(self.batch["valid"], Stage.VALIDATION, logs, "val_")  # Poutyne's batch keys

    def on_test_batch_end(self, batch_number: int, logs: Mapping[str, Any]) -> None:  # noqa: D102
        self._report(self.batch["test"], self.test_stage, logs, "test_")

    def on_epoch_end(self, epoch_number: int, logs: Mapping[str, Any]) -> None:  # noqa: D102
        self._report(self.epoch["train"], Stage.TRAIN, logs, "")
        self._report(self.epoch["valid"], Stage.VALIDATION, logs, "val_")
        self.flush()

    def on_test_end(self, logs: Mapping[str, Any]) -> None:  # noqa: D102
        self._report(self.epoch["test"], self.test_stage, logs, "test_")
        self.flush()

    def on_train_end(self, logs: Mapping[str, Any]) -> None:  # noqa: D102
        self.flush()

    def flush(self) -> None:
        """Flushes every reporter, so that TensorBoard sees the epoch."""
        for reporter in self._every_reporter():
            reporter.flush()
