"""The bridge from an Experiment's epochs to its Optuna trial: each epoch's objective reported, pruning obeyed.

A pruned trial is marked (user attribute ``pruned_at``) before the epoch's checkpoint is written, so a
worker killed right after still leaves the decision on record: the next run closes the trial as pruned
instead of training it further.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from trainwell.callbacks.base import Callback

__all__ = ["PRUNED_AT", "TrialReporter"]

PRUNED_AT = "pruned_at"


class TrialReporter(Callback):
    """Reports each epoch's objective to the Optuna trial and stops the trial when the pruner says so."""

    def __init__(self, trial: Any, objective: str, prune: bool) -> None:
        self.trial = trial
        self.objective = objective
        self.prune = prune

    def on_epoch_end(self, epoch_number: int, logs: Mapping[str, Any]) -> None:  # noqa: D102
        if self.objective not in logs:
            logged = sorted(key for key in logs if key not in ("epoch", "time"))
            raise ValueError(
                f"`objective`={self.objective!r} is not logged: the epoch logged {logged}. Pick one of these "
                "(validation values need validation data)."
            )
        value = float(logs[self.objective])
        # The step is the epoch (1-based). A resumed trial may end an epoch it had reported: Optuna keeps the first.
        if epoch_number not in self.trial.storage.get_trial(self.trial._trial_id).intermediate_values:
            self.trial.report(value, epoch_number)
        if self.prune and math.isfinite(value) and self.trial.should_prune():
            # Recorded before the epoch's checkpoint: a worker killed after it still knows the trial was pruned.
            self.trial.set_user_attr(PRUNED_AT, epoch_number)
            self.model.stop_training = True
