"""The whole training state of a ``Model`` as plain values, and back: what exact resume is built on.

A snapshot holds the weights, the optimizer, the loop's counters, every random generator and, when it
is taken in the middle of an epoch, the epoch's running sums and where its data stopped. Restoring it
and calling ``fit`` again continues as if the run had never stopped. Directories, files and callbacks'
states are the experiment layer's business; everything here is tensors and numbers (no pickle).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from trainwell import distributed
from trainwell.data.sources import per_rank_batch_size
from trainwell.engine.loop import ResumePoint, generators_of
from trainwell.engine.sharded import (
    full_optimizer_state,
    full_state_dict,
    is_fsdp,
    load_full_optimizer_state,
    load_full_state_dict,
)
from trainwell.model import lazy_layers
from trainwell.utils.rng import capture_rng, restore_rng

__all__ = ["SNAPSHOT_FORMAT", "TrainingState"]

SNAPSHOT_FORMAT = 1


class TrainingState:
    """``training_state`` / ``restore_training_state`` (mixed into ``Model``)."""

    network: nn.Module
    optimizer: torch.optim.Optimizer | None
    _loop: Any
    _steps: Any
    _move_optimizer_state: Any

    def training_state(self) -> dict[str, Any]:
        """A snapshot of everything that shapes the rest of training.

        Take it at the end of an epoch (``on_epoch_end``) or after a training batch that completed an
        optimizer step (``on_train_batch_end``); in the middle of a gradient accumulation the partial
        gradients would be lost, so that raises.

        Under torchrun every rank must call it at the same step: the snapshot then also holds every
        rank's random generators and, mid-epoch, every rank's running sums (``snapshot['ranks']``), so
        that each rank resumes its own share exactly. Under ``strategy='fsdp'`` the weights and optimizer
        state are gathered whole into rank 0's snapshot only (the others hold none of them).

        Returns:
            A nested dict of tensors and plain values; ``trainwell.storage.files.save_state`` stores it.
            ``snapshot['next_epoch']`` is the ``initial_epoch`` that continues it.
        """
        state = self._loop.state
        mid_epoch = state.phase == "train" and not state.epoch_done and state.batch > 0
        if not (mid_epoch or state.epoch_done):
            raise RuntimeError(
                "training_state() is taken during fit: at on_epoch_end, or at on_train_batch_end after an "
                f"optimizer step. It was called in phase {state.phase!r}."
            )
        steps = self._steps
        # Gradients left after a step are a pending accumulation, unless they were kept for the callbacks.
        leftover = mid_epoch and not steps.keep_gradients and _has_gradients(self.network)
        if steps.examples_in_step or steps.step_pending or leftover:
            raise RuntimeError(
                "training_state() was called in the middle of a gradient accumulation (batches_per_step > 1): "
                "take it after a batch that completes an optimizer step."
            )
        sharded = is_fsdp(self.network)
        snapshot: dict[str, Any] = {
            "format": SNAPSHOT_FORMAT,
            "next_epoch": state.epoch if mid_epoch else state.epoch + 1,
            # Under FSDP every rank's slices are gathered whole (a collective) and kept by rank 0 alone, which
            # writes the files: they are a single process's.
            "network": full_state_dict(self.network, main_only=True) if sharded else dict(self.network.state_dict()),
            "optimizer": None
            if self.optimizer is None
            else full_optimizer_state(self.optimizer, main_only=True)
            if sharded
            else self.optimizer.state_dict(),
            "loop": state.state_dict(),
            "steps": self._steps.state_dict(),
            "rng": capture_rng(),
            # The training data's own generators (a DataLoader's): the next epochs' shuffles continue.
            "source_generators": [generator.get_state() for generator in generators_of(self._loop.train_source)],
        }
        if mid_epoch:
            snapshot["epoch_in_progress"] = {
                "epoch": state.epoch,
                "batch": state.batch,
                "tracker": state.tracker.state_dict() if state.tracker is not None else None,
                "epoch_rng": state.epoch_rng,
                # A stateful source's position (a torchdata StatefulDataLoader): it continues from here.
                "source_state": _source_state(self._loop.train_source),
                # W x the per-process batch: what an elastic resume on W' processes must keep.
                "global_batch": _global_batch(self._loop.train_source),
            }
        if distributed.is_distributed():
            snapshot["ranks"] = _every_rank(snapshot)
        return snapshot

    def restore_training_state(self, snapshot: dict[str, Any]) -> int:
        """Loads a :meth:`training_state` snapshot; returns the ``initial_epoch`` for the next ``fit``.

        When the snapshot was taken mid-epoch, that ``fit`` continues the epoch at its next batch with
        the epoch's running sums, and the data in the order the interrupted epoch drew it.
        """
        if snapshot.get("format") != SNAPSHOT_FORMAT:
            raise ValueError(
                f"This training state has format {snapshot.get('format')!r}; this trainwell reads format "
                f"{SNAPSHOT_FORMAT}."
            )
        sharded = is_fsdp(self.network)
        if sharded:
            load_full_state_dict(self.network, snapshot["network"])  # each rank keeps its slices
        else:
            self.network.load_state_dict(snapshot["network"])
        lazy_layers.ensure_optimizer(self)  # lazy layers now have the saved shapes: a named optimizer can be built
        if self.optimizer is not None and snapshot["optimizer"] is not None:
            if sharded:
                load_full_optimizer_state(self.optimizer, snapshot["optimizer"])
            else:
                self.optimizer.load_state_dict(snapshot["optimizer"])
            self._move_optimizer_state()
        self._loop.state.load_state_dict(snapshot["loop"])
        self._steps.load_state_dict(snapshot["steps"])
        progress = snapshot.get("epoch_in_progress")
        own = _own_share(snapshot, progress is not None)
        restore_rng(own["rng"])
        self._loop.pending_source_generators = snapshot.get("source_generators") or None
        self._loop.pending_resume = None
        if progress is not None:
            ranks = snapshot.get("ranks")
            self._loop.pending_resume = ResumePoint(
                epoch=int(progress["epoch"]),
                batch=int(progress["batch"]),
                tracker=own["tracker"],
                epoch_rng=own["epoch_rng"],
                source_state=progress.get("source_state"),
                global_batch=progress.get("global_batch"),
                saved_world_size=int(ranks["world_size"]) if ranks else 1,
            )
        return int(snapshot["next_epoch"])


def _every_rank(snapshot: dict[str, Any]) -> dict[str, Any]:
    """Every rank's generators and (mid-epoch) running sums, gathered without pickle (a collective)."""
    progress = snapshot.get("epoch_in_progress") or {}
    own = {"rng": _gatherable(snapshot["rng"]), "epoch_rng": _gatherable(progress.get("epoch_rng"))}
    if progress:
        own["tracker"] = progress["tracker"]
    shares = distributed.all_gather_structure(own)
    return {"world_size": len(shares), "shares": shares}


def _gatherable(rng: dict[str, Any] | None) -> dict[str, Any] | None:
    # Python's cached Gaussian is None or a float depending on the rank's past draws: every rank must lay
    # its state out the same way to gather it, so None travels as NaN.
    if rng is None:
        return None
    python = dict(rng["python"], gauss=math.nan if rng["python"]["gauss"] is None else rng["python"]["gauss"])
    return dict(rng, python=python)


def _own_share(snapshot: dict[str, Any], mid_epoch: bool) -> dict[str, Any]:
    """This rank's generators and running sums: its own share of a torchrun snapshot, else the snapshot's."""
    progress = snapshot.get("epoch_in_progress") or {}
    single = {"rng": snapshot["rng"], "tracker": progress.get("tracker"), "epoch_rng": progress.get("epoch_rng")}
    ranks = snapshot.get("ranks")
    count = distributed.world_size() if distributed.is_distributed() else 1
    saved_count = int(ranks["world_size"]) if ranks else 1
    if saved_count != count:
        if not mid_epoch:
            return single  # at an epoch's end every rank may start from rank 0's generators
        return _elastic_share(ranks["shares"] if ranks else [single])
    if not ranks:
        return single
    return _restored(dict(ranks["shares"][distributed.rank()]))


def _elastic_share(shares: list[dict[str, Any]]) -> dict[str, Any]:
    """This rank's part of a mid-epoch state saved by another number of processes (an elastic resume).

    The data order comes from rank 0's generators (its shuffle is broadcast), so every new rank takes
    rank 0's; the old ranks' running sums go to rank 0, merged, and the others start from zero
    (:meth:`trainwell.engine.tracking.MetricTracker.load_merged`), so that the sums reduced at the end of
    the epoch are the uninterrupted run's.
    """
    share = _restored(dict(shares[0]))
    trackers = [own.get("tracker") for own in shares]
    share["tracker"] = None if any(tracker is None for tracker in trackers) else trackers
    return share


def _restored(share: dict[str, Any]) -> dict[str, Any]:
    """A gathered share with Python's cached Gaussian put back (NaN stood for None)."""
    for key in ("rng", "epoch_rng"):
        if share.get(key) is not None:
            gauss = share[key]["python"]["gauss"]
            python = dict(share[key]["python"], gauss=None if gauss is None or math.isnan(gauss) else gauss)
            share[key] = dict(share[key], python=python)
    share.setdefault("tracker", None)
    return share


def _global_batch(source: Any) -> int | None:
    size = per_rank_batch_size(source)
    return None if size is None else size * (distributed.world_size() if distributed.is_distributed() else 1)


def _has_gradients(network: nn.Module) -> bool:
    # After an optimizer step the gradients are cleared (set to None); anything left is a pending accumulation.
    return any(parameter.grad is not None for parameter in network.parameters())


def _source_state(source: Any) -> Any:
    state_dict = getattr(source, "state_dict", None)
    return state_dict() if callable(state_dict) else None
