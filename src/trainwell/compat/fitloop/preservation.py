"""Keeping a ``FitLoop``'s models: the pretrained and best weights, ``reset``, and ``save``/``load``.

Everything is written with :mod:`trainwell.storage.files`: safetensors for tensors, JSON for the rest,
through a temporary file, fsync and rename, so a crash never leaves a torn file and nothing is ever
unpickled. fitloop's ``save`` and ``load`` were not implemented; here ``save(path)`` stores the whole
training state (weights, optimizers, schedulers, epoch count, best score and weights, random generators)
and ``load(path)`` continues from it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from trainwell.callbacks.lr_scheduler_base import decode_state, encode_state
from trainwell.compat.fitloop.callbacks import BestWeights
from trainwell.compat.fitloop.metrics import FitLoopMetrics
from trainwell.storage.files import PathOrFile, load_state, load_tensors, save_state, save_tensors
from trainwell.utils.rng import capture_rng, restore_rng

__all__ = ["STATE_FORMAT", "Preservation"]

STATE_FORMAT = "trainwell.compat.fitloop/1"


class Preservation:
    """The pretrained and best weights, ``reset``, ``save`` and ``load`` (mixed into ``FitLoop``)."""

    model: torch.nn.Module
    save_to_disk: bool
    save_path: Path
    pretrained_model_name: str
    best_model_name: str
    epoch_num: int
    metrics: FitLoopMetrics
    configure_optimizer: Any
    criteria: str | None
    pretrained_model_state_dict: dict[str, torch.Tensor] | None = None
    _best: BestWeights | None
    _initial_optimizer_states: list[Any]
    _optimizers: Any
    _schedulers: Any
    _best_weights: Any

    # -- pretrained and best weights -----------------------------------------------------------------------
    def _save_pretrained(self) -> None:
        weights = {name: tensor.detach().to("cpu", copy=True) for name, tensor in self.model.state_dict().items()}
        if self.save_to_disk:
            self.save_path.mkdir(parents=True, exist_ok=True)
            save_tensors(self.save_path / self.pretrained_model_name, weights)
            self.pretrained_model_state_dict = None
        else:
            self.pretrained_model_state_dict = weights

    def _pretrained_weights(self) -> dict[str, torch.Tensor]:
        if self.save_to_disk:
            return load_tensors(self.save_path / self.pretrained_model_name)
        if self.pretrained_model_state_dict is None:
            raise RuntimeError("The pretrained weights were deleted (del_pretrained): there is nothing to reset to.")
        return self.pretrained_model_state_dict

    @property
    def best_model_state_dict(self) -> dict[str, torch.Tensor] | None:
        """The best weights so far (CPU tensors), or None before any validated epoch."""
        return None if self._best is None else self._best.best_weights

    def _configure(self) -> None:
        if self.configure_optimizer is not None:
            self.configure_optimizer(self)

    def reset(self, reset_model: bool = True) -> None:
        """Goes back to the start: ``epoch_num`` 0, no best score, an empty ``M``.

        With ``reset_model``, the pretrained weights and the optimizers' first state are loaded back, then
        ``configure_optimizer`` is called.
        """
        if reset_model:
            self.model.load_state_dict(self._pretrained_weights())
            for optimizer, state in zip(self._optimizers(), self._initial_optimizer_states):
                optimizer.load_state_dict(state)
                optimizer.zero_grad(set_to_none=True)
            self._configure()
        self.epoch_num = 0
        self._best = None
        self.metrics = FitLoopMetrics()

    def del_pretrained(self) -> None:
        """Deletes the pretrained weights (the file with ``save_to_disk``)."""
        if self.save_to_disk:
            (self.save_path / self.pretrained_model_name).unlink(missing_ok=True)
        self.pretrained_model_state_dict = None

    def del_best_model(self) -> None:
        """Deletes the best weights (the file with ``save_to_disk``); the best score starts over."""
        if self.save_to_disk:
            (self.save_path / self.best_model_name).unlink(missing_ok=True)
        self._best = None

    # -- the whole state ----------------------------------------------------------------------------------
    def save(self, path: PathOrFile, only_model: bool = False) -> None:
        """Writes the weights (``only_model``) or the whole training state to ``path``, atomically, without pickle."""
        weights = dict(self.model.state_dict())
        if only_model:
            save_tensors(path, weights)
            return
        state = {
            "format": STATE_FORMAT,
            "model": weights,
            "optimizers": [optimizer.state_dict() for optimizer in self._optimizers()],
            "schedulers": [encode_state(scheduler.state_dict(), "lr_scheduler") for scheduler in self._schedulers()],
            "epoch_num": self.epoch_num,
            "criteria": self.criteria,
            "best": None if self._best is None else encode_state(self._best.state_dict(), "best"),
            "rng": capture_rng(),
        }
        save_state(path, state)

    def load(self, path: PathOrFile) -> None:
        """Loads what :meth:`save` wrote.

        A whole state continues training as if it had not stopped; weights only are loaded, then
        ``configure_optimizer`` is called.
        """
        state = load_state(path)
        if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
            if not isinstance(state, dict) or not all(isinstance(value, torch.Tensor) for value in state.values()):
                raise ValueError(
                    "The file holds neither a FitLoop state (FitLoop.save) nor weights (save(only_model=True))."
                )
            self.model.load_state_dict(state)
            self._configure()
            return
        self.model.load_state_dict(state["model"])
        optimizers, schedulers = self._optimizers(), self._schedulers()
        if len(state["optimizers"]) != len(optimizers) or len(state["schedulers"]) != len(schedulers):
            raise ValueError(
                f"This state holds {len(state['optimizers'])} optimizer(s) and {len(state['schedulers'])} "
                f"scheduler(s); this FitLoop has {len(optimizers)} and {len(schedulers)}. Build the FitLoop as it was."
            )
        for optimizer, saved in zip(optimizers, state["optimizers"]):
            optimizer.load_state_dict(saved)
        for scheduler, saved in zip(schedulers, state["schedulers"]):
            scheduler.load_state_dict(decode_state(saved))
        self.epoch_num = int(state["epoch_num"])
        self._best = None
        if state["best"] is not None and self.criteria == state["criteria"]:
            self._best_weights().load_state_dict(decode_state(state["best"]))
        restore_rng(state["rng"])
