"""fitloop's ``LoopState``: what a stage function receives (``state.batch``, ``state.model``, ``state['key']``...).

One state per phase (``'train'``, ``'valid'``, ``'test'``) per run. A stage function reads the batch, the
FitLoop's objects (any attribute of the ``FitLoop`` is an attribute of the state: ``state.optimizer``,
``state.loss_function``, ``state.device``...) and, in an epoch-end function, ``state['key']``: the values
the phase's batch steps returned under ``key`` over the epoch, stacked into one tensor. Those values are
trainwell's :class:`~trainwell.engine.step_outputs.StepOutputs`, kept by the loop (on the device) and
part of a mid-epoch checkpoint.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

__all__ = ["LoopState", "keep_step_output"]


class LoopState:
    """The state of one phase, as fitloop's stage functions read it.

    Attributes:
        phase: ``'train'``, ``'valid'`` or ``'test'``.
        batch_num: the batch number in the epoch (from 1).
        epoch_num: the epoch's index in the current ``fit`` (from 0).
        batch_size: the current batch's size.
        size: the number of examples of the phase's dataset; in an epoch-end function, the number of
            examples the epoch actually went through (the same, unless batches were dropped or limited).
        batches: the number of batches of the phase's loader (None when unknown).
        is_train, is_test: whether the run trains (not a sanity check or profile), whether it tests.
        context: trainwell's :class:`~trainwell.engine.step_context.StepContext` (autocast, optimizer_step...).
        outputs: in an epoch-end function, the epoch's :class:`~trainwell.engine.step_outputs.StepOutputs`.
    """

    def __init__(
        self,
        phase: str,
        floop: Any,
        loader: Any,
        *,
        no_cast: bool = False,
        is_train: bool = True,
        is_test: bool = False,
    ) -> None:
        self._floop = floop
        self._no_cast = no_cast
        self._batch: Any = ()
        self.phase = phase
        self.batch_num = 0
        self.epoch_num = 0
        self.batch_size = 0
        self.size = _dataset_size(loader)
        self.batches = _length(loader)
        self.is_train = is_train
        self.is_test = is_test
        self.context: Any = None
        self.outputs: Any = None

    def __getattr__(self, name: str) -> Any:
        # Only called for names the state itself lacks: the FitLoop's attributes (optimizer, loss_function...).
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._floop, name)

    def __repr__(self) -> str:
        return f"<LoopState phase={self.phase!r} epoch_num={self.epoch_num} batch_num={self.batch_num}>"

    @property
    def model(self) -> Any:
        """The network, as the loop calls it."""
        if self.context is not None:
            return self.context.network
        return self._floop.model

    @property
    def batch(self) -> Any:
        """The current batch, on the device: floating tensors in the FitLoop's ``dtype``, integers as ``long``."""
        if self._no_cast:
            return self._batch
        dtype = getattr(self._floop, "dtype", None)
        if isinstance(self._batch, (tuple, list)):
            return tuple(_cast(item, dtype) for item in self._batch)
        return _cast(self._batch, dtype)

    def __getitem__(self, key: str) -> Any:
        """The values the batch steps returned under ``key`` this epoch, stacked (a float tensor when numeric)."""
        if self.outputs is None:
            raise KeyError(
                f"state[{key!r}] holds what the {self.phase} steps returned over the epoch: it is read in the "
                f"epoch-end function ({self.phase}_epoch_end), once the epoch's steps are done."
            )
        value = self.outputs[key]
        if isinstance(value, torch.Tensor) and not value.is_complex():
            return value.float()
        return value

    # -- what the FitLoop tells the state ---------------------------------------------------------------
    def begin_epoch(self, context: Any, epoch_num: int) -> None:
        """An epoch of this phase starts."""
        self.context = context
        self.epoch_num = epoch_num
        self.batch_num = 0
        self.outputs = None

    def begin_batch(self, context: Any, batch: Any) -> None:
        """A batch step is about to run on ``batch`` (already on the device)."""
        self.context = context
        self.batch_num = context.batch_number
        self._batch = batch
        self.batch_size = _batch_size(batch)

    def end_epoch(self, context: Any, outputs: Any) -> None:
        """The epoch's steps are done: ``outputs`` holds what they returned."""
        self.context = context
        self.outputs = outputs
        self.size = outputs.size


def keep_step_output(output: Any, phase: str) -> dict[str, Any] | None:
    """What a fitloop step returned, as trainwell keeps it for the epoch end without logging it per batch.

    Numbers and 0-d tensors become 1-element tensors, so that trainwell stacks them over the epoch
    instead of averaging them into the logs (fitloop's values, such as ``loss * batch_size``, are sums
    for the epoch-end function to combine, not per-batch metrics).

    >>> keep_step_output({'running_loss': 2.5, 'hits': torch.tensor(3)}, 'train')
    {'running_loss': tensor([2.5000]), 'hits': tensor([3])}
    """
    if output is None:
        return None
    if not isinstance(output, Mapping):
        raise TypeError(
            f"`{phase}_step` must return a dict of values to track, such as {{'running_loss': ...}}, or None. "
            f"Received a {type(output).__name__}."
        )
    kept: dict[str, Any] = {}
    for key, value in output.items():
        if isinstance(value, torch.Tensor) and value.dim() == 0:
            kept[key] = value.detach().reshape(1)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            kept[key] = torch.tensor([float(value)])
        else:
            kept[key] = value
    return kept


def _cast(item: Any, dtype: Any) -> Any:
    if not isinstance(item, torch.Tensor):
        return item
    if item.is_floating_point():
        return item if dtype is None or item.dtype == dtype else item.to(dtype)
    if item.dtype != torch.bool and not item.is_complex():
        return item.long()
    return item


def _batch_size(batch: Any) -> int:
    first = batch[0] if isinstance(batch, (tuple, list)) and batch else batch
    return int(first.shape[0]) if isinstance(first, torch.Tensor) and first.dim() > 0 else 1


def _dataset_size(loader: Any) -> int | None:
    dataset = getattr(loader, "dataset", None)
    try:
        return len(dataset) if dataset is not None else None
    except TypeError:  # an IterableDataset
        return None


def _length(loader: Any) -> int | None:
    try:
        return len(loader)
    except TypeError:
        return None
