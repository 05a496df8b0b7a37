"""``Model(..., compile=True)``: the network runs through ``torch.compile``, or eagerly when that fails.

Compilation happens on the first call, so a failure (no C++ compiler, an unsupported operation, a
backend error) only shows up there. :class:`CompiledNetwork` then warns once and runs the network
eagerly from that call on, so that a run never dies because compilation is unavailable; a genuine bug
in the network still raises, because the eager call raises it too.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import nn

__all__ = ["CompiledNetwork", "compile_options"]


def compile_options(compile: Any) -> dict[str, Any] | None:
    """The ``torch.compile`` keyword arguments of a ``compile`` argument (None: do not compile).

    >>> compile_options(False), compile_options(True), compile_options({'mode': 'reduce-overhead'})
    (None, {}, {'mode': 'reduce-overhead'})
    """
    if compile is False or compile is None:
        return None
    if compile is True:
        return {}
    if isinstance(compile, dict):
        return dict(compile)
    raise TypeError(
        f"`compile` must be True, False or a dict of torch.compile keyword arguments such as "
        f"{{'mode': 'max-autotune'}}. Received: compile={compile!r}."
    )


class CompiledNetwork(nn.Module):
    """Calls ``torch.compile(network)``, falling back to ``network`` itself with one warning.

    Args:
        network: the module to compile (its parameters are shared, not copied).
        options: keyword arguments for ``torch.compile``.

    >>> net = CompiledNetwork(nn.Linear(2, 1), {'backend': 'no-such-backend'})  # doctest: +SKIP
    """

    def __init__(self, network: nn.Module, options: dict[str, Any]) -> None:
        super().__init__()
        self.module = network
        self.options = options
        self.compiled: Any = None
        self.failed: str | None = None
        try:
            # Kept out of the module tree (object.__setattr__) so state_dict and train()/eval() see only
            # `module`; the compiled wrapper shares its parameters anyway.
            object.__setattr__(self, "compiled", torch.compile(network, **options))
        except Exception as error:  # an unknown backend or option fails here, before any call
            self._fall_back(error)

    def _fall_back(self, error: Exception) -> None:
        self.failed = f"{type(error).__name__}: {error}".splitlines()[0][:300]
        warnings.warn(
            f"torch.compile failed, so the network runs eagerly (results are the same, only slower): "
            f"{self.failed}. Pass compile=False to silence this.",
            RuntimeWarning,
            stacklevel=3,
        )

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """The compiled network's output, or the eager one's once compilation has failed."""
        if self.failed is None:
            try:
                return self.compiled(*args, **kwargs)
            except Exception as error:
                # Run eagerly: if the network itself is broken, this raises the real error.
                output = self.module(*args, **kwargs)
                self._fall_back(error)
                return output
        return self.module(*args, **kwargs)
