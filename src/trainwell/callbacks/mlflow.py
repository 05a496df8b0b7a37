"""Training runs recorded in MLflow: ``MLFlowLogger``.

MLflow is an optional dependency (``pip install 'trainwell[mlflow]'``): it is imported when an
``MLFlowLogger`` is created, never when trainwell is.

How a run ends: trainwell calls ``on_train_end`` only when training succeeds, so the logger marks the
run FINISHED there. A training that raises leaves no trace in the callback hooks, so failure is marked
explicitly: use the logger as a context manager (``with MLFlowLogger(...) as logger: model.fit(...)``),
which ends the run as FAILED (KILLED on Ctrl-C) when the block raises, or call :meth:`end_run` yourself.
Nothing is done from ``__del__`` or ``atexit``: at interpreter exit the store may already be half torn
down, and a run silently marked FINISHED after a crash would be worse than one left RUNNING.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any

import torch

from trainwell.callbacks.base import Callback, with_learning_rates
from trainwell.callbacks.mlflow_helpers import (
    callable_name,
    encode_float,
    flatten_params,
    import_mlflow,
    metric_value,
    now_ms,
    resolve_tracking_uri,
    safe_key,
)
from trainwell.callbacks.optional_imports import lazy_optional_names, optional

__all__ = ["MLFlowLogger", "_get_git_commit"]

# The optional packages, imported on first use; module-level names, so that Poutyne's tests (and users) can
# replace them (`unittest.mock.patch('trainwell.callbacks.mlflow.git', None)`).
_OPTIONAL = {
    "git": ("git", None),
    "mlflow": ("mlflow", None),
    "MlflowClient": ("mlflow.tracking", "MlflowClient"),
}
__getattr__ = lazy_optional_names(globals(), _OPTIONAL)


def _get_git_commit(path: str | os.PathLike[str]) -> str | None:
    """The commit checked out in the git repository holding ``path`` (Poutyne's helper); None with a warning.

    The warning says why: GitPython (the ``git`` package) or the git executable is missing, or ``path`` is in
    no repository.

    >>> import tempfile, warnings
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter('always')
    ...     commit = _get_git_commit(tempfile.mkdtemp())
    >>> commit is None, 'no git repository' in str(caught[0].message) or 'GitPython' in str(caught[0].message)
    (True, True)
    """
    git = optional(globals(), "git", _OPTIONAL)
    if git is None:
        warnings.warn(
            "The git commit is not available: GitPython cannot be imported (install it with `pip install gitpython`; "
            "it also needs the git executable on the PATH).",
            stacklevel=2,
        )
        return None
    try:
        return str(git.Repo(path, search_parent_directories=True).head.commit.hexsha)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError) as error:
        warnings.warn(
            f"The git commit is not available: {os.fspath(path)!r} is in no git repository ({error!r}).", stacklevel=2
        )
        return None


_END_STATUSES = ("FINISHED", "FAILED", "KILLED")
# Optimizer constructor flags that choose an implementation, not the optimization: noise in a params table.
_IMPLEMENTATION_FLAGS = frozenset({"foreach", "fused", "capturable", "differentiable"})
# Batch values are sent with the next epoch's values, or sooner once this many wait (MLflow's batch limit).
_MAX_BUFFERED_METRICS = 1000


class MLFlowLogger(Callback):
    """Logs a training run to MLflow: epoch values as metrics, the training set-up as params, tags.

    Every epoch value (``loss``, metrics, ``val_`` values, ``lr``, ``time``) is an MLflow metric at
    step = epoch number. At the start of training the set-up is logged as params: ``optimizer`` (its
    class) and its hyper-parameters (``optimizer.lr``...), ``loss``, ``network``, its parameter count,
    ``metrics``, ``epochs``, ``steps_per_epoch``, ``validation_steps`` and ``batches_per_step``. With
    ``batch_granularity=True`` each training batch's values are also logged as ``batch_loss``,
    ``batch_<metric>``... at step = global training batch number (sent to the store once per epoch).
    ``evaluate`` logs its ``test_`` values at step = the last trained epoch.

    The run is created when first needed and ended as FINISHED after training (and after ``evaluate``)
    unless ``terminate_on_end=False``. :meth:`state_dict` holds the run id: a resumed training logs into
    the same run, which is reopened (RUNNING) at the start of training.

    Args:
        experiment_name: the experiment to log into, created if missing. None uses
            ``MLFLOW_EXPERIMENT_NAME``/``MLFLOW_EXPERIMENT_ID`` when set, else MLflow's Default experiment.
        tracking_uri: where runs are stored: ``'http://host:5000'``, ``'sqlite:///path/mlflow.db'``, a
            path to a ``.db`` file... None uses MLflow's own default: ``MLFLOW_TRACKING_URI`` or
            ``mlflow.set_tracking_uri`` when set, else a local store in the working directory
            (``sqlite:///mlflow.db`` with MLflow 3; see it with ``mlflow ui``), with no server.
        batch_granularity: also log every training batch's values.
        experiment_id: the id of an existing experiment, instead of ``experiment_name``.
        run_id: an existing run to log into, instead of a new one.
        run_name: the name of the new run (MLflow picks one when None).
        tags: tags of the new run, added to MLflow's context tags (user, source, git commit).
        terminate_on_end: end the run (FINISHED) after training and after evaluation.

    >>> logger = MLFlowLogger('demo', tracking_uri=tmp_dir + '/mlflow.db')  # doctest: +SKIP
    >>> model.fit(x, y, epochs=3, callbacks=[logger])  # doctest: +SKIP
    """

    reads_gradients = False  # its on_train_batch_end never looks at gradients

    def __init__(
        self,
        experiment_name: str | None = None,
        tracking_uri: str | os.PathLike[str] | None = None,
        batch_granularity: bool = False,
        *,
        experiment_id: str | None = None,
        run_id: str | None = None,
        run_name: str | None = None,
        tags: Mapping[str, Any] | None = None,
        terminate_on_end: bool = True,
    ) -> None:
        if optional(globals(), "mlflow", _OPTIONAL) is None:
            raise ImportError(
                "MLFlowLogger needs MLflow, which is not installed. Install it with `pip install 'trainwell[mlflow]'` "
                "(or `pip install mlflow`)."
            )
        mlflow = import_mlflow(type(self).__name__)
        for argument, value in (
            ("experiment_name", experiment_name),
            ("experiment_id", experiment_id),
            ("run_id", run_id),
            ("run_name", run_name),
        ):
            if value is not None and (not isinstance(value, str) or not value):
                raise TypeError(f"`{argument}` must be a non-empty string or None. Received: {argument}={value!r}.")
        for argument, flag in (("batch_granularity", batch_granularity), ("terminate_on_end", terminate_on_end)):
            if not isinstance(flag, bool):
                raise TypeError(f"`{argument}` must be True or False. Received: {argument}={flag!r}.")
        if experiment_name is not None and experiment_id is not None:
            raise ValueError(
                f"Pass `experiment_name` or `experiment_id`, not both. Received: experiment_name={experiment_name!r}, "
                f"experiment_id={experiment_id!r}."
            )
        if run_id is not None and (experiment_name is not None or experiment_id is not None):
            raise ValueError(
                f"`run_id` already belongs to an experiment: pass it without `experiment_name`/`experiment_id`. "
                f"Received: run_id={run_id!r} with experiment_name={experiment_name!r}, "
                f"experiment_id={experiment_id!r}."
            )
        if tags is not None and not isinstance(tags, Mapping):
            raise TypeError(f"`tags` must be a mapping of tag names to values. Received: tags={tags!r}.")
        self._mlflow = mlflow
        # Fixed now, so that a later change of the working directory or of MLflow's global URI cannot
        # split one run's records between two stores.
        self.tracking_uri = resolve_tracking_uri(tracking_uri) or mlflow.get_tracking_uri()
        self.client = optional(globals(), "MlflowClient", _OPTIONAL)(tracking_uri=self.tracking_uri)
        self.experiment_name = experiment_name
        self.experiment_id = experiment_id
        self.batch_granularity = batch_granularity
        self.run_name = run_name
        self.tags = {str(key): str(value) for key, value in (tags or {}).items()}
        self.terminate_on_end = terminate_on_end
        self._run_id = run_id
        self._run_params: dict[str, str] | None = None  # the params already on the run, read once
        self._pending: list[Any] = []  # batch metrics not yet sent

    # -- the run ------------------------------------------------------------------------------------------
    @property
    def run_id(self) -> str:
        """The id of the MLflow run, created on first use."""
        if self._run_id is None:
            run = self.client.create_run(self._resolve_experiment_id(), run_name=self.run_name, tags=self._run_tags())
            self._run_id = run.info.run_id
            self._run_params = {}
        return self._run_id

    def _resolve_experiment_id(self) -> str:
        if self.experiment_id is not None:
            return self.experiment_id
        name = self.experiment_name or os.environ.get("MLFLOW_EXPERIMENT_NAME")
        if name is None:
            return os.environ.get("MLFLOW_EXPERIMENT_ID") or self._mlflow.entities.Experiment.DEFAULT_EXPERIMENT_ID
        experiment = self.client.get_experiment_by_name(name)
        if experiment is not None:
            return str(experiment.experiment_id)
        try:
            return str(self.client.create_experiment(name))
        except self._mlflow.exceptions.MlflowException:
            # Another process created it between the lookup and the creation.
            return str(self.client.get_experiment_by_name(name).experiment_id)

    def _run_tags(self) -> dict[str, str]:
        from trainwell.version import __version__

        try:
            # MLflow's own context: user, source script, git commit when run from a repository.
            from mlflow.tracking.context.registry import resolve_tags

            context: dict[str, str] = dict(resolve_tags())
        except Exception:  # the context is a nicety: never fail a run for it
            context = {}
        return {**context, "trainwell.version": __version__, "torch.version": torch.__version__, **self.tags}

    def _open_run(self) -> None:
        """Makes sure the run exists and is RUNNING (a resumed run is reopened)."""
        run_id = self.run_id
        try:
            run = self.client.get_run(run_id)
        except self._mlflow.exceptions.MlflowException as error:
            raise ValueError(
                f"MLFlowLogger cannot find the MLflow run {run_id!r} in the tracking store {self.tracking_uri!r}. "
                "When resuming, pass the same `tracking_uri` as the interrupted training."
            ) from error
        if self._run_params is None:
            self._run_params = dict(run.data.params)
        if run.info.status != "RUNNING":
            self.client.update_run(run_id, status="RUNNING")

    def end_run(self, status: str = "FINISHED") -> None:
        """Sends what is pending and ends the run with ``status``: 'FINISHED', 'FAILED' or 'KILLED'."""
        if status not in _END_STATUSES:
            raise ValueError(f"`status` must be one of {list(_END_STATUSES)}. Received: status={status!r}.")
        if self._run_id is None:
            return
        self._send(())
        self.client.set_terminated(self._run_id, status=status)

    def __enter__(self) -> MLFlowLogger:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if exc is None:
            if self._run_id is not None and self.client.get_run(self._run_id).info.status == "RUNNING":
                self.end_run("FINISHED")
        else:
            self.end_run(_failure_status(exc))

    # -- Poutyne-style logging API ------------------------------------------------------------------------
    def log_param(self, param_name: str, value: Any) -> None:
        """Logs one param (MLflow params cannot change: a different value for a logged param only warns)."""
        self.log_params({param_name: value})

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Logs several params at once."""
        self._log_new_params({safe_key(name): str(value) for name, value in params.items()})

    def log_config_params(self, config_params: Mapping[str, Any]) -> None:
        """Logs a nested configuration as params with dotted keys (``{'optim': {'lr': 1}}`` -> ``optim.lr``)."""
        if not isinstance(config_params, Mapping):
            raise TypeError(
                f"`config_params` must be a mapping, such as a dict of settings. Received: config_params of type "
                f"{type(config_params).__name__}."
            )
        self.log_params(flatten_params(config_params))

    def log_metric(self, metric_name: str, value: float, step: int | None = None) -> None:
        """Logs one metric value (at ``step``, or step 0)."""
        self.log_metrics({metric_name: value}, step=step)

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Logs several metric values at one step; values that are not single numbers are skipped."""
        self._send(self._metrics(metrics, step or 0, prefix=""))

    def set_tag(self, key: str, value: Any) -> None:
        """Sets a tag on the run (tags, unlike params, can be overwritten)."""
        self.client.set_tag(self.run_id, safe_key(key), str(value))

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Sets several tags on the run."""
        run_tags = [self._mlflow.entities.RunTag(safe_key(key), str(value)) for key, value in tags.items()]
        self.client.log_batch(self.run_id, tags=run_tags)

    def _metrics(self, values: Mapping[str, Any], step: int, prefix: str, skip: Sequence[str] = ()) -> list[Any]:
        timestamp = now_ms()
        metrics = []
        for key, value in values.items():
            number = None if key in skip else metric_value(value)
            if number is not None:
                metrics.append(self._mlflow.entities.Metric(safe_key(prefix + key), number, timestamp, step))
        return metrics

    def _send(self, metrics: Sequence[Any]) -> None:
        """Sends ``metrics`` with the pending batch metrics, in one request."""
        batch, self._pending = [*self._pending, *metrics], []
        if batch:
            self.client.log_batch(self.run_id, metrics=batch)

    def _log_new_params(self, params: Mapping[str, str]) -> None:
        run_id = self.run_id
        if self._run_params is None:
            self._run_params = dict(self.client.get_run(run_id).data.params)
        logged = self._run_params
        changed = {key: value for key, value in params.items() if key in logged and logged[key] != value}
        if changed:
            details = ", ".join(f"{key}: logged {logged[key]!r}, now {value!r}" for key, value in changed.items())
            warnings.warn(
                f"MLFlowLogger: MLflow params cannot change once logged, so run {run_id} keeps its first values "
                f"({details}). Log what changes between sessions as a tag or a metric, or start a new run.",
                stacklevel=3,
            )
        new = {key: value for key, value in params.items() if key not in logged}
        if new:
            entities = [self._mlflow.entities.Param(key, value) for key, value in new.items()]
            self.client.log_batch(run_id, params=entities)
            logged.update(new)

    # -- training set-up ----------------------------------------------------------------------------------
    def training_params(self) -> dict[str, str]:
        """The params logged at the start of training: optimizer, loss, network, epochs, steps..."""
        model, params = self.model, getattr(self, "params", {})
        found: dict[str, Any] = {
            "epochs": params.get("epochs"),
            "steps_per_epoch": params.get("steps"),
            "validation_steps": params.get("valid_steps"),
            # Not one of Poutyne's params: the loop's state has it from the start of fit.
            "batches_per_step": getattr(getattr(model, "state", None), "batches_per_step", None),
        }
        optimizer = getattr(model, "optimizer", None)
        if optimizer is not None:
            found["optimizer"] = type(optimizer).__name__
            # The constructor's values: schedulers change param_groups[...]['lr'], never `defaults`, so a
            # resumed run logs the same params as the first session.
            for name, value in optimizer.defaults.items():
                if name not in _IMPLEMENTATION_FLAGS:
                    # A tensor learning rate (capturable optimizers) is shown as its number.
                    found[f"optimizer.{name}"] = value.item() if isinstance(value, torch.Tensor) else value
            if len(optimizer.param_groups) > 1:
                found["optimizer.param_groups"] = len(optimizer.param_groups)
        loss_function = getattr(model, "loss_function", None)
        if loss_function is not None:
            found["loss"] = callable_name(loss_function)
        network = getattr(model, "network", None)
        if network is not None:
            found["network"] = type(network).__name__
            found["network.parameters"] = sum(parameter.numel() for parameter in network.parameters())
        metrics_names = getattr(model, "metrics_names", None)
        if metrics_names:
            found["metrics"] = ", ".join(metrics_names)
        return {key: str(value) for key, value in found.items() if value is not None}

    # -- hooks --------------------------------------------------------------------------------------------
    def on_train_begin(self, logs: Mapping[str, Any]) -> None:
        """Creates or reopens the run and logs the training set-up as params."""
        self._open_run()
        self.log_params(self.training_params())

    def on_train_batch_end(self, batch_number: int, logs: Mapping[str, Any]) -> None:
        """With ``batch_granularity``, keeps the batch's values to send with the epoch's."""
        # Returning before touching `logs` keeps the lazy batch values on the device (no sync).
        if not self.batch_granularity:
            return
        step = self.model.state.global_step
        self._pending.extend(self._metrics(logs, step, prefix="batch_", skip=("batch", "size", "time")))
        if len(self._pending) >= _MAX_BUFFERED_METRICS:
            self._send(())

    def on_epoch_end(self, epoch_number: int, logs: Mapping[str, Any]) -> None:
        """Logs every epoch value at step = epoch number."""
        # The logs carry no lr (Poutyne's contract): the epoch's learning rates are written beside them.
        self._send(self._metrics(with_learning_rates(self.model, logs), epoch_number, prefix="", skip=("epoch",)))

    def on_train_end(self, logs: Mapping[str, Any]) -> None:
        """Ends the run as FINISHED (unless ``terminate_on_end=False``)."""
        if self.terminate_on_end:
            self.end_run("FINISHED")
        else:
            self._send(())

    def on_test_end(self, logs: Mapping[str, Any]) -> None:
        """Logs the ``test_`` values at step = the last trained epoch, then ends the run if asked."""
        epoch = getattr(getattr(self.model, "state", None), "epoch", 0)
        # Evaluation logs carry an unprefixed 'time', which would land in the training epochs' `time`.
        values = {key if key.startswith("test_") else f"test_{key}": value for key, value in logs.items()}
        self._send(self._metrics(values, epoch, prefix="", skip=()))
        if self.terminate_on_end:
            self.end_run("FINISHED")

    def on_exception(self, exception: BaseException) -> None:
        """Ends the run as FAILED (KILLED when interrupted) when training raises.

        The batch values not yet sent are dropped: those before the last checkpoint are in its state
        (``state_dict``) and those after it are logged again by the resumed run, so sending them here
        would record the same steps twice.
        """
        self._pending.clear()
        self.end_run(_failure_status(exception))

    # -- resume -------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The run id, so that a resumed training logs into the same run, and the batch values not yet sent.

        The batch values matter for checkpoints taken mid-epoch: without them, the batches before the
        checkpoint would be missing from the run. They keep their timestamps, so values that did reach the
        store before an interruption are recognized as duplicates by MLflow and stored once.
        """
        pending = [[metric.key, encode_float(metric.value), metric.timestamp, metric.step] for metric in self._pending]
        return {"run_id": self._run_id, "pending_batch_metrics": pending}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Logs into the run of :meth:`state_dict` from now on."""
        run_id = state.get("run_id")
        if run_id is None:
            return
        if self._run_id is not None and self._run_id != run_id:
            warnings.warn(
                f"MLFlowLogger: switching from run {self._run_id} to the restored run {run_id}; what was logged "
                "to the former stays there. Call load_state_dict before logging anything to avoid this.",
                stacklevel=2,
            )
        self._run_id = run_id
        self._run_params = None
        self._pending = [
            self._mlflow.entities.Metric(key, float(value), int(timestamp), int(step))
            for key, value, timestamp, step in state.get("pending_batch_metrics", [])
        ]


def _failure_status(exception: BaseException) -> str:
    # Ctrl-C, and an Experiment's exit after saving a checkpoint on SIGINT/SIGTERM, are interruptions.
    return "KILLED" if isinstance(exception, (KeyboardInterrupt, SystemExit)) else "FAILED"
