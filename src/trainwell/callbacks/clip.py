"""Gradient clipping: ``ClipNorm`` and ``ClipValue``.

Both clip when the step's gradients are final, just before the optimizer runs: after the averaging of
gradient accumulation (``batches_per_step``), so the threshold applies to the gradient of the whole
step, as if it came from one big batch, not to each partial sum.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch

from trainwell.callbacks.base import Callback

__all__ = ["ClipNorm", "ClipValue"]


def _parameter_list(parameters: torch.Tensor | Iterable[torch.Tensor], argument: str = "parameters") -> list[Any]:
    # A generator such as network.parameters() would be exhausted after the first step: keep a list.
    if isinstance(parameters, torch.Tensor):
        return [parameters]
    try:
        listed = list(parameters)
    except TypeError as error:
        raise TypeError(
            f"`{argument}` must be a tensor or an iterable of tensors (e.g. network.parameters()). "
            f"Received: {argument} of type {type(parameters).__name__}."
        ) from error
    if not listed:
        raise ValueError(f"`{argument}` is empty: pass the parameters to clip, e.g. network.parameters().")
    return listed


class _GradientHook(Callback):
    """Runs :meth:`apply` on the gradients of every optimizer step of a ``fit``."""

    def on_train_begin(self, logs: Mapping[str, Any]) -> None:
        hooks = self.model._steps.before_optimizer_step
        if self.apply not in hooks:
            hooks.append(self.apply)

    def on_train_end(self, logs: Mapping[str, Any]) -> None:
        hooks = self.model._steps.before_optimizer_step
        if self.apply in hooks:
            hooks.remove(self.apply)

    def apply(self) -> None:
        """Transforms the gradients in place."""
        raise NotImplementedError


class ClipNorm(_GradientHook):
    """Rescales the gradients so that their total norm is at most ``max_norm`` (``clip_grad_norm_``).

    The norm is computed and applied on the device: no host synchronization per step.

    Args:
        parameters: the parameters whose gradients are clipped (``network.parameters()``).
        max_norm: the largest allowed total norm.
        norm_type: the p of the p-norm (``float('inf')`` for the largest absolute value).

    >>> import torch
    >>> from trainwell import Model
    >>> network = torch.nn.Linear(2, 2)
    >>> model = Model(network, 'sgd', 'cross_entropy')
    >>> _ = model.fit(torch.randn(8, 2), torch.zeros(8, dtype=torch.long), epochs=1, verbose=False,
    ...               callbacks=[ClipNorm(network.parameters(), max_norm=1.0)])
    """

    def __init__(
        self, parameters: torch.Tensor | Iterable[torch.Tensor], max_norm: float, norm_type: float = 2.0
    ) -> None:
        if not isinstance(max_norm, (int, float)) or isinstance(max_norm, bool) or max_norm <= 0:
            raise ValueError(f"`max_norm` must be a positive number. Received: max_norm={max_norm!r}.")
        self.parameters = _parameter_list(parameters)
        self.max_norm = float(max_norm)
        self.norm_type = float(norm_type)

    def apply(self) -> None:  # noqa: D102
        torch.nn.utils.clip_grad_norm_(self.parameters, self.max_norm, norm_type=self.norm_type)


class ClipValue(_GradientHook):
    """Clamps every gradient element to ``[-clip_value, clip_value]`` (``clip_grad_value_``).

    Args:
        parameters: the parameters whose gradients are clipped.
        clip_value: the largest allowed absolute value of a gradient element.
    """

    def __init__(self, parameters: torch.Tensor | Iterable[torch.Tensor], clip_value: float) -> None:
        if not isinstance(clip_value, (int, float)) or isinstance(clip_value, bool) or clip_value <= 0:
            raise ValueError(f"`clip_value` must be a positive number. Received: clip_value={clip_value!r}.")
        self.parameters = _parameter_list(parameters)
        self.clip_value = float(clip_value)

    def apply(self) -> None:  # noqa: D102
        torch.nn.utils.clip_grad_value_(self.parameters, self.clip_value)
