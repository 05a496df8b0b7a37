"""``FitLoop(experiment_dir=...)``: a fit checkpointed in a directory and resumed exactly when the script reruns.

The fit goes through :func:`trainwell.compat.resumable.train_in_directory` (an Experiment's checkpoints,
log.tsv, TensorBoard and plots); ``epoch_num`` and ``M`` ride along in every checkpoint, so a script
killed at any moment and started again ends with the weights, ``M`` and best model of an uninterrupted
run.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from trainwell.callbacks.base import Callback
from trainwell.compat.resumable import Bookkeeping, train_in_directory
from trainwell.model.model import Model

__all__ = ["fit_in_directory"]


def fit_in_directory(
    floop: Any,
    model: Model,
    train_dl: Any,
    valid_dl: Any,
    *,
    epochs: int,
    callbacks: list[Callback],
    monitor: str,
    **fit_options: Any,
) -> list[dict[str, Any]]:
    """Trains ``floop``'s model in ``floop.experiment_dir`` up to epoch ``epochs``; sets ``floop.epoch_num``.

    Returns:
        The logs of the epochs trained by this call.
    """
    count = {"epoch_num": floop.epoch_num}

    def save() -> dict[str, Any]:
        return {"epoch_num": count["epoch_num"], "metrics": floop.metrics.state_dict()}

    def load(state: Mapping[str, Any]) -> None:
        count["epoch_num"] = int(state["epoch_num"])
        floop.metrics.load_state_dict(state["metrics"])

    def epoch_end(epoch_number: int, logs: Mapping[str, Any]) -> None:
        count["epoch_num"] += 1

    history = train_in_directory(
        floop.experiment_dir,
        model,
        train_dl,
        valid_dl,
        epochs=epochs,
        callbacks=callbacks,
        bookkeeping=Bookkeeping(save, load, epoch_end),
        monitor_metric=monitor,
        monitor_mode="max" if floop.criteria_direction > 0 else "min",
        **fit_options,
    )
    floop.epoch_num = count["epoch_num"]
    return history
