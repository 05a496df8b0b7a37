"""``DelayCallback``: starts other callbacks only after some epochs or batches of training."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from trainwell.callbacks.base import Callback, CallbackList

__all__ = ["DelayCallback"]

# The hooks a DelayCallback forwards (Poutyne's set): training's. Validation, evaluation and prediction
# hooks are not forwarded at all, delayed or not.
_FORWARDED = (
    "on_train_begin",
    "on_train_end",
    "on_epoch_begin",
    "on_epoch_end",
    "on_train_batch_begin",
    "on_train_batch_end",
    "on_backward_end",
)


class DelayCallback(Callback):
    """Forwards the training hooks of ``callbacks`` once ``epoch_delay`` epochs and ``batch_delay`` batches have passed.

    ``on_train_begin`` and ``on_train_end`` always reach them. The other training hooks (epoch, batch and
    backward hooks) reach them once the epoch number is above ``epoch_delay`` and more than
    ``batch_delay`` training batches have begun, counted from the start of ``fit``, across epochs. With
    both delays, the later one decides. When the batch delay ends in the middle of an epoch, the delayed
    callbacks get that epoch's ``on_epoch_begin`` just before their first batch. Validation, evaluation
    and prediction hooks are not forwarded (as in Poutyne).

    Args:
        callbacks: one callback or a list of them.
        epoch_delay: epochs to wait (None or 0: none).
        batch_delay: training batches to wait (None or 0: none).

    Attributes:
        callbacks: the delayed callbacks, as a :class:`~trainwell.CallbackList`.

    >>> import torch
    >>> from trainwell import Model
    >>> from trainwell.callbacks.lambda_callback import LambdaCallback
    >>> seen = []
    >>> delayed = DelayCallback(LambdaCallback(on_epoch_end=lambda e, logs: seen.append(e)), epoch_delay=2)
    >>> _ = Model(torch.nn.Linear(2, 1), 'sgd', 'mse').fit(torch.ones(4, 2), torch.ones(4, 1), epochs=4,
    ...                                                    verbose=False, callbacks=[delayed])
    >>> seen
    [3, 4]
    """

    def __init__(
        self,
        callbacks: Callback | Sequence[Callback],
        *,
        epoch_delay: int | None = None,
        batch_delay: int | None = None,
    ) -> None:
        for value, name in ((epoch_delay, "epoch_delay"), (batch_delay, "batch_delay")):
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
                raise ValueError(f"`{name}` must be an int >= 0 or None. Received: {name}={value!r}.")
        self.callbacks = CallbackList(list(callbacks) if isinstance(callbacks, Sequence) else [callbacks])
        self.epoch_delay = epoch_delay or 0
        self.batch_delay = batch_delay or 0
        self.batches_seen = 0
        self.current_epoch = 0
        self._epoch_begun = False  # whether the delayed callbacks were told the current epoch began
        self._restored = False  # a load_state_dict just gave the batch count of an interrupted run

    @property
    def reads_gradients(self) -> bool:  # type: ignore[override]
        """Whether a delayed callback may read the gradients in ``on_train_batch_end``."""
        return self.callbacks.reads_gradients

    def listened_hooks(self) -> list[str]:  # noqa: D102
        hooks = [hook for hook in _FORWARDED if self.callbacks.listeners[hook]]
        # Counting batches and epochs needs these hooks even when no delayed callback listens to them.
        return sorted({*hooks, "on_train_begin", "on_epoch_begin", "on_train_batch_begin"}, key=_FORWARDED.index)

    def has_delay_passed(self) -> bool:
        """Whether the delayed callbacks are receiving the training hooks now."""
        return self.current_epoch > self.epoch_delay and self.batches_seen > self.batch_delay

    def set_model(self, model: Any) -> None:  # noqa: D102
        super().set_model(model)
        self.callbacks.set_model(model)

    def set_params(self, params: dict[str, Any]) -> None:  # noqa: D102
        super().set_params(params)
        self.callbacks.set_params(params)

    def on_train_begin(self, logs: Mapping[str, Any]) -> None:  # noqa: D102
        # A new fit counts its batches from 0, unless it continues an interrupted run (load_state_dict).
        if not self._restored:
            self.batches_seen = 0
        self._restored = False
        self.current_epoch = 0
        self._epoch_begun = False
        self.callbacks.on_train_begin(logs)

    def on_train_end(self, logs: Mapping[str, Any]) -> None:  # noqa: D102
        self.callbacks.on_train_end(logs)

    def on_epoch_begin(self, epoch_number: int, logs: Mapping[str, Any]) -> None:  # noqa: D102
        self.current_epoch = epoch_number
        self._epoch_begun = False
        if self.has_delay_passed():
            self._epoch_begun = True
            self.callbacks.on_epoch_begin(epoch_number, logs)

    def on_epoch_end(self, epoch_number: int, logs: Mapping[str, Any]) -> None:  # noqa: D102
        if self.has_delay_passed():
            self.callbacks.on_epoch_end(epoch_number, logs)

    def on_train_batch_begin(self, batch_number: int, logs: Mapping[str, Any]) -> None:  # noqa: D102
        self.batches_seen += 1
        if self.has_delay_passed():
            if not self._epoch_begun:
                self._epoch_begun = True
                self.callbacks.on_epoch_begin(self.current_epoch, {})
            self.callbacks.on_train_batch_begin(batch_number, logs)

    def on_train_batch_end(self, batch_number: int, logs: Mapping[str, Any]) -> None:  # noqa: D102
        if self.has_delay_passed():
            self.callbacks.on_train_batch_end(batch_number, logs)

    def on_backward_end(self, batch_number: int) -> None:  # noqa: D102
        if self.has_delay_passed():
            self.callbacks.on_backward_end(batch_number)

    def state_dict(self) -> dict[str, Any]:  # noqa: D102
        return {
            "batches_seen": self.batches_seen,
            "callbacks": [callback.state_dict() for callback in self.callbacks.callbacks],
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:  # noqa: D102
        self.batches_seen = int(state["batches_seen"])
        self._restored = True
        for callback, callback_state in zip(self.callbacks.callbacks, state["callbacks"]):
            callback.load_state_dict(callback_state)
