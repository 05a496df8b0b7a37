"""Poutyne's file layout beside trainwell's checkpoints, so that scripts reading Poutyne's files still work.

After each epoch checkpoint the experiment's directory also holds, as in Poutyne:

- ``checkpoint.ckpt``: the last epoch's weights; ``checkpoint_epoch_{epoch}.ckpt``: the weights of every
  epoch that improved the monitored value (of every epoch with ``save_every_epoch=True``), the ones
  ``keep_only_last_best`` drops removed;
- ``checkpoint.optim``: the last epoch's optimizer state (``Model.load_optimizer_state`` reads it);
- ``checkpoint.randomstate``: the random generators' states (``load_random_states`` reads it);
- ``lr_sched_{index}.lrsched``: each learning-rate scheduler's state (its ``load_state`` reads it);
- ``last.epoch``: the number of the last epoch, as text.

Unlike Poutyne's, these files hold no pickle: the weights and the optimizer state are safetensors
(``torch.load`` cannot read them; ``Model.load_weights``, ``Experiment.load_checkpoint`` and any
safetensors reader can). Weights and optimizer state are hard links to the files of the verified
checkpoint (no second copy is written; a copy where the file system has no hard links), so writing
*into* one of them would alter the checkpoint too, which its hashes would then reveal. trainwell itself
never reads these files: it resumes from ``checkpoints/``.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from trainwell.experiment.checkpoints import OPTIMIZER, WEIGHTS
from trainwell.storage.checkpoints import CheckpointInfo
from trainwell.storage.files import atomic_write, save_state

__all__ = ["BEST", "EPOCH", "LAST", "LR_SCHEDULER", "OPTIMIZER_STATE", "RANDOM_STATES", "PoutyneFiles"]

BEST = "checkpoint_epoch_{epoch}.ckpt"
LAST = "checkpoint.ckpt"
OPTIMIZER_STATE = "checkpoint.optim"
RANDOM_STATES = "checkpoint.randomstate"
LR_SCHEDULER = "lr_sched_{index}.lrsched"
EPOCH = "last.epoch"
_BEST_NAME = re.compile(r"checkpoint_epoch_(\d+)\.ckpt")


class PoutyneFiles:
    """Keeps Poutyne's files of ``directory`` in step with its epoch checkpoints (see the module's doc).

    Args:
        directory: the experiment's directory.
        lr_schedulers: the learning-rate scheduler callbacks, saved as ``lr_sched_{index}.lrsched``.
        save_every_epoch: every epoch gets a ``checkpoint_epoch_{epoch}.ckpt``, not only the best ones.
    """

    def __init__(self, directory: Path, lr_schedulers: Sequence[Any], *, save_every_epoch: bool) -> None:
        self.directory = Path(directory)
        self.lr_schedulers = list(lr_schedulers)
        self.save_every_epoch = save_every_epoch

    def __call__(self, checkpoints: Sequence[CheckpointInfo], rng: Mapping[str, Any] | None) -> None:
        """Updates the files after a checkpoint; ``rng``: the generators' states it saved (None: kept as is)."""
        epochs = {
            int(info.meta["epoch"]): info
            for info in checkpoints
            if info.meta.get("epoch_complete") and info.meta.get("epoch") is not None
        }
        if not epochs:
            return
        last = max(epochs)
        _link(epochs[last].path / WEIGHTS, self.directory / LAST)
        if (epochs[last].path / OPTIMIZER).is_file():
            _link(epochs[last].path / OPTIMIZER, self.directory / OPTIMIZER_STATE)
        if rng is not None:
            save_state(self.directory / RANDOM_STATES, _loadable_random_states(rng))
        for index, scheduler in enumerate(self.lr_schedulers):
            if hasattr(scheduler, "save_state"):
                scheduler.save_state(str(self.directory / LR_SCHEDULER.format(index=index)))
        kept = {epoch for epoch, info in epochs.items() if self.save_every_epoch or info.meta.get("was_best")}
        for epoch in sorted(kept):
            _link(epochs[epoch].path / WEIGHTS, self.directory / BEST.format(epoch=epoch))
        for path in self.directory.iterdir():
            match = _BEST_NAME.fullmatch(path.name)
            if match and int(match.group(1)) not in kept:
                path.unlink(missing_ok=True)
        atomic_write(self.directory / EPOCH, f"{last}\n".encode())


def _link(source: Path, target: Path) -> None:
    """``target`` becomes ``source``'s content: a hard link (a copy without them), swapped in atomically."""
    try:
        if target.exists() and os.path.samefile(source, target):
            return
    except OSError:
        pass
    temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        os.link(source, temporary)
    except OSError:  # no hard links here (some network and FUSE file systems): a copy
        atomic_write(target, source.read_bytes())
        return
    try:
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _loadable_random_states(rng: Mapping[str, Any]) -> dict[str, Any]:
    """A checkpoint's generator states in the layout ``load_random_states`` (``trainwell.callbacks``) reads."""
    python, numpy = rng["python"], rng["numpy"]
    states: dict[str, Any] = {
        "python": {"version": python["version"], "state": python["state"], "gauss_next": python["gauss"]},
        "numpy": {
            "algorithm": numpy["kind"],
            "keys": numpy["keys"],
            "position": numpy["position"],
            "has_gauss": numpy["has_gauss"],
            "cached_gaussian": numpy["cached_gaussian"],
        },
        "torch": rng["torch"],
    }
    if "cuda" in rng:
        states["cuda"] = list(rng["cuda"])
    return states
