"""``Experiment`` (= ``ModelBundle``): one directory per run, that resumes exactly where it stopped.

The directory holds ``log.tsv`` (one row per epoch), ``tensorboard/``, ``plots/`` (PNG and PDF, written
when training ends), ``checkpoints/`` (full training states, see :mod:`trainwell.experiment.checkpoints`),
Poutyne's files beside them (``checkpoint.ckpt``, ``checkpoint_epoch_N.ckpt``, ``last.epoch``... see
:mod:`trainwell.experiment.poutyne_files`), ``run.json`` (versions, arguments, seed, git commit) and
``{name}_log.tsv`` for each test. Calling
``train(..., epochs=N)`` again continues from the newest intact checkpoint up to epoch N in total.
The model itself knows nothing of directories: the experiment composes it with callbacks.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from trainwell import distributed
from trainwell.callbacks.base import Callback
from trainwell.callbacks.csv_logger import CSVLogger
from trainwell.callbacks.monitor import Monitor
from trainwell.experiment.checkpoints import FiniteGuard, RunCheckpointer, find_resume_point
from trainwell.experiment.files import (
    check_same_configuration,
    configuration,
    directory_argument,
    interrupt_handlers,
    make_tensorboard_logger,
    read_epoch_logs,
    write_plots,
    write_run_file,
    write_test_log,
)
from trainwell.experiment.poutyne_files import PoutyneFiles
from trainwell.experiment.results import ExperimentResults
from trainwell.model.model import Model
from trainwell.storage.checkpoints import sweep_temporaries
from trainwell.utils.checks import check_positive_int
from trainwell.utils.tensors import set_seeds

__all__ = ["Experiment", "ModelBundle"]

_PRESETS: dict[str, dict[str, Any]] = {
    "classif": {
        "loss_function": "cross_entropy",
        "batch_metrics": ["accuracy"],
        "epoch_metrics": ["f1"],
        "monitor": ("val_acc", "max"),
    },
    "reg": {"loss_function": "mse", "batch_metrics": [], "epoch_metrics": [], "monitor": ("val_loss", "min")},
}


class ModelBundle(ExperimentResults):
    """A model bound to a directory: training resumes, logs, checkpoints, tests and plots live there.

    Build it with :meth:`from_network` (what ``Experiment(...)`` does) or :meth:`from_model`.

    Args:
        directory: the run's directory (created when needed).
        model: the :class:`~trainwell.Model` to train.
        logging: write logs and checkpoints to ``directory`` (False: train in memory only).
        monitoring: track the best epoch by ``monitor_metric``; tests use it by default.
        monitor_metric: the epoch log deciding the best epoch (default ``'val_loss'``).
        monitor_mode: ``'min'`` or ``'max'`` (default: from the model's metric or the name, as for
            ``mode='auto'`` of the callbacks; ``'min'`` with a warning when neither tells). The attribute
            holds the resolved ``'min'`` or ``'max'``.
    """

    def __init__(
        self,
        directory: str | Path,
        model: Model,
        *,
        logging: bool = True,
        monitoring: bool = True,
        monitor_metric: str | None = None,
        monitor_mode: str | None = None,
        _explicit_monitor: bool = True,
    ) -> None:
        if not isinstance(model, Model):
            raise TypeError(
                f"`model` must be a trainwell.Model. Received: model of type {type(model).__name__}; "
                "use ModelBundle.from_network for a bare nn.Module."
            )
        self.directory = directory_argument(directory)
        if monitor_mode not in (None, "min", "max", "auto"):
            raise ValueError(
                f"`monitor_mode` must be 'min', 'max' or 'auto' (None: from the metric's name). "
                f"Received: monitor_mode={monitor_mode!r}."
            )
        self.model = model
        self.network = model.network
        self.logging = logging
        self.monitoring = monitoring
        self.monitor_metric = monitor_metric or "val_loss"
        self._explicit_monitor = _explicit_monitor and monitor_metric is not None
        # Checks the arguments now, not after an epoch, and resolves the direction ('auto' asks the model).
        monitor = Monitor(self.monitor_metric, monitor_mode or "auto", owner="Experiment (monitor_metric)")
        if monitoring:
            monitor.set_model(model)
        self.monitor_mode = monitor.mode if monitoring else (monitor_mode or "min")

    # -- construction ---------------------------------------------------------------------------------------
    @classmethod
    def from_network(cls, directory: str | Path, network: nn.Module, **kwargs: Any) -> ModelBundle:
        """Builds the model from a network; the arguments are :class:`Experiment`'s."""
        model, bundle_options = _model_from_network(network, **kwargs)
        return cls(directory, model, **bundle_options)

    @classmethod
    def from_model(
        cls,
        directory: str | Path,
        model: Model,
        *,
        logging: bool = True,
        monitoring: bool = True,
        monitor_metric: str | None = None,
        monitor_mode: str | None = None,
    ) -> ModelBundle:
        """Binds an existing :class:`~trainwell.Model` to a directory."""
        return cls(
            directory,
            model,
            logging=logging,
            monitoring=monitoring,
            monitor_metric=monitor_metric,
            monitor_mode=monitor_mode,
        )

    # -- training -------------------------------------------------------------------------------------------
    def train(self, train_generator: Any, valid_generator: Any = None, **kwargs: Any) -> list[dict[str, Any]]:
        """Trains on iterables of batches (``Model.fit_generator``), resuming the directory's run.

        Keyword arguments are those of :meth:`train_data`'s experiment options plus ``fit_generator``'s.
        """
        return self._train(self.model.fit_generator, (train_generator, valid_generator), kwargs)

    def train_dataset(self, train_dataset: Any, valid_dataset: Any = None, **kwargs: Any) -> list[dict[str, Any]]:
        """Trains on ``Dataset``s (``Model.fit_dataset``), resuming the directory's run."""
        return self._train(self.model.fit_dataset, (train_dataset, valid_dataset), kwargs)

    def train_data(self, x: Any, y: Any, validation_data: Any = None, **kwargs: Any) -> list[dict[str, Any]]:
        """Trains on in-memory data (``Model.fit``), resuming the directory's run.

        Experiment options (any ``train*`` method):
            epochs: the TOTAL number of epochs; a directory that finished 5 continues with epoch 6.
            callbacks: more callbacks; their states are checkpointed and restored.
            lr_schedulers: learning-rate scheduler callbacks (checkpointed like the others).
            keep_only_last_best: keep only the newest best checkpoint.
            save_every_epoch: keep every epoch's checkpoint.
            checkpoint_every_n_steps: also checkpoint every n optimizer steps (long epochs lose little).
            disable_tensorboard: do not write ``tensorboard/``.
            Poutyne's ``save_every_epoch`` also gives every epoch a ``checkpoint_epoch_N.ckpt``.
            seed: seeds every generator before training (default 42; None leaves them).

        Returns:
            The logs of the epochs trained by this call.
        """
        return self._train(self.model.fit, (x, y, validation_data), kwargs)

    def _train(self, fit: Callable[..., Any], data: tuple[Any, ...], kwargs: dict[str, Any]) -> list[dict[str, Any]]:
        options = {
            "callbacks": list(kwargs.pop("callbacks", None) or []),
            "lr_schedulers": list(kwargs.pop("lr_schedulers", None) or []),
            "keep_only_last_best": bool(kwargs.pop("keep_only_last_best", False)),
            "save_every_epoch": bool(kwargs.pop("save_every_epoch", False)),
            "every_n_steps": kwargs.pop("checkpoint_every_n_steps", None),
            "disable_tensorboard": bool(kwargs.pop("disable_tensorboard", False)),
            "seed": kwargs.pop("seed", 42),
        }
        check_positive_int(options["every_n_steps"], "checkpoint_every_n_steps", allow_none=True)
        epochs = kwargs.pop("epochs", 1000)
        check_positive_int(epochs, "epochs")
        if "initial_epoch" in kwargs:
            raise TypeError(
                "An Experiment decides the initial epoch from its directory: remove `initial_epoch` "
                "(pass `epochs` as the total number of epochs)."
            )
        if options["seed"] is not None:
            set_seeds(options["seed"])
        has_validation = data[-1] is not None
        monitor = self._training_monitor(has_validation)
        user_callbacks: list[Callback] = [*options["callbacks"], *options["lr_schedulers"]]
        if not self.logging:
            return list(fit(*data, epochs=epochs, callbacks=[*user_callbacks, _MonitorOnly(monitor)], **kwargs))
        return self._train_logged(fit, data, kwargs, epochs, options, monitor, user_callbacks)

    def _train_logged(
        self,
        fit: Callable[..., Any],
        data: tuple[Any, ...],
        kwargs: dict[str, Any],
        epochs: int,
        options: dict[str, Any],
        monitor: Monitor | None,
        user_callbacks: list[Callback],
    ) -> list[dict[str, Any]]:
        # Under torchrun, rank 0 alone writes the directory; the other ranks train, take part in each
        # checkpoint's collectives and wait for it at a barrier.
        main = distributed.is_main_process()
        config = configuration(self.model)
        resume = _shared_resume_point(self.directory, self.checkpoints_directory)
        csv_logger = CSVLogger(self.log_path, separator="\t", extra_keys=True)
        logging_callbacks: list[Callback] = [csv_logger] if main else []
        initial_epoch = 1
        tensorboard = None
        if resume is not None:
            _, state = resume
            check_same_configuration(state.get("extra", {}).get("configuration", {}), config, self.directory)
            initial_epoch = int(state["next_epoch"])
        if not options["disable_tensorboard"] and main:
            tensorboard = make_tensorboard_logger(self.directory / "tensorboard", purge_step=initial_epoch)
            if tensorboard is not None:
                logging_callbacks.append(tensorboard)
        history: list[dict[str, Any]] = []
        saved_callbacks = [*user_callbacks, *logging_callbacks]
        poutyne_files = (
            PoutyneFiles(self.directory, options["lr_schedulers"], save_every_epoch=options["save_every_epoch"])
            if main
            else None
        )
        checkpointer = RunCheckpointer(
            self.checkpoints_directory,
            {
                "callbacks": options["callbacks"],
                "lr_schedulers": options["lr_schedulers"],
                "loggers": logging_callbacks,
            },
            monitor,
            history,
            every_n_steps=options["every_n_steps"],
            save_every_epoch=options["save_every_epoch"],
            keep_only_last_best=options["keep_only_last_best"],
            extra={"configuration": config},
            writes=main,
            after_epoch=poutyne_files,
        )
        if resume is not None:
            checkpointer.restore(state)
            self.model.restore_training_state(state)
        if main:
            write_run_file(
                self.directory, config, options, epochs, kwargs, resumed_from=resume[0].path.name if resume else None
            )
        if initial_epoch > epochs:
            if tensorboard is not None:
                tensorboard.writer.close()
            return []
        try:
            with interrupt_handlers(checkpointer):
                logs = fit(
                    *data,
                    epochs=epochs,
                    initial_epoch=initial_epoch,
                    callbacks=[FiniteGuard(checkpointer), *saved_callbacks, checkpointer],
                    **kwargs,
                )
        finally:
            if tensorboard is not None:
                tensorboard.writer.close()
            if main:  # as in Poutyne, also after an error: the plots show the epochs that were logged
                self._write_plots(history)
        distributed.barrier()  # the directory is complete before any rank goes on
        return list(logs)

    def _write_plots(self, history: list[dict[str, Any]]) -> None:
        """``plots/``: from ``log.tsv``, which holds every epoch of the run (resumed ones too)."""
        stats = read_epoch_logs(self.log_path)
        if not stats:
            return  # no epoch ended
        try:
            write_plots(stats, self.directory / "plots")
        except Exception as error:  # a plot must not hide the training's own outcome
            warnings.warn(f"The plots of {self.directory} could not be written: {error!r}.", stacklevel=3)

    def _training_monitor(self, has_validation: bool) -> Monitor | None:
        if not self.monitoring:
            return None
        metric = self.monitor_metric
        if metric.startswith("val_") and not has_validation and not self._explicit_monitor:
            # The default monitor needs validation data; without it, watch the training value instead.
            metric = metric[len("val_") :]
            warnings.warn(
                f"No validation data: the best epoch is chosen by {metric!r} instead of {self.monitor_metric!r}.",
                stacklevel=4,
            )
        monitor = Monitor(metric, self.monitor_mode, owner="Experiment (monitor_metric)")
        monitor.set_model(self.model)  # 'auto' follows the model's metric (its higher_is_better)
        return monitor

    # -- testing and inference ------------------------------------------------------------------------------
    def test(self, test_generator: Any, **kwargs: Any) -> dict[str, Any]:
        """Evaluates the checkpoint ``checkpoint`` (default ``'best'``) on batches; writes ``{name}_log.tsv``."""
        return self._test(self.model.evaluate_generator, (test_generator,), kwargs)

    def test_dataset(self, test_dataset: Any, **kwargs: Any) -> dict[str, Any]:
        """Like :meth:`test`, on a ``Dataset``."""
        return self._test(self.model.evaluate_dataset, (test_dataset,), kwargs)

    def test_data(self, x: Any, y: Any, **kwargs: Any) -> dict[str, Any]:
        """Like :meth:`test`, on in-memory data.

        Options: ``checkpoint`` (``'best'``, ``'last'``, an epoch number or a path), ``name`` (the log's
        prefix, default ``'test'``), ``seed`` (default 42), and ``evaluate``'s arguments.

        Returns:
            ``{'time', '{name}_loss', '{name}_<metric>'...}`` (plus predictions and ground truths when asked).
        """
        return self._test(self.model.evaluate, (x, y), kwargs)

    def _test(self, evaluate: Callable[..., Any], data: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        checkpoint = kwargs.pop("checkpoint", "best")
        name = kwargs.pop("name", "test")
        seed = kwargs.pop("seed", 42)
        if kwargs.get("return_dict_format", True) is not True:
            raise ValueError(
                "An Experiment's test methods return a dict: remove `return_dict_format` (received "
                f"return_dict_format={kwargs['return_dict_format']!r}), or call the model's evaluate directly."
            )
        if seed is not None:
            set_seeds(seed)
        epoch_row = self._epoch_row(self._restore_checkpoint(checkpoint)) if self.logging else None
        kwargs["return_dict_format"] = True
        result = evaluate(*data, **kwargs)
        logs, extras = (result[0], result[1:]) if isinstance(result, tuple) else (result, ())
        logs = {
            (f"{name}_{key[len('test_') :]}" if key.startswith("test_") else key): value for key, value in logs.items()
        }
        if self.logging and distributed.is_main_process():
            write_test_log(self.directory / f"{name}_log.tsv", logs, epoch_row)
        return (logs, *extras) if extras else logs  # type: ignore[return-value]

    def infer(self, generator: Any, **kwargs: Any) -> Any:
        """Predictions of the checkpoint ``checkpoint`` (default ``'best'``) on batches of inputs."""
        return self._infer(self.model.predict_generator, (generator,), kwargs)

    def infer_dataset(self, dataset: Any, **kwargs: Any) -> Any:
        """Like :meth:`infer`, on a ``Dataset``."""
        return self._infer(self.model.predict_dataset, (dataset,), kwargs)

    def infer_data(self, x: Any, **kwargs: Any) -> Any:
        """Like :meth:`infer`, on in-memory inputs."""
        return self._infer(self.model.predict, (x,), kwargs)

    def _infer(self, predict: Callable[..., Any], data: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        checkpoint = kwargs.pop("checkpoint", "best")
        if self.logging:
            self._restore_checkpoint(checkpoint)
        return predict(*data, **kwargs)


class Experiment(ModelBundle):
    """``Experiment(directory, network, ...)``: a :class:`ModelBundle` built from a network (Poutyne's API).

    Args:
        directory: the run's directory.
        network: the ``nn.Module`` to train.
        device: as for :class:`~trainwell.Model`.
        logging: write logs and checkpoints (False: in memory only).
        optimizer: as for :class:`~trainwell.Model` (default ``'sgd'``).
        loss_function: as for :class:`~trainwell.Model`.
        batch_metrics: as for :class:`~trainwell.Model`.
        epoch_metrics: as for :class:`~trainwell.Model`.
        monitoring: track the best epoch.
        monitor_metric: the epoch log deciding the best epoch (default ``'val_loss'``).
        monitor_mode: ``'min'`` or ``'max'`` (default: from the metric's name).
        task: ``'classif'`` (cross-entropy, accuracy, macro F1, monitors ``val_acc`` max) or ``'reg'``
            (MSE, monitors ``val_loss`` min); as in Poutyne, any word starting so ('classification',
            'regression') works. Explicit arguments win over the preset; an explicit ``monitor_metric``
            keeps its own mode (given, or inferred from its name).
        **model_options: any other :class:`~trainwell.Model` keyword: ``precision``, ``compile``, ``strategy``
            (``'fsdp'`` under torchrun), ``train_step``, ``evaluate_step``, ``epoch_functions``...

    >>> import tempfile, torch
    >>> experiment = Experiment(tempfile.mkdtemp(), torch.nn.Linear(4, 3), task='classif')
    >>> x, y = torch.randn(64, 4), torch.randint(3, (64,))
    >>> history = experiment.train_data(x, y, validation_data=(x, y), epochs=2, verbose=False,
    ...                                 disable_tensorboard=True)
    >>> experiment.get_stats()['epoch'].tolist()
    [1, 2]
    """

    def __init__(self, directory: str | Path, network: nn.Module, **kwargs: Any) -> None:
        model, bundle_options = _model_from_network(network, **kwargs)
        super().__init__(directory, model, **bundle_options)


def _shared_resume_point(directory: Path, checkpoints: Path) -> Any:
    """The checkpoint to resume from; under torchrun rank 0 tidies and chooses it first, then the others read it.

    Only rank 0 moves files (sweeps temporaries, sets damaged checkpoints aside); the others read the
    directory it left and must find the same checkpoint.
    """
    resume = None
    if distributed.is_main_process():
        directory.mkdir(parents=True, exist_ok=True)
        sweep_temporaries(checkpoints)
        resume = find_resume_point(checkpoints)
    distributed.barrier()
    if not distributed.is_main_process():
        resume = find_resume_point(checkpoints)
    step = -1 if resume is None else int(resume[0].meta.get("global_step", -1))
    chosen = int(distributed.broadcast_tensor(torch.tensor([step]))[0])
    if chosen != step:
        raise RuntimeError(
            f"Rank {distributed.rank()} found another checkpoint to resume from (step {step}) than rank 0 "
            f"(step {chosen}) in {checkpoints}: every node must see the same directory (a shared file system)."
        )
    return resume


def _model_from_network(
    network: nn.Module,
    *,
    device: Any = None,
    logging: bool = True,
    optimizer: Any = "sgd",
    loss_function: Any = None,
    batch_metrics: list[Any] | None = None,
    epoch_metrics: list[Any] | None = None,
    monitoring: bool = True,
    monitor_metric: str | None = None,
    monitor_mode: str | None = None,
    task: str | None = None,
    **model_options: Any,
) -> tuple[Model, dict[str, Any]]:
    explicit_monitor = monitor_metric is not None
    # As in Poutyne, a network may carry its own loss and metrics (used when the arguments leave them out).
    loss_function = getattr(network, "loss_function", None) if loss_function is None else loss_function
    batch_metrics = getattr(network, "batch_metrics", None) if batch_metrics is None else batch_metrics
    epoch_metrics = getattr(network, "epoch_metrics", None) if epoch_metrics is None else epoch_metrics
    if task is not None:
        preset = _PRESETS[_preset_name(task)]
        loss_function = preset["loss_function"] if loss_function is None else loss_function
        batch_metrics = list(preset["batch_metrics"]) if batch_metrics is None else batch_metrics
        epoch_metrics = list(preset["epoch_metrics"]) if epoch_metrics is None else epoch_metrics
        if monitor_metric is None:
            # The preset's mode belongs to the preset's metric: an explicit monitor_metric keeps its own
            # mode (given, or inferred from its name), so task='classif' with 'val_loss' still minimizes.
            monitor_metric, preset_mode = preset["monitor"]
            monitor_mode = monitor_mode or preset_mode
    model = Model(
        network,
        optimizer,
        loss_function,
        batch_metrics=batch_metrics,
        epoch_metrics=epoch_metrics,
        device=device,
        **model_options,  # precision, compile, train_step, evaluate_step, epoch_functions...
    )
    options = {
        "logging": logging,
        "monitoring": monitoring,
        "monitor_metric": monitor_metric,
        "monitor_mode": monitor_mode,
        "_explicit_monitor": explicit_monitor,
    }
    return model, options


def _preset_name(task: Any) -> str:
    """The preset a ``task`` names: as in Poutyne, any word starting with 'classif' or 'reg'."""
    if not isinstance(task, str):
        raise TypeError(
            f"`task` must be a string such as 'classif' or 'reg'. Received: task of type {type(task).__name__}."
        )
    for name in _PRESETS:
        if task.lower().startswith(name):
            return name
    raise ValueError(
        f"`task` must be 'classif' or 'reg' (or a word starting so, like 'classification'), or None. "
        f"Received: task={task!r}."
    )


class _MonitorOnly(Callback):
    """Without logging, still raises early when the monitored value is never logged."""

    def __init__(self, monitor: Monitor | None) -> None:
        self.monitor = monitor

    def on_epoch_end(self, epoch_number: int, logs: Any) -> None:
        if self.monitor is not None:
            self.monitor.update(logs, epoch_number)
