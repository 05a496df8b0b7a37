"""``Search``: a hyperparameter search on Optuna where every trial is an Experiment directory.

A search directory holds ``study.db`` (the Optuna study, unless another storage is given), ``trials/``
(one :class:`~trainwell.Experiment` directory per trial, its parameters in its ``run.json``),
``trials.csv``, ``tensorboard/`` (one HParams entry per trial) and ``plots/``. Run the same command again
after any interruption: finished trials are kept, the interrupted one resumes from its checkpoint. Start
the command in several processes (or on several machines, sharing a database) and they share the trials.
"""

from __future__ import annotations

import inspect
import math
import random
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainwell.callbacks.monitor import metric_direction
from trainwell.experiment.experiment import ModelBundle
from trainwell.experiment.files import directory_argument
from trainwell.model.model import Model
from trainwell.search.claims import Heartbeat
from trainwell.search.pruning import PRUNED_AT, TrialReporter
from trainwell.search.reporting import (
    TRIAL_DIRECTORY,
    read_epoch_logs,
    record_trial,
    trials_rows,
    write_hparams,
    write_plots,
    write_trials_csv,
)
from trainwell.search.space import Space
from trainwell.search.study import FINAL, StudyHandle
from trainwell.search.trial_options import trial_options
from trainwell.utils.tensors import set_seeds

if TYPE_CHECKING:
    import pandas

__all__ = ["Search"]

SAMPLERS = ("grid", "random", "tpe")
PRUNERS = ("median", "hyperband", "none")
_DIRECTIONS = {"min": "minimize", "minimize": "minimize", "max": "maximize", "maximize": "maximize"}


class Search:
    """A hyperparameter search: one :class:`~trainwell.Experiment` per trial, resumable, shared by workers.

    Args:
        directory: the search directory (created when needed).
        build: ``build(params)`` returning a :class:`~trainwell.Model` (the search gives it the trial's
            directory), or ``build(params, directory)`` returning an ``Experiment`` on ``directory``.
            ``params`` is a dict of the trial's values. The random generators are seeded before each call
            (``seed`` + the trial's number), so a trial's network starts from the same weights every time.
        space: ``{name: values}``: a list of choices, a ``range``, ``Range(low, high)`` or
            ``LogRange(low, high)`` per name; or a :class:`~trainwell.Hyperparameter` grid.
        objective: the epoch log to optimize (``'val_acc'``, ``'val_loss'``...); a trial's value is its best
            epoch's.
        direction: ``'max'``/``'maximize'`` or ``'min'``/``'minimize'``; None: from the metric, as
            checkpoints and early stopping decide it (its ``higher_is_better``, else its name).
        sampler: ``'grid'`` (every combination, in tinydl's order), ``'random'`` (each trial drawn from
            ``seed`` and its number), ``'tpe'`` (Optuna's TPE; its first ``max(2, min(10, n_trials // 4))``
            trials are random), or any Optuna sampler object.
        n_trials: the number of trials of the whole search (all workers together); a grid's size when None.
        pruner: ``'median'``, ``'hyperband'``, any Optuna pruner object, or None: stops unpromising trials
            from the objective of each epoch.
        storage: an Optuna storage URL (``'postgresql://user@host/db'``) or object; None keeps the study
            in ``directory/study.db`` (SQLite).
        study_name: the study's name in the storage (default: the directory's name).
        seed: seeds the samplers and each trial's ``build`` call.
        verbose: print one line per trial.
        heartbeat_interval: seconds between a running trial's heartbeats in the storage.
        stale_after: seconds without a heartbeat after which another machine's trial is taken over
            (default: 5 heartbeats). A trial of this machine is taken over as soon as its process is gone.

    Raises:
        TypeError, ValueError: a bad argument (named in the message), before any trial runs.

    >>> import tempfile, torch
    >>> from trainwell import Model, Search, LogRange
    >>> def build(params):
    ...     return Model(torch.nn.Linear(4, 3), {'optim': 'sgd', 'lr': params['lr']}, 'cross_entropy',
    ...                  batch_metrics=['accuracy'])
    >>> search = Search(tempfile.mkdtemp(), build, {'lr': [0.1, 0.01]}, objective='val_acc', sampler='grid',
    ...                 verbose=False)
    >>> x, y = torch.randn(32, 4), torch.randint(3, (32,))
    >>> table = search.train_data(x, y, validation_data=(x, y), epochs=1, batch_size=16)
    >>> table['lr'].tolist(), table['state'].tolist()
    ([0.1, 0.01], ['complete', 'complete'])
    """

    def __init__(
        self,
        directory: str | Path,
        build: Callable[..., Any],
        space: Any,
        *,
        objective: str = "val_loss",
        direction: str | None = None,
        sampler: Any = "tpe",
        n_trials: int | None = None,
        pruner: Any = None,
        storage: Any = None,
        study_name: str | None = None,
        seed: int = 42,
        verbose: bool = True,
        heartbeat_interval: float = 30.0,
        stale_after: float | None = None,
    ) -> None:
        self.directory = directory_argument(directory)
        if not callable(build):
            raise TypeError(
                "`build` must be a function of the trial's parameters returning a Model (or, taking a second "
                f"argument `directory`, an Experiment). Received: build of type {type(build).__name__}."
            )
        self.build = build
        self.space = Space(space)
        if not isinstance(objective, str) or not objective:
            raise TypeError(
                f"`objective` must be the name of a logged value such as 'val_acc'. Received: {objective!r}."
            )
        self.objective = objective
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise TypeError(f"`seed` must be an int. Received: seed={seed!r} (type {type(seed).__name__}).")
        self.seed = seed
        self.verbose = bool(verbose)
        self.sampler_name, self._grid = self._check_sampler(sampler)
        self.n_trials = self._check_n_trials(n_trials)
        self._sampler, self._pruner = sampler, self._check_pruner(pruner)
        _check_storage(storage)
        self.storage = storage
        if study_name is not None and (not isinstance(study_name, str) or not study_name):
            raise TypeError(f"`study_name` must be a non-empty string or None. Received: study_name={study_name!r}.")
        self.study_name = study_name or self.directory.resolve().name
        for name, value in (("heartbeat_interval", heartbeat_interval), ("stale_after", stale_after)):
            if value is not None and (not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0):
                raise ValueError(f"`{name}` must be a positive number of seconds. Received: {name}={value!r}.")
        self.heartbeat_interval = float(heartbeat_interval)
        self.stale_after = float(stale_after) if stale_after is not None else 5 * self.heartbeat_interval
        self._takes_directory = _takes_directory(build)
        self.direction = self._check_direction(direction)
        self._handle: StudyHandle | None = None

    # -- argument checks ------------------------------------------------------------------------------------
    def _check_sampler(self, sampler: Any) -> tuple[str, Any]:
        if isinstance(sampler, str):
            if sampler.lower() not in SAMPLERS:
                raise ValueError(
                    f"`sampler` must be one of {list(SAMPLERS)} or an Optuna sampler object. Received: "
                    f"sampler={sampler!r}. For another algorithm pass it, e.g. optuna.samplers.CmaEsSampler()."
                )
            name = sampler.lower()
            return name, self.space.grid().get_experiments() if name == "grid" else None
        import optuna

        if not isinstance(sampler, optuna.samplers.BaseSampler):
            raise TypeError(
                f"`sampler` must be 'grid', 'random', 'tpe' or an optuna.samplers.BaseSampler. Received: sampler "
                f"of type {type(sampler).__name__}."
            )
        return type(sampler).__name__, None

    def _check_n_trials(self, n_trials: Any) -> int:
        if n_trials is None:
            if self._grid is None:
                raise ValueError(f"`n_trials` is needed with sampler={self.sampler_name!r}: how many trials to run.")
            return len(self._grid)
        if not isinstance(n_trials, int) or isinstance(n_trials, bool) or n_trials < 1:
            raise ValueError(f"`n_trials` must be a positive int or None. Received: n_trials={n_trials!r}.")
        # A grid holds what it holds: asking for more runs each combination once.
        return min(n_trials, len(self._grid)) if self._grid is not None else n_trials

    def _check_pruner(self, pruner: Any) -> Any:
        import optuna

        if pruner is None or (isinstance(pruner, str) and pruner.lower() == "none"):
            return optuna.pruners.NopPruner()
        if isinstance(pruner, str):
            if pruner.lower() == "median":
                return optuna.pruners.MedianPruner()
            if pruner.lower() == "hyperband":
                return optuna.pruners.HyperbandPruner()
            raise ValueError(
                f"`pruner` must be 'median', 'hyperband', None or an Optuna pruner object. Received: pruner={pruner!r}."
            )
        if not isinstance(pruner, optuna.pruners.BasePruner):
            raise TypeError(
                f"`pruner` must be 'median', 'hyperband', None or an optuna.pruners.BasePruner. Received: pruner "
                f"of type {type(pruner).__name__}."
            )
        return pruner

    def _check_direction(self, direction: Any) -> str:
        if direction is not None:
            if direction not in _DIRECTIONS:
                raise ValueError(
                    f"`direction` must be 'max', 'min', 'maximize', 'minimize' or None (from the metric). "
                    f"Received: direction={direction!r}."
                )
            return _DIRECTIONS[direction]
        found = metric_direction(self.objective)
        if found is None:
            # The name does not tell: ask the metrics of a model built at the space's first values (a probe,
            # never trained), as the experiment's own monitor would.
            built = self._call_build(self.space.first_point(), self._trial_directory(0))
            model = built.model if isinstance(built, ModelBundle) else built
            found = metric_direction(self.objective, model)
        if found is None:
            raise ValueError(
                f"Cannot tell whether a larger or a smaller {self.objective!r} is better: no metric of the model "
                "declares it (higher_is_better) and the name is not a known loss or score. Pass direction='max' "
                "or direction='min'."
            )
        return _DIRECTIONS[found]

    # -- the study ------------------------------------------------------------------------------------------
    @property
    def study(self) -> Any:
        """The ``optuna.Study`` (opened on first use)."""
        return self._study_handle().study

    def _study_handle(self) -> StudyHandle:
        if self._handle is None:
            import optuna

            if isinstance(self._sampler, str):
                # 'grid' and 'random' give every trial fixed parameters; 'tpe' asks the study's sampler.
                # TPE's first trials are random draws: Optuna's 10 would be the whole of a small search.
                startup = max(2, min(10, self.n_trials // 4))
                sampler = (
                    optuna.samplers.TPESampler(seed=self.seed, n_startup_trials=startup)
                    if self.sampler_name == "tpe"
                    else optuna.samplers.RandomSampler(seed=self.seed)
                )
            else:
                sampler = self._sampler
            config = {
                "objective": self.objective,
                "space": self.space.describe(),
                "sampler": self.sampler_name,
                "seed": self.seed,
            }
            self._handle = StudyHandle(
                self.directory, self.storage, self.study_name, self.direction, sampler, self._pruner, config
            )
        return self._handle

    def _fixed_params(self, slot: int) -> dict[str, Any] | None:
        if self._grid is not None:
            return self._grid[slot]
        if self.sampler_name == "random" and isinstance(self._sampler, str):
            # Drawn from the seed and the trial's number alone: a resumed search draws what it drew before.
            return self.space.draw(random.Random(f"{self.seed}:{slot}"))
        return None

    # -- running --------------------------------------------------------------------------------------------
    def train_data(self, x: Any, y: Any, validation_data: Any = None, **kwargs: Any) -> pandas.DataFrame:
        """Runs the search on in-memory data; every trial calls ``Experiment.train_data`` with these arguments.

        Keyword arguments are :meth:`Experiment.train_data`'s (``epochs``, ``batch_size``, ``callbacks``,
        ``checkpoint_every_n_steps``...); ``verbose`` (each trial's epoch display) defaults to False.

        Returns:
            The trials table (:attr:`trials`).
        """
        return self._search("train_data", (x, y, validation_data), kwargs)

    def train(self, train_generator: Any, valid_generator: Any = None, **kwargs: Any) -> pandas.DataFrame:
        """Like :meth:`train_data`, on iterables of batches (``Experiment.train``)."""
        return self._search("train", (train_generator, valid_generator), kwargs)

    def train_dataset(self, train_dataset: Any, valid_dataset: Any = None, **kwargs: Any) -> pandas.DataFrame:
        """Like :meth:`train_data`, on ``Dataset``s (``Experiment.train_dataset``)."""
        return self._search("train_dataset", (train_dataset, valid_dataset), kwargs)

    def _search(self, method: str, data: tuple[Any, ...], kwargs: dict[str, Any]) -> pandas.DataFrame:
        kwargs.setdefault("verbose", False)
        handle = self._study_handle()
        while True:
            claim = handle.claim(self.n_trials, self.stale_after, self._fixed_params)
            if claim is None:
                break
            self._run_trial(handle, claim.trial_id, claim.slot, claim.adopted, method, data, kwargs)
        write_plots(handle.study, self.directory / "plots")
        return self.trials

    def _run_trial(
        self,
        handle: StudyHandle,
        trial_id: int,
        slot: int,
        adopted: bool,
        method: str,
        data: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> None:
        import optuna
        from optuna.trial import TrialState

        trial = optuna.Trial(handle.study, trial_id)
        params = self.space.suggest(trial)
        directory = self._trial_directory(slot)
        started = time.monotonic()
        if PRUNED_AT not in trial.user_attrs:  # else: pruned by a worker that died before saying so
            self._say(slot, params, "is taken over (its worker stopped)" if adopted else "starts")
            experiment = self._experiment(params, slot, directory)
            record = {"trial": slot, "params": params, "objective": self.objective, "direction": self.direction}
            record_trial(directory, {**record, "study": self.study_name, "sampler": self.sampler_name})
            reporter = TrialReporter(
                trial, self.objective, prune=not isinstance(self._pruner, optuna.pruners.NopPruner)
            )
            options = trial_options(kwargs, params)  # the trial's own callbacks and schedulers
            callbacks = [*(options.get("callbacks") or []), reporter]
            try:
                with Heartbeat(lambda: handle.beat(trial_id), self.heartbeat_interval):
                    getattr(experiment, method)(*data, **{**options, "callbacks": callbacks})
            except FloatingPointError as error:  # diverged (NaN loss or weights): a result of the search
                self._finish(handle, trial, slot, params, TrialState.FAIL, directory, started, reason=str(error))
                return
            except Exception as error:
                # A bug or bad input: recorded, retried with the same parameters when the search runs again.
                handle.study._storage.set_trial_user_attr(trial_id, "error", repr(error))
                handle.study.tell(trial, state=TrialState.FAIL)
                write_trials_csv(self.directory / "trials.csv", self._rows())
                raise
            # SystemExit / KeyboardInterrupt pass through: the trial stays running and the next run adopts it.
        state = TrialState.PRUNED if PRUNED_AT in handle.study._storage.get_trial(trial_id).user_attrs else None
        self._finish(handle, trial, slot, params, state, directory, started)

    def _finish(
        self,
        handle: StudyHandle,
        trial: Any,
        slot: int,
        params: dict[str, Any],
        state: Any,
        directory: Path,
        started: float,
        reason: str | None = None,
    ) -> None:
        from optuna.trial import TrialState

        storage = handle.study._storage
        rows = [row for row in read_epoch_logs(directory / "log.tsv") if self.objective in row]
        values = [float(row[self.objective]) for row in rows]
        best: tuple[float, int] | None = None  # (value, row): the first best epoch, as the experiment's monitor
        for index, value in enumerate(values):
            better = best is None or (value > best[0] if self.direction == "maximize" else value < best[0])
            if math.isfinite(value) and better:
                best = (value, index)
        storage.set_trial_user_attr(trial._trial_id, "epochs", len(rows))
        if best is not None:
            storage.set_trial_user_attr(trial._trial_id, "best_epoch", int(rows[best[1]]["epoch"]))
        if state is None and best is None:
            state, reason = TrialState.FAIL, reason or f"no finite {self.objective!r} was logged"
        if state == TrialState.FAIL:
            storage.set_trial_system_attr(trial._trial_id, FINAL, True)
            storage.set_trial_user_attr(trial._trial_id, "error", reason)
            handle.study.tell(trial, state=TrialState.FAIL)
        elif state == TrialState.PRUNED:
            handle.study.tell(trial, state=TrialState.PRUNED)
        else:
            assert best is not None
            handle.study.tell(trial, best[0])
        final = {key: float(value) for key, value in (rows[-1] if rows else {}).items() if _is_number(key, value)}
        if best is not None:
            final[f"best_{self.objective}"] = best[0]
        state_name = handle.study._storage.get_trial(trial._trial_id).state.name.lower()
        write_hparams(self.directory / "tensorboard", params, state_name, final, slot)
        rows_table = self._rows()
        write_trials_csv(self.directory / "trials.csv", rows_table)
        outcome = f"{state_name}: {self.objective} {best[0]:.6g}" if best is not None else f"{state_name} ({reason})"
        self._say(
            slot, params, f"{outcome}, {len(rows)} epoch(s), {time.monotonic() - started:.1f} s{self._best_so_far()}"
        )

    def _best_so_far(self) -> str:
        best = self.best_trial
        return "" if best is None else f" (best: trial {best['trial']}, {best[self.objective]:.6g})"

    def _say(self, slot: int, params: Mapping[str, Any], what: str) -> None:
        if self.verbose:
            shown = ", ".join(f"{name}={_short(value)}" for name, value in params.items())
            print(f"Trial {slot} ({slot + 1}/{self.n_trials}) [{shown}] {what}", flush=True)

    # -- trials and experiments -----------------------------------------------------------------------------
    def _trial_directory(self, slot: int) -> Path:
        return self.directory / "trials" / TRIAL_DIRECTORY.format(slot)

    def _call_build(self, params: dict[str, Any], directory: Path) -> Any:
        built = self.build(dict(params), directory) if self._takes_directory else self.build(dict(params))
        if isinstance(built, ModelBundle):
            if Path(built.directory).resolve() != directory.resolve():
                raise ValueError(
                    f"`build` returned an Experiment on {str(built.directory)!r}, but this trial's directory is "
                    f"{str(directory)!r}: build it on the `directory` argument it receives."
                )
            return built
        if isinstance(built, Model):
            return built
        hint = "" if self._takes_directory else " (an Experiment needs the trial's directory: take a second argument)"
        raise TypeError(
            f"`build` must return a trainwell Model or Experiment. It returned {type(built).__name__}{hint}."
        )

    def _experiment(self, params: dict[str, Any], slot: int, directory: Path) -> ModelBundle:
        set_seeds(self.seed + slot)
        built = self._call_build(params, directory)
        if isinstance(built, ModelBundle):
            return built
        mode = "max" if self.direction == "maximize" else "min"
        return ModelBundle.from_model(directory, built, monitor_metric=self.objective, monitor_mode=mode)

    def _rows(self) -> list[dict[str, Any]]:
        handle = self._study_handle()
        return trials_rows(handle.trials(), self.objective, self.space.names, self.directory)

    @property
    def trials(self) -> pandas.DataFrame:
        """The trials as a pandas DataFrame, one row per trial.

        Columns: ``trial``, ``state``, the objective, the parameters, ``epochs``, ``best_epoch``,
        ``duration`` (seconds) and ``directory``.
        """
        import pandas

        rows = self._rows()
        columns = ["trial", "state", self.objective, *self.space.names, "epochs", "best_epoch", "duration", "directory"]
        return pandas.DataFrame(rows, columns=columns)

    @property
    def best_trial(self) -> dict[str, Any] | None:
        """The complete trial with the best objective, as a row of :attr:`trials` (a dict); None before one."""
        complete = [row for row in self._rows() if row["state"] == "complete"]
        if not complete:
            return None
        pick = max if self.direction == "maximize" else min
        return pick(complete, key=lambda row: row[self.objective])

    @property
    def best_params(self) -> dict[str, Any]:
        """The best trial's parameters."""
        best = self.best_trial
        if best is None:
            raise RuntimeError(f"No trial of {self.directory} has completed yet: run the search first.")
        return {name: best[name] for name in self.space.names}

    @property
    def best_experiment(self) -> ModelBundle:
        """The best trial's Experiment, rebuilt on its directory with its best checkpoint's weights loaded."""
        best = self.best_trial
        if best is None:
            raise RuntimeError(f"No trial of {self.directory} has completed yet: run the search first.")
        experiment = self._experiment(self.best_params, best["trial"], self._trial_directory(best["trial"]))
        experiment.load_checkpoint("best")
        return experiment


def _is_number(key: str, value: Any) -> bool:
    return key not in ("epoch", "time") and isinstance(value, float) and math.isfinite(value)


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _takes_directory(build: Callable[..., Any]) -> bool:
    try:
        parameters = list(inspect.signature(build).parameters.values())
    except (TypeError, ValueError):
        return False
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= 2 or any(p.kind == p.VAR_POSITIONAL for p in parameters)


def _check_storage(storage: Any) -> None:
    if storage is None or isinstance(storage, str):
        return
    import optuna

    if not isinstance(storage, optuna.storages.BaseStorage):
        raise TypeError(
            "`storage` must be None (SQLite in the search directory), an Optuna storage URL such as "
            "'postgresql://user@host/db', or an optuna storage object. "
            f"Received: storage of type {type(storage).__name__}."
        )
