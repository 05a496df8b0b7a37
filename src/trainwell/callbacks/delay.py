"""``DelayCallback``: starts other callbacks only after some epochs or batches of training."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from trainwell.callbacks.base import HOOKS, Callback, CallbackList

__all__ = ["DelayCallback"]

# Always forwarded, so the delayed callbacks can set up and tear down (open and close files...).
_ALWAYS = ("on_train_begin", "on_train_end")


class DelayCallback(Callback):
    """Forwards the hooks of ``callbacks`` only once ``epoch_delay`` epochs and ``batch_delay`` batches have passed.

    ``on_train_begin`` and ``on_train_end`` always reach them. An epoch hook reaches them from the first
    epoch after ``epoch_delay`` epochs; a batch hook from the first training batch after
    ``batch_delay`` training batches (counted from the start of training, across epochs). With both
    delays, the later one decides. Evaluation and prediction hooks are never delayed.

    Args:
        callbacks: one callback or a list of them.
        epoch_delay: epochs to wait (None or 0: none).
        batch_delay: training batches to wait (None or 0: none).

    >>> from trainwell.callbacks.lambda_callback import LambdaCallback
    >>> seen = []
    >>> delayed = DelayCallback(LambdaCallback(on_epoch_end=lambda e, logs: seen.append(e)), epoch_delay=2)
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
        self.inner = CallbackList([callbacks] if isinstance(callbacks, Callback) else list(callbacks))
        self.epoch_delay = epoch_delay or 0
        self.batch_delay = batch_delay or 0
        self.batches_seen = 0
        for hook in HOOKS:
            setattr(self, hook, self._forwarder(hook))

    def _active(self) -> bool:
        # Before the first epoch begins, the epoch number is the previous run's: count it as not started.
        epochs_done = max(self.model.state.epoch - 1, 0) if self.model is not None else 0
        return epochs_done >= self.epoch_delay and self.batches_seen >= self.batch_delay

    def _forwarder(self, hook: str) -> Any:
        targets = self.inner.listeners[hook]
        always = hook in _ALWAYS or not hook.startswith(("on_train_batch", "on_epoch", "on_backward", "on_valid"))

        def forward(*args: Any) -> None:
            if always or self._active():
                for method in targets:
                    method(*args)
            if hook == "on_train_batch_end":
                self.batches_seen += 1  # after forwarding: all hooks of one batch see the same count

        return forward

    def listened_hooks(self) -> list[str]:  # noqa: D102
        hooks = [hook for hook in HOOKS if self.inner.listeners[hook]]
        # Counting batches needs the batch hook even when no delayed callback listens to it.
        if self.batch_delay and "on_train_batch_end" not in hooks:
            hooks.append("on_train_batch_end")
        return hooks

    def set_model(self, model: Any) -> None:  # noqa: D102
        super().set_model(model)
        self.inner.set_model(model)

    def set_params(self, params: dict[str, Any]) -> None:  # noqa: D102
        super().set_params(params)
        self.inner.set_params(params)

    def state_dict(self) -> dict[str, Any]:  # noqa: D102
        return {
            "batches_seen": self.batches_seen,
            "callbacks": [callback.state_dict() for callback in self.inner.callbacks],
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:  # noqa: D102
        self.batches_seen = int(state["batches_seen"])
        for callback, callback_state in zip(self.inner.callbacks, state["callbacks"]):
            callback.load_state_dict(callback_state)
