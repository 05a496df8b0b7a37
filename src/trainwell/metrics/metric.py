"""The unified metric class users subclass: a module that updates a state and computes its value (Poutyne's ``Metric``).

A :class:`Metric` works in both lists of a :class:`~trainwell.Model`:

* in ``batch_metrics``, ``forward(y_pred, y_true)`` adds the batch to the state and returns the batch's
  value (the batch logs); at the end of the epoch the logged value is ``compute()`` on the whole epoch;
* in ``epoch_metrics``, ``update(y_pred, y_true)`` adds each batch and ``compute()`` gives the epoch value.

``reset()`` clears the state before every phase. ``compute()`` may return a number, a 0-d or 1-element
tensor, or several values (a tensor, list, tuple or dict) named by a ``(names, metric)`` pair or by the
metric's ``__name__``. This is the same contract as torchmetrics' ``Metric``, so the objects of either
library work alike.

trainwell adds three optional hooks, used by the loop: :meth:`Metric.compute_on_device` (the value as
tensors left on the device), :meth:`Metric.state_tensors` / :meth:`Metric.load_state_tensors` (the state
saved in a mid-epoch checkpoint) and :meth:`Metric.merge_states` (how the states of several processes
combine under ``torchrun``). Their defaults cover a state kept in registered buffers that add up.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import torch
from torch import nn

__all__ = ["Metric"]


class Metric(ABC, nn.Module):
    """A metric accumulated batch after batch and computed on demand.

    Subclasses implement ``compute`` and ``reset``, plus ``forward`` to be usable as a batch metric and
    ``update`` to be usable as an epoch metric. Keep the state in buffers (``register_buffer``) so that it
    follows the model to its device, is saved in checkpoints and merges across processes by itself; a
    buffer may start as ``None`` and be created at the first batch (its shape known only then).

    Attributes:
        higher_is_better: whether a larger value is better (drives checkpoint monitoring), None when unknown.

    >>> class Total(Metric):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.register_buffer('total', torch.zeros(()))
    ...     def forward(self, y_pred, y_true):
    ...         self.update(y_pred, y_true)
    ...         return y_pred.sum()
    ...     def update(self, y_pred, y_true):
    ...         self.total += y_pred.sum()
    ...     def compute(self):
    ...         return self.total.item()
    ...     def reset(self):
    ...         self.total.zero_()
    >>> metric = Total()
    >>> metric(torch.ones(3), None), metric(torch.ones(2), None), metric.compute()
    (tensor(3.), tensor(2.), 5.0)
    """

    higher_is_better: bool | None = None

    def forward(self, y_pred: Any, y_true: Any) -> Any:
        """Adds the batch to the state and returns the metric's value on this batch (batch metrics)."""
        raise NotImplementedError(
            f"{type(self).__name__} is used as a batch metric but does not implement forward(y_pred, y_true). "
            "Implement it, or pass the metric in `epoch_metrics`."
        )

    def update(self, y_pred: Any, y_true: Any) -> None:
        """Adds the batch to the state (epoch metrics)."""
        raise NotImplementedError(
            f"{type(self).__name__} is used as an epoch metric but does not implement update(y_pred, y_true). "
            "Implement it, or pass the metric in `batch_metrics`."
        )

    @abstractmethod
    def compute(self) -> Any:
        """Returns the metric's value on the state (without changing it)."""

    @abstractmethod
    def reset(self) -> None:
        """Clears the state, before a new phase."""

    # -- hooks of the loop (optional) ----------------------------------------------------------------------

    def compute_on_device(self) -> Any:
        """The value of :meth:`compute`, as tensors left on their device when the metric can.

        The loop reads every epoch value in one transfer, so a subclass whose ``compute`` calls ``.item()``
        may override this to skip those reads. The default is ``compute()``.
        """
        return self.compute()

    def state_tensors(self) -> dict[str, torch.Tensor]:
        """Copies of the state, for a mid-epoch checkpoint: by default every buffer that is set."""
        return {name: buffer.detach().clone() for name, buffer in self.named_buffers()}

    def load_state_tensors(self, state: dict[str, torch.Tensor]) -> None:
        """Restores :meth:`state_tensors`, on the device of the metric's buffers (or of ``state``)."""
        for name, value in state.items():
            current = _buffer(self, name)
            _set_buffer(self, name, value.clone() if current is None else value.to(current.device))

    def merge_states(self, states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        """Combines the states of several processes (each a :meth:`state_tensors`): sums by default."""
        return {key: torch.stack([state[key] for state in states]).sum(0) for key in states[0]}

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any) -> None:
        # A buffer registered as None (created at the first batch) is not known to nn.Module's loader:
        # give it the saved tensor first, so that load_state_dict(state_dict()) works on a fresh metric.
        for name, buffer in self._buffers.items():
            key = prefix + name
            if buffer is None and key in state_dict:
                self._buffers[name] = state_dict[key].detach().clone()
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


def _buffer(module: nn.Module, name: str) -> torch.Tensor | None:
    owner_name, _, leaf = name.rpartition(".")
    owner = module.get_submodule(owner_name) if owner_name else module
    return owner._buffers.get(leaf)


def _set_buffer(module: nn.Module, name: str, value: torch.Tensor) -> None:
    """Sets the (possibly nested, possibly not yet created) buffer ``name`` of ``module``."""
    owner_name, _, leaf = name.rpartition(".")
    owner = module.get_submodule(owner_name) if owner_name else module
    if leaf in owner._buffers:
        owner._buffers[leaf] = value
    else:
        owner.register_buffer(leaf, value)
