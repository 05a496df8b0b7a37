"""``LambdaCallback``: a callback made of plain functions, for one-off hooks without a class."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from trainwell.callbacks.base import HOOKS, Callback

__all__ = ["LambdaCallback"]


class LambdaCallback(Callback):
    """Calls the functions given for the hooks of the same name; every other hook does nothing.

    Each function receives the hook's arguments (``on_epoch_end(epoch_number, logs)``,
    ``on_train_begin(logs)``, ``on_backward_end(batch_number)``...). Only the hooks given are
    listened to, so a ``LambdaCallback`` without batch functions costs nothing per batch.

    Args:
        **hooks: functions keyed by hook name (``on_epoch_end=...``). An unknown name raises.

    >>> import torch
    >>> from trainwell import Model
    >>> losses = []
    >>> record = LambdaCallback(on_epoch_end=lambda epoch, logs: losses.append(logs['loss']))
    >>> model = Model(torch.nn.Linear(2, 2), 'sgd', 'cross_entropy')
    >>> _ = model.fit(torch.randn(8, 2), torch.zeros(8, dtype=torch.long), epochs=2, verbose=False, callbacks=[record])
    >>> len(losses)
    2
    """

    def __init__(self, **hooks: Callable[..., Any] | None) -> None:
        for name, function in hooks.items():
            if name not in HOOKS:
                raise TypeError(f"LambdaCallback got an unknown hook {name!r}. Valid hooks: {', '.join(HOOKS)}.")
            if function is not None and not callable(function):
                raise TypeError(f"`{name}` must be a function. Received: {name} of type {type(function).__name__}.")
        self.hooks = {name: function for name, function in hooks.items() if function is not None}
        for name, function in self.hooks.items():
            setattr(self, name, function)  # an instance attribute shadows the no-op hook of the class

    def listened_hooks(self) -> list[str]:
        """The hooks this callback has a function for (all ``CallbackList`` subscribes to)."""
        return list(self.hooks)
