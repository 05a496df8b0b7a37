"""fitloop's ``FitLoop`` on trainwell: the stage functions run inside trainwell's ``Model``; there is no loop here.

``fit`` is one ``Model.fit_generator`` whose custom steps call the user's ``train_step``/``valid_step``
and whose epoch functions call the ``*_epoch_start``/``*_epoch_end`` functions; ``test`` is one
``evaluate_generator``. Where fitloop was wrong, this is right: the ``lr_scheduler`` is stepped, the
optimizer's gradients are cleared before training steps only (never in validation), the continue
prompt asks only a terminal (a script, CI or a pipe never waits), ``load_best`` without validation
keeps the trained weights instead of the ones the fit started from, and models are stored as
safetensors (atomic, no pickle). See docs/dialects.md.
"""

from __future__ import annotations

import copy
import functools
import os
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from trainwell.callbacks.base import Callback
from trainwell.callbacks.interactive import ContinuePrompt
from trainwell.callbacks.lr_scheduler_base import check_step_every
from trainwell.callbacks.progress import EpochProgressionCallback
from trainwell.compat.fitloop.callbacks import BestWeights, GivenScheduler
from trainwell.compat.fitloop.checkups import Checkups
from trainwell.compat.fitloop.defaults import FitLoopDefaults
from trainwell.compat.fitloop.in_directory import fit_in_directory
from trainwell.compat.fitloop.metrics import FitLoopMetrics, PhaseMetrics
from trainwell.compat.fitloop.preservation import Preservation
from trainwell.compat.fitloop.state import LoopState, keep_step_output
from trainwell.model import Model
from trainwell.utils.checks import check_positive_int

__all__ = ["FitLoop"]

StageFunction = Callable[[LoopState], Any]


@dataclass
class _Run:
    """The options and phase states of the run in progress (a fit, a test, a sanity check, a profile)."""

    states: dict[str, LoopState]
    record: bool
    define_all: bool
    no_float: bool
    track_batch_metrics: bool
    first_epoch: int
    last: dict[str, dict[str, Any]] = field(default_factory=dict)


class FitLoop(Checkups, Preservation):
    """fitloop's trainer: a model, an optimizer, a loss, loaders and stage functions; ``fit`` trains.

    The arguments are fitloop's (``FitLoop(**fdict)``), each kept as an attribute of the same name that
    stage functions read through their state (``state.optimizer``...).

    Args:
        model, optimizer, loss_function: the network, its optimizer (or a list of them) and the loss.
        train_dl, valid_dl, test_dl: the loaders; without ``valid_dl`` there is no validation.
        train_step, valid_step, test_step: batch steps ``step(state) -> dict``; the training one calls
            ``loss.backward()`` and ``optimizer.step()`` (gradients are cleared before it is called).
        train_epoch_start, valid_epoch_start, test_epoch_start: called with the state as an epoch starts.
        train_epoch_end, valid_epoch_end, test_epoch_end: ``end(state) -> dict`` of epoch values
            (logged; validation ones with ``val_``), computed from ``state['key']``.
        preloop, postloop: called with a dict of the run's variables before and after a ``fit``.
        lr_scheduler: a scheduler (or a list) on the optimizer, stepped after every epoch (after every
            batch with ``lr_scheduler_step='step'``); a ``ReduceLROnPlateau`` watches ``val_<criteria>``.
        device: where to train (default: the GPU when there is one).
        configure_optimizer: ``configure_optimizer(floop)``, called after weights are replaced
            (``load_best``, ``reset``, loading weights only).
        dtype: the floating type of the model and of the batches' floating tensors.
        criteria: the ``valid_epoch_end`` value that picks the best model (default ``'accuracy'`` with the
            default validation step); ``criteria_direction``: 1 when larger is better, -1 when smaller.
        save_to_disk: write the initial (pretrained) and best weights under ``save_path`` as safetensors
            (else they are kept in memory); ``pretrained_model_name``, ``best_model_name``: their names.
        lr_scheduler_step: ``'epoch'`` or ``'step'``.
        sanity_check: trainwell's check before each ``fit`` (2 validation and 2 training batches, then
            everything put back); False turns it off.
        experiment_dir: a directory where each ``fit`` is checkpointed as an Experiment's run (every epoch,
            and on SIGINT/SIGTERM); running the script again resumes it exactly (``M`` included).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        optimizer: Any,
        loss_function: Any,
        train_dl: Any = None,
        valid_dl: Any = None,
        test_dl: Any = None,
        train_step: StageFunction | None = FitLoopDefaults.train_step,
        valid_step: StageFunction | None = FitLoopDefaults.valid_step,
        test_step: StageFunction | None = FitLoopDefaults.test_step,
        train_epoch_start: StageFunction | None = None,
        valid_epoch_start: StageFunction | None = None,
        test_epoch_start: StageFunction | None = None,
        train_epoch_end: StageFunction | None = FitLoopDefaults.train_epoch_end,
        valid_epoch_end: StageFunction | None = FitLoopDefaults.valid_epoch_end,
        test_epoch_end: StageFunction | None = FitLoopDefaults.test_epoch_end,
        preloop: Callable[[dict[str, Any]], None] | None = None,
        postloop: Callable[[dict[str, Any]], None] | None = None,
        lr_scheduler: Any = None,
        device: Any = None,
        configure_optimizer: Callable[[Any], None] | None = None,
        dtype: torch.dtype = torch.float32,
        criteria: str | None = None,
        criteria_direction: int = 1,
        save_to_disk: bool = False,
        save_path: str | os.PathLike[str] = "models",
        pretrained_model_name: str | None = None,
        best_model_name: str | None = None,
        *,
        lr_scheduler_step: str = "epoch",
        sanity_check: bool = True,
        experiment_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"`model` must be a torch.nn.Module. Received: model of type {type(model).__name__}.")
        if criteria_direction not in (1, -1):
            raise ValueError(
                "`criteria_direction` must be 1 (a larger criteria is better) or -1 (smaller is better). "
                f"Received: criteria_direction={criteria_direction!r}."
            )
        self._model: torch.nn.Module | None = None
        self.optimizer = optimizer
        self.loss_function = loss_function
        self.train_dl, self.valid_dl, self.test_dl = train_dl, valid_dl, test_dl
        self.train_step, self.valid_step, self.test_step = train_step, valid_step, test_step
        self.train_epoch_start, self.valid_epoch_start, self.test_epoch_start = (
            train_epoch_start, valid_epoch_start, test_epoch_start,
        )  # fmt: skip
        self.train_epoch_end, self.valid_epoch_end, self.test_epoch_end = (
            train_epoch_end, valid_epoch_end, test_epoch_end,
        )  # fmt: skip
        self.preloop, self.postloop = preloop, postloop
        self.lr_scheduler = lr_scheduler
        self.lr_scheduler_step = check_step_every(lr_scheduler_step)
        self.device = torch.device(device if device is not None else "cuda" if torch.cuda.is_available() else "cpu")
        self.configure_optimizer = configure_optimizer
        self.dtype = dtype
        if criteria is None and valid_step is FitLoopDefaults.valid_step:
            criteria = FitLoopDefaults.criteria
        self.criteria = criteria
        self.criteria_direction = criteria_direction
        self.save_to_disk = save_to_disk
        self.save_path = Path(save_path)
        tag = uuid.uuid4().hex[:8]
        self.pretrained_model_name = pretrained_model_name or f"pretrained_{tag}.safetensors"
        self.best_model_name = best_model_name or f"best_{tag}.safetensors"
        self.sanity_check = sanity_check
        self.experiment_dir = experiment_dir
        self.epoch_num = 0
        self.metrics = FitLoopMetrics()
        self.time_profile: list[dict[str, Any]] = []
        self._best: BestWeights | None = None
        self._run: _Run | None = None
        self._initial_optimizer_states = [copy.deepcopy(optimizer.state_dict()) for optimizer in self._optimizers()]
        self.model = model  # casts it and keeps the pretrained weights

    def __repr__(self) -> str:
        score = (
            f"{self.criteria}:{self.best_score:0.4f}" if self.criteria is not None else f"best_score:{self.best_score}"
        )
        return f"<FitLoop :: epoch_num:{self.epoch_num} {score} at {hex(id(self))}>"

    # -- attributes --------------------------------------------------------------------------------------
    @property
    def model(self) -> torch.nn.Module:
        """The network; setting it moves it to ``device`` and ``dtype`` and keeps it as the pretrained model."""
        assert self._model is not None
        return self._model

    @model.setter
    def model(self, model: torch.nn.Module) -> None:
        self._model = model.to(device=self.device, dtype=self.dtype)
        self._save_pretrained()

    @property
    def best_score(self) -> float:
        """The best ``criteria`` value over every ``fit`` so far (-inf, or +inf for direction -1, before any)."""
        if self._best is None or self._best.best_weights is None:
            return self.criteria_direction * float("-inf")
        return float(self._best.monitor.best)

    @property
    def M(self) -> FitLoopMetrics:  # noqa: N802 (fitloop's name)
        """Every value the stage functions returned (see :class:`~trainwell.compat.fitloop.metrics.FitLoopMetrics`)."""
        return self.metrics

    @property
    def train_metrics(self) -> PhaseMetrics:
        """``M.train``."""
        return self.metrics.train

    @property
    def valid_metrics(self) -> PhaseMetrics:
        """``M.valid``."""
        return self.metrics.valid

    @property
    def test_metrics(self) -> PhaseMetrics:
        """``M.test``."""
        return self.metrics.test

    def plot(self, metric: str, run_number: int | str | None = None, path: str | os.PathLike[str] | None = None) -> Any:
        """Draws ``metric`` for training and validation (``M.plot``), saved to ``path``; returns the figure."""
        return self.metrics.plot(metric, run_number, path)

    def _optimizers(self) -> list[torch.optim.Optimizer]:
        optimizer = self.optimizer
        return [] if optimizer is None else list(optimizer) if isinstance(optimizer, (list, tuple)) else [optimizer]

    def _schedulers(self) -> list[Any]:
        schedulers = self.lr_scheduler
        return [] if schedulers is None else list(schedulers) if isinstance(schedulers, (list, tuple)) else [schedulers]

    # -- the stage functions, as trainwell's steps and epoch functions --------------------------------------
    def _current(self) -> _Run:
        if self._run is None:
            raise RuntimeError(
                "A FitLoop stage function was called outside fit, test, run_sanity_check or run_profiler."
            )
        return self._run

    def _train_batch(self, context: Any, batch: Any) -> dict[str, Any] | None:
        run = self._current()
        if self.train_step is None:
            raise AttributeError("`train_step` is not set: give FitLoop a train_step function.")
        state = run.states["train"]
        state.begin_batch(context, batch)
        output = keep_step_output(self.train_step(state), "train")
        # Cleared after each training step (so the next starts clean, and a checkpoint between batches holds
        # no stale gradients); validation never touches them.
        if not run.define_all:
            for optimizer in self._optimizers():
                optimizer.zero_grad(set_to_none=True)
        return output

    def _evaluate_batch(self, context: Any, batch: Any) -> dict[str, Any] | None:
        run = self._current()
        phase = context.phase
        function = self.valid_step if phase == "valid" else self.test_step
        if function is None:
            raise AttributeError(f"`{phase}_step` is not set: give FitLoop a {phase}_step function.")
        state = run.states[phase]
        state.begin_batch(context, batch)
        return keep_step_output(function(state), phase)

    def _epoch_start(self, phase: str, context: Any) -> None:
        run = self._current()
        state = run.states[phase]
        state.begin_epoch(context, max(context.epoch - run.first_epoch, 0))
        function = getattr(self, f"{phase}_epoch_start")
        result = function(state) if function is not None else None
        if run.record and isinstance(result, Mapping):
            getattr(self.metrics, phase).append("epoch_start", result, run.no_float)

    def _epoch_end(self, phase: str, context: Any, outputs: Any) -> dict[str, Any]:
        run = self._current()
        state = run.states[phase]
        state.end_epoch(context, outputs)
        function = getattr(self, f"{phase}_epoch_end")
        result = function(state) if function is not None else None
        if result is not None and not isinstance(result, Mapping):
            raise TypeError(
                f"`{phase}_epoch_end` must return a dict of epoch values, or None. Received a {type(result).__name__}."
            )
        values = dict(result or {})
        if run.record:
            recorded = getattr(self.metrics, phase)
            if run.track_batch_metrics:
                for key in outputs.keys():  # noqa: SIM118 (StepOutputs is no dict)
                    recorded.extend("batch_step", key, _host_values(outputs[key]))
            recorded.append("epoch_end", values, run.no_float)
        run.last[phase] = values
        return {key: value for key, value in values.items() if _is_number(value)}

    # -- runs --------------------------------------------------------------------------------------------
    def _start(self, loaders: Mapping[str, Any], *, record: bool, is_test: bool, options: Mapping[str, Any]) -> _Run:
        states = {
            phase: LoopState(
                phase, self, loader, no_cast=options["no_cast"], is_train=record and not is_test, is_test=is_test
            )
            for phase, loader in loaders.items()
        }
        self._run = _Run(
            states,
            record=record,
            define_all=options["define_all"],
            no_float=options["no_float"],
            track_batch_metrics=options["track_batch_metrics"],
            first_epoch=self.epoch_num + 1,
        )
        return self._run

    def _trainwell_model(self, phases: list[str], sanity_check: bool) -> Model:
        functions: dict[str, Callable[..., Any]] = {}
        for phase in phases:
            functions[f"{phase}_epoch_start"] = functools.partial(self._epoch_start, phase)
            functions[f"{phase}_epoch_end"] = functools.partial(self._epoch_end, phase)
        optimizers = self._optimizers()
        optimizer: Any = optimizers[0] if len(optimizers) == 1 else None
        if len(optimizers) > 1:
            optimizer = {f"optimizer_{index}": item for index, item in enumerate(optimizers)}
        return Model(
            self.model,
            optimizer,
            self.loss_function,
            train_step=self._train_batch,
            evaluate_step=self._evaluate_batch,
            epoch_functions=functions,
            device=self.device,
            sanity_check=sanity_check,
        )

    def _display(self, print_every: int, no_print: bool, no_progress: bool) -> tuple[bool, list[Callback]]:
        if no_print or print_every == 0:
            return False, []
        if print_every > 1 or no_progress:
            return True, [EpochProgressionCallback(show_every_n_epochs=print_every if print_every > 1 else "all")]
        return True, []

    def _best_weights(self) -> BestWeights:
        monitor = f"val_{self.criteria}"
        mode = "max" if self.criteria_direction > 0 else "min"
        if self._best is None or self._best.monitor.monitor != monitor or self._best.monitor.mode != mode:
            path = self.save_path / self.best_model_name if self.save_to_disk else None
            self._best = BestWeights(monitor, mode, path)
        return self._best

    def _fit(
        self,
        epochs: int,
        train_dl: Any,
        valid_dl: Any,
        *,
        record: bool,
        callbacks: list[Callback],
        steps: int | None = None,
        load_best: bool = False,
        print_every: int = 1,
        no_print: bool = False,
        no_progress: bool = False,
        sanity_check: bool = False,
        options: Mapping[str, Any],
    ) -> list[dict[str, Any]]:
        check_positive_int(epochs, "epochs")
        train_dl = train_dl if train_dl is not None else self.train_dl
        if train_dl is None:
            raise ValueError("`train_dl` is not set: give FitLoop(train_dl=...) or fit(train_dl=...).")
        valid_dl = valid_dl if valid_dl is not None else self.valid_dl
        validate = valid_dl is not None and self.valid_step is not None
        loaders = {"train": train_dl, **({"valid": valid_dl} if validate else {})}
        self._start(loaders, record=record, is_test=False, options=options)
        model = self._trainwell_model(list(loaders), sanity_check)
        verbose, display = self._display(print_every, no_print, no_progress)
        every = [*display, *callbacks]
        best = self._best_weights() if record and validate and self.criteria is not None else None
        if best is not None:
            best.restore = load_best
            every.append(best)
        monitor = f"val_{self.criteria}" if validate and self.criteria is not None else "loss"
        every += [GivenScheduler(scheduler, self.lr_scheduler_step, monitor) for scheduler in self._schedulers()]
        first = self.epoch_num + 1
        if record:
            self.metrics.start_run(is_test=False)
        if self.preloop is not None:
            self.preloop({"floop": self, "epochs": epochs, "loaders": loaders, "model": model})
        valid = valid_dl if validate else None
        options = {"steps_per_epoch": steps, "validation_steps": steps if validate else None, "verbose": verbose}
        try:
            if record and self.experiment_dir is not None:  # checkpointed there; sets epoch_num
                history = fit_in_directory(
                    self, model, train_dl, valid, epochs=first + epochs - 1, callbacks=every, monitor=monitor, **options
                )
            else:
                history = model.fit_generator(
                    train_dl, valid, epochs=first + epochs - 1, initial_epoch=first, callbacks=every, **options
                )
                self.epoch_num += len(history) if record else 0
        finally:
            if record:
                self.metrics.complete_run(is_test=False)
            self._run = None
        if self.postloop is not None:
            self.postloop({"floop": self, "epochs": epochs, "loaders": loaders, "model": model, "history": history})
        if best is not None and load_best and best.best_weights is not None and self.configure_optimizer is not None:
            self.configure_optimizer(self)
        if best is not None and verbose:
            print(f"best score: {self.best_score:0.4f}")
        return history

    def _test(
        self, loader: Any, *, record: bool, steps: int | None, no_print: bool, options: Mapping[str, Any]
    ) -> dict[str, Any]:
        if loader is None:
            raise ValueError("`test_dl` is not set: give FitLoop(test_dl=...) or test(test_dl=...).")
        run = self._start({"test": loader}, record=record, is_test=True, options=options)
        model = self._trainwell_model(["test"], sanity_check=False)
        if record:
            self.metrics.start_run(is_test=True)
        try:
            model.evaluate_generator(loader, steps=steps, return_dict_format=True, verbose=not no_print)
        finally:
            if record:
                self.metrics.complete_run(is_test=True)
            self._run = None
        return run.last.get("test", {})

    # -- fitloop's public methods -------------------------------------------------------------------------
    def fit(
        self,
        epochs: int = 1,
        print_every: int = 1,
        display_metrics: str | list[str] | None = None,
        train_dl: Any = None,
        valid_dl: Any = None,
        track_batch_metrics: bool = True,
        load_best: bool = True,
        continue_loop: int = 0,
        define_all: bool = False,
        no_print: bool = False,
        no_cast: bool = False,
        no_float: bool = False,
        no_progress: bool = False,
    ) -> list[dict[str, Any]]:
        """Trains for ``epochs`` epochs (validating after each when there is a ``valid_dl``).

        Args:
            epochs: how many epochs (counted on from earlier fits: ``epoch_num`` keeps growing).
            print_every: one line every n epochs (0: nothing printed).
            display_metrics: accepted for fitloop's scripts; every logged value is displayed.
            train_dl: a training loader for this fit instead of the FitLoop's.
            valid_dl: a validation loader for this fit instead of the FitLoop's.
            track_batch_metrics: record every batch step's values in ``M``.
            load_best: at the end, load the weights of the best epoch by ``criteria`` (only when there is
                validation; without it the trained weights stay).
            continue_loop: ask on the terminal every n epochs whether to go on (never when standard input
                is not a terminal).
            define_all: your steps clear the gradients themselves.
            no_print: print nothing.
            no_progress: no progress bar (one line per epoch).
            no_cast: ``state.batch`` as the loader gave it (on the device), without dtype casts.
            no_float: keep values in ``M`` as returned instead of as floats.

        Returns:
            trainwell's history: one dict of logs per epoch (``val_`` before validation values).
        """
        callbacks: list[Callback] = []
        if continue_loop:
            check_positive_int(continue_loop, "continue_loop")
            prompt = ContinuePrompt(every_n_epochs=continue_loop)
            prompt.next_prompt = self.epoch_num + continue_loop  # counted from this fit's start, as in fitloop
            callbacks.append(prompt)
        options = {
            "define_all": define_all,
            "no_cast": no_cast,
            "no_float": no_float,
            "track_batch_metrics": track_batch_metrics,
        }
        return self._fit(
            epochs, train_dl, valid_dl, record=True, callbacks=callbacks, load_best=load_best, print_every=print_every,
            no_print=no_print, no_progress=no_progress, sanity_check=self.sanity_check, options=options,
        )  # fmt: skip

    def train(self, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        """The same as :meth:`fit`."""
        return self.fit(*args, **kwargs)

    def test(
        self, test_dl: Any = None, no_print: bool = False, no_cast: bool = False, no_float: bool = False
    ) -> dict[str, Any]:
        """Runs the test phase once over ``test_dl``; records it in ``M.test`` and returns ``test_epoch_end``'s dict."""
        options = {"define_all": False, "no_cast": no_cast, "no_float": no_float, "track_batch_metrics": True}
        loader = test_dl if test_dl is not None else self.test_dl
        return self._test(loader, record=True, steps=None, no_print=no_print, options=options)


def _is_number(value: Any) -> bool:
    if isinstance(value, torch.Tensor):
        return value.numel() == 1
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _host_values(value: Any) -> list[Any]:
    """An epoch's stacked batch values as a list (one host transfer for a tensor)."""
    if isinstance(value, torch.Tensor):
        return (
            value.detach().reshape(len(value), -1).squeeze(1).float().cpu().tolist() if value.dim() else [value.item()]
        )
    return list(value)
