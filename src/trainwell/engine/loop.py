"""The epoch loop: train, validate, test and predict phases over any batch source.

Each phase is a short loop that asks the :class:`~trainwell.engine.steps.Steps` to process a batch, adds the
result to a :class:`~trainwell.engine.tracking.MetricTracker`, and calls the callbacks that listen. Nothing
here reads a device value: the tracker and lazy batch logs decide when the host sees one.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from trainwell.callbacks.base import CallbackList
from trainwell.data.batches import split_batch
from trainwell.data.sources import check_global_batch, source_length
from trainwell.engine.batch_logs import call_batch_end
from trainwell.engine.step_context import StepContext
from trainwell.engine.step_outputs import StepOutputs
from trainwell.engine.steps import Steps
from trainwell.engine.tracking import MetricTracker
from trainwell.metrics.base import BatchMetric, EpochMetric
from trainwell.optimizers import learning_rates
from trainwell.utils.rng import capture_rng, restore_rng

__all__ = ["PHASE_PREFIXES", "Loop", "LoopState", "ResumePoint", "generators_of"]

# What Poutyne puts before the loss and metric keys of a phase's batch and end logs.
PHASE_PREFIXES = {"train": "", "valid": "val_", "test": "test_"}


@dataclass
class LoopState:
    """Where the loop is, readable by callbacks as ``model.state``.

    Attributes:
        phase: 'train', 'valid', 'test', 'predict', or None between runs.
        epoch: the current epoch number (from 1).
        batch: the current batch number in the phase (from 1).
        global_step: training batches processed since the model was created.
        optimizer_steps: optimizer updates applied since the model was created (fewer than
            ``global_step`` with ``batches_per_step > 1``): what per-step LR schedules count.
        tracker: the running values of the current phase (read with ``tracker.running_logs()``).
        batches_per_step: the ``batches_per_step`` of the current ``fit`` (batches per optimizer update).
        learning_rates: the learning rates the last training epoch ended with (``{'lr': ...}``, or
            ``lr_group_i`` / ``lr_<name>`` keys), read before ``on_epoch_end`` can step an epoch scheduler.
            The epoch logs carry no ``lr`` (Poutyne's contract); loggers write these beside them.
    """

    phase: str | None = None
    epoch: int = 0
    batch: int = 0
    global_step: int = 0
    optimizer_steps: int = 0
    batches_per_step: int = 1
    tracker: MetricTracker | None = field(default=None, repr=False)
    # The random generators' states when the current training epoch began, before its data source was
    # iterated: a mid-epoch resume replays the source's shuffle from them.
    epoch_rng: dict[str, Any] | None = field(default=None, repr=False)
    # True from the end of an epoch (its logs complete) until the next one begins.
    epoch_done: bool = False
    learning_rates: dict[str, float] = field(default_factory=dict)

    def state_dict(self) -> dict[str, Any]:
        """The loop position, for checkpoints."""
        return {
            "epoch": self.epoch,
            "batch": self.batch,
            "global_step": self.global_step,
            "optimizer_steps": self.optimizer_steps,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restores :meth:`state_dict`."""
        self.epoch, self.batch, self.global_step = state["epoch"], state["batch"], state["global_step"]
        self.optimizer_steps = state.get("optimizer_steps", 0)


@dataclass
class ResumePoint:
    """Where an interrupted training epoch continues.

    Attributes:
        epoch: the epoch to continue.
        batch: how many of its training batches were done (0: the epoch starts over).
        tracker: the epoch's running sums and epoch-metric state after those batches.
        epoch_rng: the random generators' states when the epoch began.
        source_state: the position a stateful source reported at the checkpoint (a torchdata
            ``StatefulDataLoader``'s ``state_dict()``...), from which it continues; None for the others.
    """

    epoch: int
    batch: int
    tracker: dict[str, Any] | list[dict[str, Any]] | None = None
    epoch_rng: dict[str, Any] | None = None
    source_state: dict[str, Any] | None = None
    # The checkpoint's global batch (W x per-process batch) and W: a resume on W' processes must keep the former.
    global_batch: int | None = None
    saved_world_size: int = 1


class Loop:
    """Runs phases for one :class:`Steps`, with one set of metrics.

    Args:
        steps: the per-batch steps.
        batch_metrics: averaged over batches, weighted by batch size.
        epoch_metrics: accumulated over the phase.
        owner: the object whose ``stop_training`` attribute callbacks set to stop (the Model).
    """

    def __init__(
        self,
        steps: Steps,
        batch_metrics: list[BatchMetric],
        epoch_metrics: list[EpochMetric],
        owner: Any,
    ) -> None:
        self.steps = steps
        self.batch_metrics = batch_metrics
        self.epoch_metrics = epoch_metrics
        self.owner = owner
        self.state = LoopState()
        # Set by Model.restore_training_state; consumed by the next fit, whose first epoch must match.
        self.pending_resume: ResumePoint | None = None
        # The training source of the current (or last) fit, and its generators' states from a restored
        # training state, applied when the next fit gives the source.
        self.train_source: Any = None
        self.pending_source_generators: list[torch.Tensor] | None = None
        # fitloop's stage functions by name ('train_epoch_start', 'valid_epoch_end'...): see step_context.
        self.epoch_functions: dict[str, Callable[..., Any]] = {}

    def _epoch_start(self, phase: str, tracker: MetricTracker) -> None:
        """Calls the phase's epoch-start function, and asks the tracker to keep outputs for its epoch end."""
        tracker.collect = f"{phase}_epoch_end" in self.epoch_functions
        start = self.epoch_functions.get(f"{phase}_epoch_start")
        if start is not None:
            start(self._context(phase))

    def _epoch_end(self, phase: str, tracker: MetricTracker, logs: dict[str, Any]) -> dict[str, Any]:
        """Adds what the phase's epoch-end function computes from its steps' outputs to the logs."""
        end = self.epoch_functions.get(f"{phase}_epoch_end")
        if end is None:
            return logs
        extra = end(self._context(phase), StepOutputs(tracker.outputs, tracker.output_sizes))
        tracker.outputs, tracker.output_sizes = [], []
        if extra is None:
            return logs
        if not isinstance(extra, Mapping):
            raise TypeError(
                f"`{phase}_epoch_end` must return a dict of values to log, or None. Received a {type(extra).__name__}."
            )
        return {**logs, **{key: _to_number(value) for key, value in extra.items()}}

    def _context(self, phase: str) -> StepContext:
        context = self.steps.context
        context.phase, context.epoch, context.global_step = phase, self.state.epoch, self.state.global_step
        context.batch_number = self.state.batch
        return context

    def new_tracker(self, with_loss: bool = True, source: Any = None, with_epoch_metrics: bool = True) -> MetricTracker:
        """A fresh tracker for a phase, made visible to callbacks as ``state.tracker``.

        ``with_epoch_metrics=False`` leaves the epoch metrics out (``train_on_batch`` and
        ``evaluate_on_batch`` report the loss and batch metrics only, as in Poutyne).

        When the phase's source holds its targets in memory (``fit(x, y)``, ``evaluate(x, y)``), they are
        all checked once at the first batch, and class labels that are all >= 0 let counts metrics track
        hits alone (nothing can equal a negative ignored label).
        """
        self.steps.all_targets = targets = getattr(source, "targets", None)
        epoch_metrics = self.epoch_metrics if with_epoch_metrics else []
        valid = _all_class_labels(targets)
        tracker = MetricTracker(self.batch_metrics, epoch_metrics, with_loss=with_loss, targets_valid=valid)
        tracker.reset(targets_valid=valid)
        self.state.tracker = tracker
        return tracker

    def fit(
        self,
        train: Iterable[Any],
        valid: Iterable[Any] | None,
        *,
        epochs: int,
        initial_epoch: int,
        batches_per_step: int,
        callbacks: CallbackList,
    ) -> list[dict[str, Any]]:
        """Trains from ``initial_epoch`` to ``epochs`` (inclusive); returns one log dict per epoch."""
        history: list[dict[str, Any]] = []
        resume, self.pending_resume = self.pending_resume, None
        if resume is not None and resume.epoch != initial_epoch:
            raise RuntimeError(
                f"The restored training state continues epoch {resume.epoch}, but fit starts at epoch "
                f"{initial_epoch}. Pass initial_epoch={resume.epoch}."
            )
        self.owner.stop_training = False
        self.state.batches_per_step = batches_per_step
        self.train_source = train
        pending, self.pending_source_generators = self.pending_source_generators, None
        for generator, saved in zip(generators_of(train), pending or ()):
            generator.set_state(saved)  # a restored training state: the data's own generators go on
        callbacks.on_train_begin({})
        try:
            self._epochs(train, valid, epochs, initial_epoch, batches_per_step, callbacks, resume, history)
        except BaseException as error:
            # on_train_end is for runs that end well: callbacks learn why this one stops (a logger marks
            # its run failed, a notifier reports it) before the error propagates.
            self.state.phase = None
            callbacks.on_exception(error)
            raise
        self.state.phase = None
        callbacks.on_train_end({})
        return history

    def _epochs(
        self,
        train: Iterable[Any],
        valid: Iterable[Any] | None,
        epochs: int,
        initial_epoch: int,
        batches_per_step: int,
        callbacks: CallbackList,
        resume: ResumePoint | None,
        history: list[dict[str, Any]],
    ) -> None:
        for epoch in range(initial_epoch, epochs + 1):
            self.state.epoch = epoch
            self.state.epoch_done = False
            if hasattr(train, "set_epoch"):
                train.set_epoch(epoch)  # a user's DistributedSampler shuffles by epoch
            callbacks.on_epoch_begin(epoch, {})
            started = time.perf_counter()
            logs = self.train_epoch(train, batches_per_step, callbacks, resume if epoch == initial_epoch else None)
            # Read after the training batches and before on_epoch_end steps any epoch scheduler: the
            # rate the epoch ended with (for an epoch schedule, the one it used throughout). Loggers
            # write it; the logs themselves carry no lr, as in Poutyne.
            self.state.learning_rates = learning_rates(self.steps.optimizer)
            if valid is not None:
                valid_started = time.perf_counter()
                callbacks.on_valid_begin({})
                valid_logs = {
                    f"val_{key}": value for key, value in self.evaluate_phase(valid, "valid", callbacks).items()
                }
                callbacks.on_valid_end({"time": time.perf_counter() - valid_started, **valid_logs})
                logs.update(valid_logs)
            epoch_logs = {"epoch": epoch, "time": time.perf_counter() - started, **logs}
            self.state.epoch_done = True
            callbacks.on_epoch_end(epoch, epoch_logs)
            history.append(epoch_logs)
            if self.owner.stop_training:
                break

    def train_epoch(
        self,
        source: Iterable[Any],
        batches_per_step: int,
        callbacks: CallbackList,
        resume: ResumePoint | None = None,
    ) -> dict[str, Any]:
        """One pass of training batches (or the rest of one, after ``resume``); returns the epoch's logs."""
        steps, state = self.steps, self.state
        custom = steps.train_function
        tracker = self.new_tracker(with_loss=custom is None, source=source)
        state.phase = "train"
        self._epoch_start("train", tracker)
        done = 0
        if resume is not None and resume.batch > 0:
            done = resume.batch
            check_global_batch(source, resume.global_batch, resume.saved_world_size)
            if isinstance(resume.tracker, dict):
                tracker.load_state_dict(resume.tracker)
            elif resume.tracker is not None:  # every old rank's share (an elastic resume)
                tracker.load_merged(resume.tracker)
            state.epoch_rng = resume.epoch_rng
            batches: Iterable[Any] = _continue(source, done, resume.epoch_rng, resume.source_state)
        else:
            state.epoch_rng = capture_rng(generators_of(source))
            batches = source
        begin = callbacks.listeners["on_train_batch_begin"]
        backward_end = callbacks.listeners["on_backward_end"]
        end = callbacks.listeners["on_train_batch_end"]
        # With no batch-end listener that reads them, no batch's metric value is ever read.
        tracker.defer_metrics("on_train_batch_end" not in callbacks.metric_readers)
        accumulate = batches_per_step > 1
        length = source_length(source) if accumulate else None  # None: every micro-batch synchronizes
        # Poutyne's contract: gradients are still readable in on_train_batch_end. They are then cleared
        # when the next step begins; with no listener that may read them, right after the optimizer
        # step instead, so that they do not hold memory during the next forward pass.
        steps.keep_gradients = callbacks.reads_gradients
        steps.network.train(True)
        steps.check_next_targets = True
        steps.data_argument = getattr(source, "argument", "generator")
        batch_number = done
        pending = False  # gradients accumulated but not yet applied
        timer = steps.timer  # the profiler's (trainwell.callbacks.profiler), usually None
        with torch.enable_grad():
            for batch_number, batch in enumerate(batches, done + 1):
                if timer is not None:
                    timer("data")
                state.batch = batch_number
                for method in begin:
                    method(batch_number, {})
                started = time.perf_counter()
                if custom is None:
                    pending = batch_number % batches_per_step != 0
                    # A micro-batch that does not step keeps its gradients local (no_sync), unless it may
                    # be the epoch's last: the step after the loop must see reduced gradients.
                    sync = not (pending and length is not None and batch_number < length)
                    result = steps.forward_backward(batch, accumulate=accumulate, sync=sync)
                    for method in backward_end:
                        method(batch_number)
                    if not pending:
                        steps.optimizer_step()
                else:
                    # The user's step does its own backward and optimizer steps: one update per batch.
                    self._context("train")
                    result = steps.run_custom(custom, batch)
                    for method in backward_end:
                        method(batch_number)
                if not pending:
                    state.optimizer_steps += 1
                values = tracker.update(result.loss, result.y_pred, result.y_true, result.size, result.values)
                if tracker.collect:
                    tracker.outputs.append(result.kept())
                    tracker.output_sizes.append(result.size)
                state.global_step += 1
                if timer is not None:
                    timer("metrics")
                if end:
                    call_batch_end(end, batch_number, result.size, started, tracker, values)
                if timer is not None:
                    timer("callbacks")
                if self.owner.stop_training:
                    break
            if pending:
                steps.optimizer_step()  # the epoch's last, incomplete accumulation still counts
                state.optimizer_steps += 1
        if batch_number == 0:
            raise ValueError(
                f"The training data produced no batch in epoch {state.epoch}: check that it is not empty. A "
                "generator is used up by one pass: give `steps_per_epoch`, or an iterable that restarts."
            )
        logs = {**tracker.compute(), **steps.precision.epoch_logs()}
        return self._epoch_end("train", tracker, logs)

    def evaluate_phase(
        self,
        source: Iterable[Any],
        phase: str,
        callbacks: CallbackList,
        collect: list[tuple[Any, Any]] | None = None,
    ) -> dict[str, Any]:
        """Evaluates every batch of ``source`` without gradients; returns the averaged logs.

        Args:
            source: ``(x, y)`` batches.
            phase: 'valid' or 'test' (selects the callback hooks).
            callbacks: the callbacks to call.
            collect: when given, ``(y_pred, y_true)`` of every batch is appended to it.
        """
        steps, state = self.steps, self.state
        custom = steps.evaluate_function
        prefix = PHASE_PREFIXES[phase]
        tracker = self.new_tracker(with_loss=custom is None, source=source)
        state.phase = phase
        self._epoch_start(phase, tracker)
        begin = callbacks.listeners[f"on_{phase}_batch_begin"]
        end = callbacks.listeners[f"on_{phase}_batch_end"]
        tracker.defer_metrics(f"on_{phase}_batch_end" not in callbacks.metric_readers)
        steps.network.eval()
        steps.check_next_targets = True
        steps.data_argument = getattr(source, "argument", "generator")
        batch_number = 0
        with torch.no_grad():
            for batch_number, batch in enumerate(source, 1):
                state.batch = batch_number
                for method in begin:
                    method(batch_number, {})
                started = time.perf_counter() if end else 0.0  # the batch's time is only for listeners
                if custom is None:
                    result = steps.evaluate(batch)
                else:
                    self._context(phase)
                    result = steps.run_custom(custom, batch)
                values = tracker.update(result.loss, result.y_pred, result.y_true, result.size, result.values)
                if tracker.collect:
                    tracker.outputs.append(result.kept())
                    tracker.output_sizes.append(result.size)
                if collect is not None:
                    collect.append((result.y_pred, result.y_true))
                if end:
                    call_batch_end(end, batch_number, result.size, started, tracker, values, prefix)
        if batch_number == 0:
            raise ValueError(f"The {phase} data produced no batch: check that it is not empty.")
        return self._epoch_end(phase, tracker, tracker.compute())

    def predict_phase(
        self, source: Iterable[Any], callbacks: CallbackList, has_ground_truth: bool
    ) -> tuple[list[Any], list[Any]]:
        """The network's outputs on every batch (and the targets when batches are ``(x, y)`` pairs)."""
        steps, state = self.steps, self.state
        state.phase = "predict"
        state.tracker = None
        begin = callbacks.listeners["on_predict_batch_begin"]
        end = callbacks.listeners["on_predict_batch_end"]
        predictions: list[Any] = []
        truths: list[Any] = []
        steps.network.eval()
        steps.data_argument = getattr(source, "argument", "x")
        steps.check_next_inputs = True
        with torch.no_grad():
            for batch_number, batch in enumerate(source, 1):
                state.batch = batch_number
                for method in begin:
                    method(batch_number, {})
                started = time.perf_counter() if end else 0.0
                if has_ground_truth:
                    x, y = split_batch(batch, getattr(source, "argument", "generator"))
                    truths.append(y)
                else:
                    x = batch
                predictions.append(steps.predict(x))
                for method in end:
                    method(batch_number, {"batch": batch_number, "time": time.perf_counter() - started})
        return predictions, truths


def _to_number(value: Any) -> Any:
    """An epoch-end value as a plain number when it is a scalar (one host read per value per epoch)."""
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return value.item()
    return value


def _all_class_labels(targets: Any) -> bool:
    """Whether in-memory targets are integer labels that are all >= 0 (one reduction per phase)."""
    if not isinstance(targets, torch.Tensor) or targets.is_floating_point() or targets.numel() == 0:
        return False
    return bool(targets.min() >= 0)


def _continue(
    source: Iterable[Any], done: int, epoch_rng: dict[str, Any] | None, source_state: dict[str, Any] | None = None
) -> Iterator[Any]:
    """The batches of an epoch after the first ``done``, drawn as the uninterrupted epoch drew them.

    The source is iterated from the generators' states of the epoch's start (its own generators too, so a
    shuffle and a DataLoader's sampler repeat exactly). A source that can skip (in-memory tensors, a plain
    DataLoader over a map-style dataset: see trainwell.data.loader_reading; a stateful loader given its
    ``source_state``) leaves the done batches out without fetching them and puts the generators back in the
    checkpoint's state before it fetches the next batch; any other source is read forward and the done
    batches dropped, with a warning.
    """
    now = capture_rng()
    generators = generators_of(source)
    if epoch_rng is not None:
        restore_rng(epoch_rng, generators)
    skip = getattr(source, "skip_next_epoch", None)
    skipped = bool(skip(done, now, source_state)) if skip is not None else False
    iterator = iter(source)
    if skipped:
        yield from iterator
        return
    _warn_replay(source, done)
    for _ in range(done):
        next(iterator, None)
    first = next(iterator, _END)
    restore_rng(now)
    if first is _END:
        return
    yield first
    yield from iterator


def _warn_replay(source: Iterable[Any], done: int) -> None:
    if done == 0:
        return
    inner = getattr(source, "source", source)
    warnings.warn(
        f"Resuming this epoch reads and drops the {done} batches done before the checkpoint, because its "
        f"source ({type(inner).__name__}) cannot skip them: only in-memory data and plain DataLoaders over "
        "map-style datasets are advanced without fetching, and stateful ones (a torchdata StatefulDataLoader, an "
        "iterable dataset with state_dict/load_state_dict) continue from their saved position. Pass one of those "
        "to resume without replay.",
        stacklevel=3,
    )


def generators_of(source: Any) -> list[torch.Generator]:
    """The random generators a source owns (a DataLoader's, a sampler's): part of every epoch's state."""
    own = getattr(source, "generators", None)
    return list(own()) if callable(own) else []


_END = object()
