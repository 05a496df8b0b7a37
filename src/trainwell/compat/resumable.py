"""A dialect's training run kept in a directory: checkpointed like an Experiment's, resumed exactly.

tinydl's ``Runner`` and fitloop's ``FitLoop`` train by calling ``Model.fit_generator``. Given a directory,
they call :meth:`~trainwell.experiment.experiment.ModelBundle.train` instead: the run is checkpointed
after every epoch and on SIGINT/SIGTERM (weights, optimizer, random generators, the loader's position
and the callbacks' states), and running the same script again continues where the last checkpoint left
off, with the results of an uninterrupted run. What the dialect itself keeps between epochs (fitloop's
``M``, tinydl's history) rides along in the checkpoints through a :class:`Bookkeeping` callback.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from trainwell.callbacks.base import Callback
from trainwell.experiment.experiment import ModelBundle
from trainwell.model.model import Model

__all__ = ["Bookkeeping", "train_in_directory"]


class Bookkeeping(Callback):
    """Puts a dialect's own state in every checkpoint of the run and back on resume.

    Args:
        save: returns the state (tensors, numbers, strings, lists and dicts of them: nothing is pickled).
        load: takes what ``save`` returned, from the checkpoint a resumed run starts from.
        epoch_end: called with the epoch number and logs at the end of each epoch, before the
            checkpoint is written (the checkpointer is the last callback).
    """

    def __init__(
        self,
        save: Callable[[], dict[str, Any]],
        load: Callable[[Mapping[str, Any]], None],
        epoch_end: Callable[[int, Mapping[str, Any]], None] | None = None,
    ) -> None:
        super().__init__()
        self._save, self._load, self._epoch_end = save, load, epoch_end

    def on_epoch_end(self, epoch_number: int, logs: Mapping[str, Any]) -> None:  # noqa: D102
        if self._epoch_end is not None:
            self._epoch_end(epoch_number, logs)

    def state_dict(self) -> dict[str, Any]:
        """The dialect's state, as ``save`` returns it."""
        return self._save()

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Hands a checkpoint's state to ``load``."""
        self._load(state)


def train_in_directory(
    directory: str | os.PathLike[str],
    model: Model,
    train_loader: Any,
    valid_loader: Any,
    *,
    epochs: int,
    callbacks: list[Callback],
    bookkeeping: Bookkeeping,
    monitor_metric: str,
    monitor_mode: str,
    **fit_options: Any,
) -> list[dict[str, Any]]:
    """Trains ``model`` in ``directory`` up to epoch ``epochs`` (a total), resuming the run found there.

    Args:
        directory: the run's directory (log.tsv, checkpoints/, tensorboard/, plots/ as for an Experiment).
        model: the dialect's trainwell model.
        train_loader: the training loader.
        valid_loader: the validation loader, or None.
        epochs: the last epoch number of the run.
        callbacks: the dialect's callbacks; their states are checkpointed too.
        bookkeeping: the dialect's own state (see :class:`Bookkeeping`).
        monitor_metric: the epoch log that picks the best checkpoint.
        monitor_mode: its direction, ``'min'`` or ``'max'``.
        **fit_options: ``fit_generator``'s other options (``verbose``, ``steps_per_epoch``...).

    Returns:
        The logs of the epochs this call trained (none when the directory's run had already finished).
    """
    bundle = ModelBundle.from_model(Path(directory), model, monitor_metric=monitor_metric, monitor_mode=monitor_mode)
    # seed=None: the script seeds as it always did; a resumed run takes its generators from the checkpoint.
    return bundle.train(
        train_loader, valid_loader, epochs=epochs, callbacks=[*callbacks, bookkeeping], seed=None, **fit_options
    )
