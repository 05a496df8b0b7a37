"""Layers that Poutyne users expect next to their networks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

__all__ = ["Lambda"]


class Lambda(nn.Module):
    """Wraps a function as a layer, so that it can sit inside ``nn.Sequential``.

    The function has no parameters of its own; it receives every input of the layer, in order.

    Args:
        func: the function applied by ``forward``, called as ``func(*inputs)``.

    Raises:
        TypeError: ``func`` is not callable.

    >>> import torch
    >>> flatten = Lambda(lambda x: x.flatten(1))
    >>> flatten(torch.zeros(2, 3, 4)).shape
    torch.Size([2, 12])
    >>> Lambda(torch.relu)
    Lambda(func=relu)
    """

    def __init__(self, func: Callable[..., Any]) -> None:
        super().__init__()
        if not callable(func):
            raise TypeError(
                "`func` must be callable, e.g. Lambda(lambda x: x.flatten(1)). "
                f"Received: func={func!r} (type {type(func).__name__})."
            )
        self.func = func

    def forward(self, *inputs: Any) -> Any:
        """Returns ``func(*inputs)``."""
        return self.func(*inputs)

    def extra_repr(self) -> str:
        """Names the wrapped function (``func=<lambda>`` for a lambda), so printed networks stay readable."""
        name = getattr(self.func, "__name__", None)
        return f"func={name}" if isinstance(name, str) else f"func={self.func!r}"
