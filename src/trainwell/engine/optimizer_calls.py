"""Stepping an optimizer and clearing its gradients, without torch's per-call profiler ranges.

``Optimizer.step`` is wrapped by torch in a function that enters and leaves a ``record_function``
range and runs the step hooks; ``zero_grad`` enters a range too. On a small model on the CPU those
ranges cost more than the update itself (measured: about 12% of a 64-128-10 MLP's training step).
When nothing can observe them (no profiler running, no hook registered, nothing patched onto the
instance) trainwell calls what lies under them; in every other case it makes torch's own call, so a
profiler still shows ``Optimizer.step#...`` and every hook still runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.optim import optimizer as torch_optimizer

__all__ = ["clear_gradients", "step"]

_ZERO_GRAD = torch.optim.Optimizer.zero_grad
_STEP_CODE = torch.optim.Optimizer._optimizer_step_code


def _noop(*args: Any, **kwargs: Any) -> None:
    """What torch's step wrapper wraps below, to learn the wrapper's code object."""


# torch wraps every optimizer class's ``step`` with this function's code (``profile_hook_step``); a
# ``step`` with any other code (another decorator, a future torch) is always called as it is.
_WRAPPER_CODE = getattr(torch.optim.Optimizer.profile_hook_step(_noop), "__code__", None)


def _no_global_hooks() -> bool:
    pre = getattr(torch_optimizer, "_global_optimizer_pre_hooks", None)
    post = getattr(torch_optimizer, "_global_optimizer_post_hooks", None)
    return pre is not None and post is not None and not pre and not post


def _unwrapped_step(optimizer: torch.optim.Optimizer) -> Callable[..., Any] | None:
    """The function under torch's step wrapper, when skipping the wrapper changes nothing observable."""
    if "step" in vars(optimizer):  # patched onto the instance (an LR scheduler's step counter, a user)
        return None
    function = getattr(type(optimizer), "step", None)
    if getattr(function, "__code__", None) is not _WRAPPER_CODE or getattr(function, "hooked", None) is not True:
        return None
    pre = getattr(optimizer, "_optimizer_step_pre_hooks", None)
    post = getattr(optimizer, "_optimizer_step_post_hooks", None)
    if not isinstance(pre, dict) or not isinstance(post, dict) or pre or post or not _no_global_hooks():
        return None
    if getattr(type(optimizer), "_optimizer_step_code", None) is not _STEP_CODE:  # a profiler's entry point
        return None
    return getattr(function, "__wrapped__", None)


def step(optimizer: torch.optim.Optimizer) -> None:
    """``optimizer.step()``, calling the step under torch's profiler range when nothing would see it."""
    function = None if torch.autograd._profiler_enabled() else _unwrapped_step(optimizer)
    if function is None:
        optimizer.step()
    else:
        function(optimizer)


def clear_gradients(optimizers: list[torch.optim.Optimizer]) -> None:
    """``zero_grad(set_to_none=True)`` on each optimizer, without its profiler range where it is torch's."""
    profiling = torch.autograd._profiler_enabled()
    for optimizer in optimizers:
        # getattr on the type: Poutyne's tests hand in mocks, whose type has no zero_grad of torch's.
        if getattr(type(optimizer), "zero_grad", None) is _ZERO_GRAD and not profiling:
            # What torch's zero_grad(set_to_none=True) does for every parameter.
            for group in optimizer.param_groups:
                for parameter in group["params"]:
                    parameter.grad = None
        else:  # an optimizer's own zero_grad, or a profiler that shows it
            optimizer.zero_grad(set_to_none=True)
