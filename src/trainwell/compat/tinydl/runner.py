"""tinydl's ``Trainer``, ``Validator`` and ``Runner``, each a thin front over trainwell's ``Model``.

``Trainer.train(model)`` is one ``fit_generator`` epoch, ``Validator.validate(model)`` one
``evaluate_generator`` pass, and ``Runner.run(n)`` one ``fit_generator`` of ``n`` epochs with validation:
there is no loop here. The reporters get their values from trainwell's logs (see
:mod:`~trainwell.compat.tinydl.bridge`), which changes three things from tinydl, all for the better:

- an epoch reporter's value covers the whole epoch (tinydl computed it on the epoch's last batch);
- a run reporter reports the last epoch's values, already computed, instead of reading both loaders
  again after the run;
- the loss and metrics stay on the device between batches, read only when a reporter needs a value.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch.utils.data import DataLoader

from trainwell.compat.tinydl.bridge import ReportingCallback, build_model, default_device, metrics_of, reporter_list
from trainwell.compat.tinydl.in_directory import reporters_directory, run_in_directory
from trainwell.compat.tinydl.reporter import Reporter, share_run_directory
from trainwell.compat.tinydl.stage import Stage
from trainwell.model import Model

__all__ = ["Runner", "Trainer", "Validator"]


class Trainer:
    """Trains a network for one epoch per :meth:`train` call, and feeds the reporters.

    Args:
        loader: the training batches ``(data, targets)``.
        optimizer: an optimizer over the network's parameters.
        loss_fn: ``loss(scores, targets)``.
        batch_reporters: a reporter or a list; told each training batch's values.
        epoch_reporters: a reporter or a list; told each epoch's values, computed on the whole epoch.
        device: where to train (default: the GPU when there is one, as in tinydl).
        verbose: show trainwell's progress display.
    """

    def __init__(
        self,
        loader: DataLoader[Any],
        optimizer: torch.optim.Optimizer,
        loss_fn: Any,
        batch_reporters: Reporter | list[Reporter] | None = None,
        epoch_reporters: Reporter | list[Reporter] | None = None,
        *,
        device: Any = None,
        verbose: bool = True,
    ) -> None:
        self.device = default_device() if device is None else torch.device(device)
        self.loader = loader
        self.optimizer = optimizer
        self.loss_fn = loss_fn
        self.batch_reporters = reporter_list(batch_reporters, "batch_reporters")
        self.epoch_reporters = reporter_list(epoch_reporters, "epoch_reporters")
        self.verbose = verbose
        self.stage = Stage.TRAIN
        self.epochs_done = 0

    def train(self, model: torch.nn.Module) -> dict[str, Any]:
        """Trains ``model`` for one epoch; returns the epoch's logs (trainwell's, one dict)."""
        share_run_directory([*self.batch_reporters, *self.epoch_reporters])
        trainwell_model = build_model(
            model,
            self.optimizer,
            self.loss_fn,
            batch_metrics=metrics_of(self.batch_reporters),
            epoch_metrics=metrics_of(self.epoch_reporters),
            phases=["train"],
            device=self.device,
            sanity_check=self.epochs_done == 0,  # once: later epochs run the same code
        )
        callback = ReportingCallback({"train": self.batch_reporters}, {"train": self.epoch_reporters})
        epoch = self.epochs_done + 1
        history = trainwell_model.fit_generator(
            self.loader, epochs=epoch, initial_epoch=epoch, callbacks=[callback], verbose=self.verbose
        )
        self.epochs_done += len(history)
        return history[-1]


class Validator:
    """Evaluates a network on a loader per :meth:`validate` call (eval mode, no gradients), and feeds the reporters.

    Args:
        loader: the validation batches ``(data, targets)``.
        batch_reporters: a reporter or a list; told each batch's values.
        epoch_reporters: a reporter or a list; told the values over the whole loader.
        loss_fn: a loss to log as well (tinydl's Validator has none; a ``Runner`` uses the trainer's).
        device: where to evaluate (default: the GPU when there is one).
        verbose: show trainwell's progress display.
    """

    def __init__(
        self,
        loader: DataLoader[Any],
        batch_reporters: Reporter | list[Reporter] | None = None,
        epoch_reporters: Reporter | list[Reporter] | None = None,
        *,
        loss_fn: Any = None,
        device: Any = None,
        verbose: bool = True,
    ) -> None:
        self.device = default_device() if device is None else torch.device(device)
        self.loader = loader
        self.batch_reporters = reporter_list(batch_reporters, "batch_reporters")
        self.epoch_reporters = reporter_list(epoch_reporters, "epoch_reporters")
        self.loss_fn = loss_fn
        self.verbose = verbose
        self.stage = Stage.VALIDATION

    def validate(self, model: torch.nn.Module) -> dict[str, Any]:
        """Evaluates ``model`` on the loader; returns trainwell's results (``{'test_loss', 'test_<metric>'...}``)."""
        share_run_directory([*self.batch_reporters, *self.epoch_reporters])
        trainwell_model = build_model(
            model,
            None,
            self.loss_fn,
            batch_metrics=metrics_of(self.batch_reporters),
            epoch_metrics=metrics_of(self.epoch_reporters),
            phases=["test"],
            device=self.device,
            sanity_check=False,
        )
        callback = ReportingCallback({"test": self.batch_reporters}, {"test": self.epoch_reporters}, self.stage)
        return trainwell_model.evaluate_generator(
            self.loader, return_dict_format=True, callbacks=[callback], verbose=self.verbose
        )


class Runner:
    """Trains with a ``Trainer`` and validates with a ``Validator`` each epoch, then feeds the run reporters.

    Args:
        model: the network (moved to ``device``).
        trainer: the training side: loader, optimizer, loss, reporters.
        validator: the validation side, or None.
        run_reporters: a reporter or a list, told the final values once the run is over (a
            ``TensorboardHparamReporter`` writes the run's HParams entry).
        device: where to run (default: the GPU when there is one).
        verbose: show trainwell's progress display.
        experiment_dir: a directory where the run is checkpointed as an Experiment's (every epoch, and on
            SIGINT/SIGTERM); running the script again resumes it exactly, history included.

    Attributes:
        history: the epoch logs of every :meth:`run` so far (trainwell's: ``loss``, the metrics, ``val_*``).
        trainwell_model: the :class:`~trainwell.Model` of the last run.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        trainer: Trainer,
        validator: Validator | None = None,
        run_reporters: Reporter | list[Reporter] | None = None,
        *,
        device: Any = None,
        verbose: bool = True,
        experiment_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        if not isinstance(trainer, Trainer):
            raise TypeError(f"`trainer` must be a Trainer. Received: trainer of type {type(trainer).__name__}.")
        if validator is not None and not isinstance(validator, Validator):
            raise TypeError(f"`validator` must be a Validator or None. Received: {type(validator).__name__}.")
        self.device = default_device() if device is None else torch.device(device)
        self.model = model.to(self.device)
        self.trainer = trainer
        self.validator = validator
        self.run_reporters = reporter_list(run_reporters, "run_reporters")
        self.verbose = verbose
        self.experiment_dir = experiment_dir
        self.history: list[dict[str, Any]] = []
        self.trainwell_model: Model | None = None

    def train(self) -> None:
        """One training epoch (``Trainer.train``)."""
        self.trainer.train(self.model)

    def validate(self) -> None:
        """One validation pass (``Validator.validate``), when there is a validator."""
        if self.validator is not None:
            self.validator.validate(self.model)

    def run(self, num_epochs: int = 1) -> list[dict[str, Any]]:
        """Trains and validates for ``num_epochs`` epochs, then reports to the run reporters.

        Returns:
            The epoch logs of this run, one dict per epoch.
        """
        trainer, validator = self.trainer, self.validator
        valid_batch = validator.batch_reporters if validator is not None else []
        valid_epoch = validator.epoch_reporters if validator is not None else []
        every = [*trainer.batch_reporters, *trainer.epoch_reporters, *valid_batch, *valid_epoch, *self.run_reporters]
        if self.experiment_dir is not None:
            reporters_directory(self.experiment_dir, every)
        share_run_directory(every)  # one TensorBoard run for the whole run: scalars and HParams together
        phases = ["train", "valid"] if validator is not None else ["train"]
        model = build_model(
            self.model,
            trainer.optimizer,
            trainer.loss_fn,
            batch_metrics=metrics_of([*trainer.batch_reporters, *valid_batch]),
            epoch_metrics=metrics_of([*trainer.epoch_reporters, *valid_epoch, *self.run_reporters]),
            phases=phases,
            device=self.device,
            sanity_check=not self.history,
        )
        self.trainwell_model = model
        callback = ReportingCallback(
            {"train": trainer.batch_reporters, "valid": valid_batch},
            {"train": trainer.epoch_reporters, "valid": valid_epoch},
        )
        first = len(self.history) + 1
        valid_loader = validator.loader if validator is not None else None
        if self.experiment_dir is not None:  # checkpointed there; keeps history and epochs_done
            history = run_in_directory(
                self, model, trainer.loader, valid_loader, epochs=first + num_epochs - 1, callbacks=[callback]
            )
        else:
            history = model.fit_generator(
                trainer.loader,
                valid_loader,
                epochs=first + num_epochs - 1,
                initial_epoch=first,
                callbacks=[callback],
                verbose=self.verbose,
            )
            self.history.extend(history)
            trainer.epochs_done += len(history)
        self._report_run(self.history[-1])
        return history

    def _report_run(self, logs: dict[str, Any]) -> None:
        """The run reporters get the last epoch's values: training, then validation."""
        stages = [(Stage.TRAIN, "")] + ([(Stage.VALIDATION, "val_")] if self.validator is not None else [])
        for reporter in self.run_reporters:
            for stage, prefix in stages:
                for metric in reporter.metrics:
                    reporter.add_report(stage, metric.name, logs[prefix + metric.name])
            reporter.report()
            reporter.flush()
