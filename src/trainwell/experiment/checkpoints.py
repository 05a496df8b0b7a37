"""The experiment's checkpoints: what is saved, when, which are kept, and how a run resumes from them.

Every checkpoint is a full training state (weights, optimizer, loop position, random generators,
callbacks' states, history), written by :mod:`trainwell.storage.checkpoints` as three safetensors files:
``weights.safetensors``, ``optimizer.safetensors`` and ``state.safetensors`` (the rest). Epoch checkpoints are
``epoch_NNNN``; step checkpoints (``checkpoint_every_n_steps``) are ``step_NNNNNNNNN`` and only the
newest is kept. The newest intact checkpoint is where a run resumes.
"""

from __future__ import annotations

import io
import math
import signal
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError

from trainwell import distributed
from trainwell.callbacks.base import Callback
from trainwell.callbacks.monitor import Monitor
from trainwell.storage.checkpoints import (
    CheckpointInfo,
    CorruptCheckpointError,
    list_checkpoints,
    read_checkpoint,
    remove_checkpoint,
    set_aside,
    write_checkpoint,
)
from trainwell.storage.files import load_state, load_tensors, save_state, save_tensors

__all__ = ["FiniteGuard", "RunCheckpointer", "find_resume_point", "load_weights_from", "read_state"]

WEIGHTS = "weights.safetensors"
OPTIMIZER = "optimizer.safetensors"  # checkpoints written before it existed hold the optimizer in STATE
STATE = "state.safetensors"
GROUPS = ("callbacks", "lr_schedulers", "loggers")  # whose states a checkpoint holds, each restored on its own
EXIT_CODES = {2: 130, 15: 143}  # SIGINT, SIGTERM: the shell's 128 + signal number


def read_state(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """A checkpoint's metadata and its full training state (weights included), verified.

    Raises:
        CorruptCheckpointError: the files do not match the manifest, or are not the safetensors files
            trainwell writes.
    """
    meta, files = read_checkpoint(path)
    state = _parse(path, files, STATE, load_state)
    if not isinstance(state, dict):
        raise CorruptCheckpointError(f"The checkpoint {path} is damaged: {STATE} holds no training state.")
    state["network"] = _parse(path, files, WEIGHTS, load_tensors)
    if OPTIMIZER in files:
        state["optimizer"] = _parse(path, files, OPTIMIZER, load_state)
    return meta, state


def load_weights_from(path: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """A checkpoint's metadata and weights, verified (see :func:`read_state`)."""
    meta, files = read_checkpoint(path)
    return meta, _parse(path, files, WEIGHTS, load_tensors)


def _parse(path: Path, files: Mapping[str, bytes], name: str, parse: Callable[[io.BytesIO], Any]) -> Any:
    """Parses one verified file of a checkpoint; anything but trainwell's safetensors is refused, unread."""
    data = files.get(name)
    if data is None:
        raise CorruptCheckpointError(f"The checkpoint {path} is damaged: its manifest does not list {name}.")
    # trainwell writes only safetensors here. Anything else (a pickle, a torch zip) is refused before any
    # parser sees it: load_state would hand it to torch.load, and a checkpoint never needs that.
    header_length = int.from_bytes(data[:8], "little")
    if len(data) < 10 or not 0 < header_length <= len(data) - 8 or data[8:9] != b"{":
        raise CorruptCheckpointError(
            f"The checkpoint {path} is damaged: {name} is not a safetensors file (trainwell checkpoints hold no "
            "pickles), so it was not loaded."
        )
    try:
        return parse(io.BytesIO(data))
    except (ValueError, KeyError, TypeError, SafetensorError) as error:
        raise CorruptCheckpointError(f"The checkpoint {path} is damaged: {name} cannot be parsed ({error}).") from error


def _order(info: CheckpointInfo) -> tuple[int, int]:
    # The newest state: most training steps; at equal steps, the end of the epoch (after validation).
    return int(info.meta.get("global_step", -1)), int(bool(info.meta.get("epoch_complete")))


def find_resume_point(directory: Path) -> tuple[CheckpointInfo, dict[str, Any]] | None:
    """The newest intact checkpoint and its state; damaged ones are set aside with a warning."""
    candidates = []
    for info in list_checkpoints(directory, include_unfinished=True):
        if info.meta:
            candidates.append(info)
            continue
        # Without a readable manifest there is no step to order it by: check it now, so that a damaged
        # newest checkpoint is set aside (and reported) rather than silently skipped.
        try:
            read_checkpoint(info.path)
        except CorruptCheckpointError as error:
            _set_aside(info, error)
            continue
        candidates.append(info)
    for info in sorted(candidates, key=_order, reverse=True):
        try:
            _, state = read_state(info.path)
        except CorruptCheckpointError as error:
            _set_aside(info, error)
            continue
        return info, state
    return None


def _set_aside(info: CheckpointInfo, error: CorruptCheckpointError) -> None:
    aside = set_aside(info.path)
    warnings.warn(
        f"{error} It was moved to {aside.name}; resuming from an older checkpoint, if any.",
        RuntimeWarning,
        stacklevel=4,
    )


class RunCheckpointer(Callback):
    """Writes the experiment's checkpoints; always the last callback, so every other state is up to date.

    Args:
        directory: the checkpoints' directory.
        callbacks: the callbacks whose ``state_dict`` goes in each checkpoint, by group (``GROUPS``: the
            user's callbacks, the learning-rate schedulers, the experiment's loggers); each group is
            restored on its own, so a resumed call may pass other callbacks and still get its schedulers'
            and loggers' states back.
        monitor: what "best" means, or None without monitoring.
        history: every epoch's logs so far (extended here).
        every_n_steps: also checkpoint every n optimizer steps within an epoch.
        save_every_epoch: keep every epoch's checkpoint, not only the last and the best.
        keep_only_last_best: remove a best checkpoint once a better one exists.
        extra: JSON-able values stored with every checkpoint (the configuration's fingerprint).
        writes: whether this process writes the checkpoints (under torchrun only rank 0 does; the
            others take part in gathering the training state, then wait at a barrier).
        after_epoch: called after each epoch checkpoint is written and the old ones pruned, with the
            remaining checkpoints and the random generators' states saved in the newest (Poutyne's file
            layout is kept up to date so; see :mod:`trainwell.experiment.poutyne_files`).
    """

    reads_gradients = False  # its on_train_batch_end never looks at gradients
    reads_batch_metrics = False  # nor at the batch's metric values (a checkpoint reads the tracker's state)

    def __init__(
        self,
        directory: Path,
        callbacks: Mapping[str, Sequence[Callback]],
        monitor: Monitor | None,
        history: list[dict[str, Any]],
        *,
        every_n_steps: int | None,
        save_every_epoch: bool,
        keep_only_last_best: bool,
        extra: Mapping[str, Any],
        writes: bool = True,
        after_epoch: Callable[[list[CheckpointInfo], Mapping[str, Any]], None] | None = None,
    ) -> None:
        unknown = set(callbacks) - set(GROUPS)
        if unknown:
            raise ValueError(f"Unknown callback groups {sorted(unknown)}; the groups are {list(GROUPS)}.")
        self.directory = directory
        self.groups = {group: list(callbacks.get(group, ())) for group in GROUPS}
        self.after_epoch = after_epoch
        self.monitor = monitor
        self.history = history
        self.every_n_steps = every_n_steps
        self.save_every_epoch = save_every_epoch
        self.keep_only_last_best = keep_only_last_best
        self.extra = dict(extra)
        self.writes = writes
        self.interrupted: int | None = None  # the signal number asking to stop
        self.last_train_batch = 0
        self._checked_at: tuple[int, bool] | None = None  # the last (global step, epoch done) found finite

    # -- hooks ----------------------------------------------------------------------------------------------
    def on_train_batch_end(self, batch_number: int, logs: Mapping[str, Any]) -> None:  # noqa: D102
        self.last_train_batch = batch_number  # errors name the training step, not a validation batch
        state = self.model.state
        if self.model._steps.examples_in_step:
            return  # inside a gradient accumulation: wait for the optimizer step
        due = self.every_n_steps is not None and state.optimizer_steps % self.every_n_steps == 0
        if distributed.is_distributed() and distributed.any_rank(self.interrupted is not None):
            # A signal reaches the ranks at different steps: they agree here, so all save the same step.
            self.interrupted = self.interrupted or signal.SIGTERM
        if due or self.interrupted is not None:
            self._save(f"step_{state.global_step:09d}", epoch_complete=False, logs=None)
            self._prune(after_epoch=False)
            self._exit_if_interrupted()

    def on_epoch_end(self, epoch_number: int, logs: Mapping[str, Any]) -> None:  # noqa: D102
        self.history.append(dict(logs))
        improved = False
        if self.monitor is not None:
            improved = self.monitor.update(logs, epoch_number)
        rng = self._save(f"epoch_{epoch_number:04d}", epoch_complete=True, logs=logs, improved=improved)
        self._prune(after_epoch=True)
        if self.writes and self.after_epoch is not None and rng is not None:
            self.after_epoch(list_checkpoints(self.directory), rng)
        self._exit_if_interrupted()

    # -- saving ---------------------------------------------------------------------------------------------
    def check_finite(self) -> None:
        """Raises FloatingPointError if the loss or the weights are NaN or infinite (one host transfer).

        Each training position is checked once: the guard's check at the end of an epoch also serves
        the checkpoint written right after it.
        """
        position = self.model.state.global_step, self.model.state.epoch_done
        if position == self._checked_at:
            return
        self._check_finite(f"epoch {self.model.state.epoch}, step {self.last_train_batch}")
        self._checked_at = position

    def _check_finite(self, where: str) -> None:
        tracker = self.model.state.tracker
        total = tracker.loss_total() if tracker is not None and tracker.with_loss else None
        # Under FSDP each rank checks its own slices (DTensors' local parts); the ranks then agree.
        parameters = [_local(parameter.detach()) for parameter in self.model.network.parameters()]
        checks = [torch.isfinite(parameter).all() for parameter in parameters]
        if total is not None:
            checks.append(torch.isfinite(total).all())
        finite = not checks or bool(torch.stack(checks).all())  # one transfer, only when checkpointing
        if not distributed.any_rank(not finite):  # every rank stops together, or none does
            return
        self.model.stop_training = True
        raise FloatingPointError(
            f"The loss or the weights became NaN or infinite by {where}: training stopped, and the last good "
            f"checkpoint in {self.directory} was kept. Lower the learning rate, check the data for NaN, or "
            "clip gradients (ClipNorm)."
        )

    def _save(
        self, name: str, *, epoch_complete: bool, logs: Mapping[str, Any] | None, improved: bool = False
    ) -> dict[str, Any] | None:
        """Writes one checkpoint; returns the random generators' states it holds (None on other ranks)."""
        state = self.model.state
        self.check_finite()
        snapshot = self.model.training_state()  # under torchrun, every rank takes part (gathered states)
        if not self.writes:
            distributed.barrier()  # rank 0 writes meanwhile
            return None
        weights = snapshot.pop("network")
        optimizer = snapshot.pop("optimizer")
        for group, callbacks in self.groups.items():
            snapshot[group] = [
                {"class": type(callback).__name__, "state": callback.state_dict()} for callback in callbacks
            ]
        snapshot["history"] = self.history
        snapshot["monitor"] = self.monitor.state_dict() if self.monitor is not None else None
        snapshot["extra"] = self.extra
        weights_file, optimizer_file, state_file = io.BytesIO(), io.BytesIO(), io.BytesIO()
        save_tensors(weights_file, weights)
        save_state(optimizer_file, optimizer)
        save_state(state_file, snapshot)
        meta = {
            "epoch": state.epoch,
            "batch": state.batch,
            "global_step": state.global_step,
            "epoch_complete": epoch_complete,
            "was_best": improved,
            "every_epoch": self.save_every_epoch,  # kept for itself, not only to resume (get_saved_epochs)
            "logs": _plain(logs) if logs is not None else None,
        }
        files = {WEIGHTS: weights_file.getvalue(), OPTIMIZER: optimizer_file.getvalue(), STATE: state_file.getvalue()}
        write_checkpoint(self.directory, name, files, meta)
        distributed.barrier()
        return dict(snapshot["rng"])

    def _prune(self, *, after_epoch: bool) -> None:
        """Removes what the newest checkpoint (just written and verified) makes unnecessary.

        Older step checkpoints always go. After an epoch checkpoint, an older epoch's goes too unless it
        is the best, was a best and ``keep_only_last_best`` is off, or ``save_every_epoch`` is on.
        """
        if not self.writes:
            return
        best_epoch = self.monitor.best_epoch if self.monitor is not None else None
        checkpoints = sorted(list_checkpoints(self.directory), key=_order)
        for info in checkpoints[:-1]:
            if info.path.name.startswith("step_"):
                remove_checkpoint(info.path)
                continue
            keep = (
                not after_epoch
                or self.save_every_epoch
                or info.meta.get("epoch") == best_epoch
                or (bool(info.meta.get("was_best")) and not self.keep_only_last_best)
            )
            if not keep:
                remove_checkpoint(info.path)

    def _exit_if_interrupted(self) -> None:
        if self.interrupted is not None:
            code = EXIT_CODES.get(self.interrupted, 128 + self.interrupted)
            if self.writes:
                print(f"Interrupted: checkpoint written to {self.directory}; run the same command again to resume.")
            raise SystemExit(code)

    def restore(self, state: Mapping[str, Any]) -> None:
        """Puts back the callbacks' states, the history and the best value of a checkpoint.

        Each group is restored when it holds the same callbacks (by class, in order) as the checkpoint's;
        otherwise a warning says that group's states were not restored.
        """
        if "loggers" in state:
            saved = {group: list(state.get(group) or []) for group in GROUPS}
        else:  # written before the groups: one list, the groups one after the other
            saved = {"callbacks": list(state.get("callbacks") or [])}
        current = self.groups if "loggers" in state else {"callbacks": [c for g in GROUPS for c in self.groups[g]]}
        for group, callbacks in current.items():
            entries = saved.get(group, [])
            if not self.writes and (group == "loggers" or "loggers" not in state):
                entries = entries[: len(callbacks)]  # rank 0 alone also ran the loggers
            if len(entries) != len(callbacks) or any(
                entry["class"] != type(callback).__name__ for entry, callback in zip(entries, callbacks)
            ):
                warnings.warn(
                    f"The {group.replace('_', ' ')} differ from the checkpoint's "
                    f"({[entry['class'] for entry in entries]} there, {[type(c).__name__ for c in callbacks]} here): "
                    "their states were not restored, so the resumed run may differ from an uninterrupted one.",
                    RuntimeWarning,
                    stacklevel=3,
                )
                continue
            for entry, callback in zip(entries, callbacks):
                callback.load_state_dict(entry["state"])
        self.history[:] = [dict(entry) for entry in state.get("history") or []]
        if self.monitor is not None and state.get("monitor") is not None:
            self.monitor.load_state_dict(state["monitor"])


class FiniteGuard(Callback):
    """Checks the loss and weights at the end of each epoch before any other callback sees the epoch.

    It goes first, so a NaN epoch never reaches ``log.tsv``, TensorBoard or MLflow: the run stops with a
    FloatingPointError naming the epoch and step, and the last good checkpoint is what remains.
    """

    def __init__(self, checkpointer: RunCheckpointer) -> None:
        self.checkpointer = checkpointer

    def on_epoch_end(self, epoch_number: int, logs: Mapping[str, Any]) -> None:  # noqa: D102
        self.checkpointer.check_finite()


def _plain(logs: Mapping[str, Any]) -> dict[str, Any]:
    # JSON has no NaN or infinity: store them as strings, as Monitor does.
    plain: dict[str, Any] = {}
    for key, value in logs.items():
        if isinstance(value, float) and not math.isfinite(value):
            plain[key] = repr(value)
        elif isinstance(value, (int, float, str)) or value is None:
            plain[key] = value
    return plain


def _local(tensor: torch.Tensor) -> torch.Tensor:
    to_local = getattr(tensor, "to_local", None)  # a DTensor (strategy='fsdp'): this rank's slice
    return to_local() if callable(to_local) else tensor
