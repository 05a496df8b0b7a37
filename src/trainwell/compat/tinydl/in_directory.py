"""``Runner(..., experiment_dir=...)``: a run checkpointed in a directory and resumed exactly when the script reruns.

The epochs go through :func:`trainwell.compat.resumable.train_in_directory` (an Experiment's checkpoints,
log.tsv, TensorBoard and plots); the runner's history and the trainer's epoch count ride along in every
checkpoint, so a script killed at any moment and started again ends with the weights and the run
reporters' values of an uninterrupted run. TensorBoard reporters without a ``log_dir`` write under
``<experiment_dir>/reporters`` (one place for every attempt of the run, instead of a new ``runs/``
directory each time).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from trainwell.callbacks.base import Callback
from trainwell.compat.resumable import Bookkeeping, train_in_directory
from trainwell.compat.tinydl.reporter import Reporter, TensorboardReporter
from trainwell.model.model import Model

__all__ = ["reporters_directory", "run_in_directory"]


def reporters_directory(experiment_dir: str | os.PathLike[str], reporters: list[Reporter]) -> None:
    """Points the TensorBoard reporters that have no directory at ``<experiment_dir>/reporters``."""
    for reporter in reporters:
        if isinstance(reporter, TensorboardReporter) and reporter.log_dir is None and reporter._writer is None:
            reporter.log_dir = os.fspath(Path(experiment_dir) / "reporters")


def run_in_directory(
    runner: Any,
    model: Model,
    train_loader: Any,
    valid_loader: Any,
    *,
    epochs: int,
    callbacks: list[Callback],
) -> list[dict[str, Any]]:
    """Trains ``runner``'s model in ``runner.experiment_dir`` up to epoch ``epochs``; keeps its history.

    Returns:
        The logs of the epochs trained by this call.
    """

    def save() -> dict[str, Any]:
        return {"history": [dict(logs) for logs in runner.history], "epochs_done": runner.trainer.epochs_done}

    def load(state: Mapping[str, Any]) -> None:
        runner.history[:] = [dict(logs) for logs in state["history"]]
        runner.trainer.epochs_done = int(state["epochs_done"])

    def epoch_end(epoch_number: int, logs: Mapping[str, Any]) -> None:
        runner.history.append(dict(logs))
        runner.trainer.epochs_done += 1

    has_validation = valid_loader is not None
    return train_in_directory(
        runner.experiment_dir,
        model,
        train_loader,
        valid_loader,
        epochs=epochs,
        callbacks=callbacks,
        bookkeeping=Bookkeeping(save, load, epoch_end),
        monitor_metric="val_loss" if has_validation else "loss",
        monitor_mode="min",
        verbose=runner.verbose,
    )
