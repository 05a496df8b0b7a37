"""Training runs recorded in Weights & Biases: ``WandBLogger`` (Poutyne's).

wandb is an optional dependency (``pip install 'trainwell[wandb]'``): it is imported when a
``WandBLogger`` is created, never when trainwell is. ``offline=True`` (or ``WANDB_MODE=offline``) writes
the run to a local directory only; ``wandb sync`` uploads it later.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from trainwell.callbacks.base import Callback, epoch_learning_rates
from trainwell.callbacks.optional_imports import lazy_optional_names, optional

__all__ = ["WandBLogger"]

# wandb, imported on first use; a module-level name that Poutyne's tests (and users) can replace.
_OPTIONAL = {"wandb": ("wandb", None)}
__getattr__ = lazy_optional_names(globals(), _OPTIONAL)


def _require_wandb() -> Any:
    package = optional(globals(), "wandb", _OPTIONAL)
    if package is None:
        raise ImportError(
            "WandBLogger needs the `wandb` package, which is not installed. Install it with "
            "`pip install 'trainwell[wandb]'` (or `pip install wandb`)."
        )
    return package


class WandBLogger(Callback):
    """Logs a training run to Weights & Biases, as Poutyne's ``WandBLogger`` does.

    After each epoch three records go to the run, at step = epoch number: ``{'training': {...}}`` (the
    epoch's logs without the ``val_`` ones: ``epoch``, ``time``, ``loss``, metrics),
    ``{'validation': {...}}`` (the ``val_`` logs, without the prefix) and ``{'params': {'lr': ...}}`` (the
    learning rates the epoch trained with). With ``batch_granularity=True`` every training batch also
    logs ``{'training': {'batch': logs}}`` (one host transfer per batch), and the epoch records nest under
    ``'epoch'`` without an explicit step. ``evaluate`` logs ``{'testing': {...}}`` one step after the last.
    The run is not finished by the callback: call ``wandb.finish()`` (or ``logger.run.finish()``) when done.

    Args:
        name: the run's display name.
        group: a group gathering several runs.
        config: the run's configuration (hyper-parameters...).
        save_dir: where wandb writes the run (its ``dir``).
        offline: write the run locally only (``mode='offline'``); upload it later with ``wandb sync``.
        run_id: the id of the run, to resume it (the run is opened with ``resume='allow'``).
        anonymous: allow anonymous logging (True) or not.
        version: the same as ``run_id``.
        project: the project the run belongs to.
        experiment: a wandb run to log into instead of creating one (the other run arguments are ignored).
        batch_granularity: also log every training batch.
        checkpoints_path: a file or directory logged as a ``Model-weights`` artifact when training ends.
        initial_artifacts_paths: files or directories logged as one ``Miscellaneous`` artifact now.
        log_gradient_frequency: log gradients and parameters every this many batches (``run.watch``).
        training_batch_shape: the shape of one input batch: the network is exported to ONNX with a random
            batch of that shape when training begins and saved with the run (needs ``onnx``).

    Attributes:
        run: the wandb run.

    >>> logger = WandBLogger(name='mnist', project='demo', offline=True)  # doctest: +SKIP
    >>> model.fit(x, y, epochs=3, callbacks=[logger]); logger.run.finish()  # doctest: +SKIP
    """

    reads_gradients = False  # wandb's own hooks read the gradients, not on_train_batch_end

    def __init__(
        self,
        *,
        name: str | None = None,
        group: str | None = None,
        config: Mapping[str, Any] | None = None,
        save_dir: str | os.PathLike[str] | None = None,
        offline: bool = False,
        run_id: str | None = None,
        anonymous: bool | None = None,
        version: str | None = None,
        project: str | None = None,
        experiment: Any = None,
        batch_granularity: bool = False,
        checkpoints_path: str | os.PathLike[str] | None = None,
        initial_artifacts_paths: Sequence[str | os.PathLike[str]] | None = None,
        log_gradient_frequency: int | None = None,
        training_batch_shape: Sequence[int] | None = None,
    ) -> None:
        wandb = _require_wandb()
        for argument, flag in (("offline", offline), ("batch_granularity", batch_granularity)):
            if not isinstance(flag, bool):
                raise TypeError(f"`{argument}` must be True or False. Received: {argument}={flag!r}.")
        if log_gradient_frequency is not None and (
            isinstance(log_gradient_frequency, bool) or not isinstance(log_gradient_frequency, int)
        ):
            raise TypeError(
                f"`log_gradient_frequency` must be a positive int or None. Received: {log_gradient_frequency!r}."
            )
        self.batch_granularity = batch_granularity
        self.log_gradient_frequency = log_gradient_frequency
        self.training_batch_shape = None if training_batch_shape is None else tuple(training_batch_shape)
        self.checkpoints_path = None if checkpoints_path is None else os.fspath(checkpoints_path)
        self._wandb_init: dict[str, Any] = {
            "name": name,
            "group": group,
            "config": None if config is None else dict(config),
            "project": project,
            "id": version or run_id,
            "dir": None if save_dir is None else os.fspath(save_dir),
            "resume": "allow",
            "anonymous": "allow" if anonymous else None,
        }
        if offline:
            # The mode is given to this run only (Poutyne set WANDB_MODE for the whole process).
            self._wandb_init["mode"] = "offline"
        if experiment is not None:
            self.run = experiment
        elif wandb.run is not None:
            warnings.warn(
                "WandBLogger: a wandb run is already going on in this process; this callback logs into it. To start "
                "a new run, call `wandb.finish()` before creating the callback.",
                stacklevel=2,
            )
            self.run = wandb.run
        else:
            self.run = wandb.init(**self._wandb_init)
        self.run.config.update({"run_id": self.run.id})
        if initial_artifacts_paths is not None:
            self._log_artifacts(initial_artifacts_paths, "Initial-artifacts", "Miscellaneous")

    def log_config_params(self, config_params: Mapping[str, Any]) -> None:
        """Adds ``config_params`` (epochs, loss, optimizer...) to the run's configuration."""
        self.run.config.update(dict(config_params))

    def _log(self, record: Mapping[str, Any], step: int | None) -> None:
        # With batch granularity wandb counts the steps itself (one per record), as in Poutyne.
        if self.batch_granularity or step is None:
            self.run.log(dict(record))
        else:
            self.run.log(dict(record), step=step)

    def _log_artifacts(self, paths: Sequence[str | os.PathLike[str]], name: str, artifact_type: str) -> None:
        artifact = _require_wandb().Artifact(name=name, type=artifact_type)
        for path in paths:
            if os.path.isdir(path):
                artifact.add_dir(path)
            elif os.path.isfile(path):
                artifact.add_file(path)
            else:
                raise FileNotFoundError(f"WandBLogger cannot log {path!r} as an artifact: it is no file or directory.")
        self.run.log_artifact(artifact)

    def on_train_begin(self, logs: Mapping[str, Any]) -> None:  # noqa: D102
        if self.log_gradient_frequency is not None:
            self.run.watch(self.model.network, log="all", log_freq=self.log_gradient_frequency)
        if self.training_batch_shape is not None:
            # torch.onnx and torch.randn read through the module, so that they can be replaced in tests.
            device = getattr(self.model, "device", None) or next(self.model.network.parameters()).device
            batch = torch.randn(self.training_batch_shape).to(device)
            path = f"{self.run.dir}/{self.run.name}_model.onnx"
            torch.onnx.export(self.model.network, batch, path)  # type: ignore[arg-type]  # a tensor is accepted
            self.run.save(path)

    def on_train_batch_end(self, batch_number: int, logs: Mapping[str, Any]) -> None:  # noqa: D102
        if self.batch_granularity:
            self._log({"training": {"batch": dict(logs)}}, None)

    def listened_hooks(self) -> list[str]:  # noqa: D102
        hooks = ["on_train_begin", "on_epoch_end", "on_train_end", "on_test_end"]
        return [*hooks, "on_train_batch_end"] if self.batch_granularity else hooks

    def on_epoch_end(self, epoch_number: int, logs: Mapping[str, Any]) -> None:  # noqa: D102
        training = {key: value for key, value in logs.items() if not key.startswith("val_")}
        validation = {key[len("val_") :]: value for key, value in logs.items() if key.startswith("val_")}
        if self.batch_granularity:
            training, validation = {"epoch": training}, {"epoch": validation}
        self._log({"training": training}, epoch_number)
        self._log({"validation": validation}, epoch_number)
        self._log({"params": epoch_learning_rates(self.model)}, epoch_number)  # the logs carry no lr

    def on_train_end(self, logs: Mapping[str, Any]) -> None:  # noqa: D102
        if self.checkpoints_path is not None:
            self._log_artifacts([self.checkpoints_path], "Checkpoints", "Model-weights")

    def on_test_end(self, logs: Mapping[str, Any]) -> None:  # noqa: D102
        testing = {key.removeprefix("test_"): value for key, value in logs.items()}
        self.run.log({"testing": testing}, step=self.run.step + 1)  # after the training's last step
