"""The callback protocol: hooks the loop calls around training, evaluation and prediction.

Order of the training hooks, per epoch::

    on_epoch_begin
      on_train_batch_begin -> on_backward_end -> on_train_batch_end      (each batch)
      on_valid_begin, on_valid_batch_begin/end..., on_valid_end           (when there is validation data)
    on_epoch_end

wrapped in ``on_train_begin`` / ``on_train_end``. ``evaluate*`` calls the ``on_test_*`` hooks and
``predict*`` the ``on_predict_*`` hooks.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from trainwell.optimizers import learning_rates

__all__ = [
    "HOOKS",
    "Callback",
    "CallbackList",
    "epoch_learning_rates",
    "listened_hooks",
    "with_learning_rates",
]

HOOKS = (
    "on_train_begin",
    "on_train_end",
    "on_exception",
    "on_epoch_begin",
    "on_epoch_end",
    "on_train_batch_begin",
    "on_train_batch_end",
    "on_backward_end",
    "on_valid_begin",
    "on_valid_end",
    "on_valid_batch_begin",
    "on_valid_batch_end",
    "on_test_begin",
    "on_test_end",
    "on_test_batch_begin",
    "on_test_batch_end",
    "on_predict_begin",
    "on_predict_end",
    "on_predict_batch_begin",
    "on_predict_batch_end",
)


class Callback:
    """Base class of every callback: each hook does nothing until overridden.

    Attributes:
        model: the :class:`~trainwell.Model` being run, set by :meth:`set_model`.
        params: run parameters (``epochs``, ``steps``, ``valid_steps``...), set by :meth:`set_params`.
        reads_gradients: whether ``on_train_batch_end`` may read the parameters' gradients (True by
            default, as Poutyne promises). While a listener may, the gradients of a step are kept until
            the next step begins; a callback that never reads them sets False, so that they are freed
            right after the optimizer step.
        reads_batch_metrics: whether the batch-end hooks may read the loss and metric values of their
            ``logs`` (True by default). While no listener of a phase's batch-end hook may, additive
            metrics such as accuracy are computed once for a group of batches instead of per batch; a
            callback that only reads ``batch``, ``size`` and ``time`` (or the tracker's running values)
            sets False. A value read anyway is still right, only computed again for that batch.

    A public method whose name starts with ``on_`` but is no known hook triggers a warning when the
    callback is created, because a misspelled hook is otherwise silently never called.

    >>> class Printer(Callback):
    ...     def on_epoch_end(self, epoch_number, logs):
    ...         print(epoch_number, round(logs['loss'], 2))
    """

    model: Any = None
    params: dict[str, Any]
    reads_gradients: bool = True
    reads_batch_metrics: bool = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        unknown = [name for name in vars(cls) if name.startswith("on_") and name not in HOOKS]
        for name in unknown:
            close = [hook for hook in HOOKS if _similar(name, hook)]
            hint = f" Did you mean {close[0]!r}?" if close else ""
            warnings.warn(
                f"{cls.__name__}.{name} is not a callback hook and will never be called.{hint}",
                stacklevel=2,
            )

    def set_model(self, model: Any) -> None:
        """Gives the callback the model it runs with."""
        self.model = model

    def set_params(self, params: dict[str, Any]) -> None:
        """Gives the callback the run's parameters (epochs, steps per epoch...)."""
        self.params = params

    def listened_hooks(self) -> list[str]:
        """The hooks to call on this callback: by default, those its class overrides.

        ``CallbackList`` calls nothing else, so a batch hook nobody overrides costs nothing per batch.
        Callbacks that decide their hooks per instance (``LambdaCallback``, ``DelayCallback``) override this.
        """
        return [hook for hook in HOOKS if getattr(type(self), hook) is not getattr(Callback, hook)]

    def state_dict(self) -> dict[str, Any]:
        """What the callback must remember for a resumed run to continue as if never interrupted.

        Stateful callbacks (early-stopping counters, best values, schedulers, loggers' positions)
        override this. The values must be tensors, numbers, strings, None, or lists/tuples/dicts of
        them: checkpoints store them without pickle.
        """
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restores what :meth:`state_dict` returned."""

    def on_train_begin(self, logs: Mapping[str, Any]) -> None:
        """Called once before the first epoch."""

    def on_train_end(self, logs: Mapping[str, Any]) -> None:
        """Called once after the last epoch."""

    def on_exception(self, exception: BaseException) -> None:
        """Called when training raises (KeyboardInterrupt included), before the error propagates.

        ``on_train_end`` is not called then: this is where a logger marks its run as failed or a
        notifier reports the error.
        """

    def on_epoch_begin(self, epoch_number: int, logs: Mapping[str, Any]) -> None:
        """Called at the start of each epoch (numbered from 1)."""

    def on_epoch_end(self, epoch_number: int, logs: Mapping[str, Any]) -> None:
        """Called at the end of each epoch with the epoch's training and validation logs."""

    def on_train_batch_begin(self, batch_number: int, logs: Mapping[str, Any]) -> None:
        """Called before each training batch (numbered from 1 in the epoch)."""

    def on_train_batch_end(self, batch_number: int, logs: Mapping[str, Any]) -> None:
        """Called after each training batch with ``batch``, ``size``, ``time``, ``loss`` and metrics."""

    def on_backward_end(self, batch_number: int) -> None:
        """Called after the backward pass, before the optimizer step (gradients are in place)."""

    def on_valid_begin(self, logs: Mapping[str, Any]) -> None:
        """Called before the validation batches of an epoch."""

    def on_valid_end(self, logs: Mapping[str, Any]) -> None:
        """Called after the validation batches of an epoch, with the validation logs."""

    def on_valid_batch_begin(self, batch_number: int, logs: Mapping[str, Any]) -> None:
        """Called before each validation batch."""

    def on_valid_batch_end(self, batch_number: int, logs: Mapping[str, Any]) -> None:
        """Called after each validation batch."""

    def on_test_begin(self, logs: Mapping[str, Any]) -> None:
        """Called before evaluation."""

    def on_test_end(self, logs: Mapping[str, Any]) -> None:
        """Called after evaluation with its logs."""

    def on_test_batch_begin(self, batch_number: int, logs: Mapping[str, Any]) -> None:
        """Called before each evaluation batch."""

    def on_test_batch_end(self, batch_number: int, logs: Mapping[str, Any]) -> None:
        """Called after each evaluation batch."""

    def on_predict_begin(self, logs: Mapping[str, Any]) -> None:
        """Called before prediction."""

    def on_predict_end(self, logs: Mapping[str, Any]) -> None:
        """Called after prediction."""

    def on_predict_batch_begin(self, batch_number: int, logs: Mapping[str, Any]) -> None:
        """Called before each prediction batch."""

    def on_predict_batch_end(self, batch_number: int, logs: Mapping[str, Any]) -> None:
        """Called after each prediction batch."""


def _similar(name: str, hook: str) -> bool:
    import difflib

    return difflib.SequenceMatcher(None, name, hook).ratio() > 0.8


class CallbackList:
    """Calls a hook on every callback that listens to it, in order.

    A :class:`Callback` subclass listens to the hooks its class overrides (``listened_hooks``), so a
    batch hook nobody overrides costs one empty-list check per batch. Any other object with hook
    methods (a duck-typed callback, a ``MagicMock(spec=Callback)``) has every hook it defines called,
    as Poutyne does.

    >>> calls = []
    >>> class Recorder(Callback):
    ...     def on_epoch_end(self, epoch_number, logs):
    ...         calls.append(epoch_number)
    >>> callbacks = CallbackList([Recorder()])
    >>> callbacks.on_epoch_end(1, {})
    >>> callbacks.append(Recorder())
    >>> callbacks.on_epoch_end(2, {})
    >>> calls, len(list(callbacks))
    ([1, 2, 2], 2)
    """

    def __init__(self, callbacks: Iterable[Any] | None = ()) -> None:
        self.callbacks: list[Any] = []
        self.listeners: dict[str, list[Any]] = {hook: [] for hook in HOOKS}
        # Whether a step's gradients must outlive its optimizer step (see Callback.reads_gradients).
        self.reads_gradients = False
        # The batch-end hooks with a listener that may read a batch's metric values (Callback.reads_batch_metrics).
        self.metric_readers: set[str] = set()
        for callback in callbacks or ():
            self.append(callback)

    def append(self, callback: Any) -> None:
        """Adds ``callback`` after the others.

        Raises:
            TypeError: ``callback`` has neither ``set_model`` nor any hook method.
        """
        hooks = listened_hooks(callback)
        if not hooks and not callable(getattr(callback, "set_model", None)):
            raise TypeError(
                f"`callbacks` must hold callbacks (objects with hook methods such as on_epoch_end). Received an "
                f"element of type {type(callback).__name__}; subclass trainwell.Callback."
            )
        self.callbacks.append(callback)
        for hook in hooks:
            self.listeners[hook].append(getattr(callback, hook))
        if "on_train_batch_end" in hooks and getattr(callback, "reads_gradients", True) is not False:
            self.reads_gradients = True
        if getattr(callback, "reads_batch_metrics", True) is not False:
            self.metric_readers.update(hook for hook in hooks if hook.endswith("_batch_end"))

    def __iter__(self) -> Iterator[Any]:
        return iter(self.callbacks)

    def __len__(self) -> int:
        return len(self.callbacks)

    def set_model(self, model: Any) -> None:
        """Gives every callback the model."""
        for callback in self.callbacks:
            setter = getattr(callback, "set_model", None)
            if setter is not None:
                setter(model)

    def set_params(self, params: dict[str, Any]) -> None:
        """Gives every callback the run's parameters."""
        for callback in self.callbacks:
            setter = getattr(callback, "set_params", None)
            if setter is not None:
                setter(params)

    def call(self, hook: str, *args: Any) -> None:
        """Calls ``hook`` with ``args`` on every callback that listens to it."""
        for method in self.listeners[hook]:
            method(*args)

    def on_exception(self, exception: BaseException) -> None:
        """Tells every listening callback that the run raised ``exception``.

        A callback's own error here only warns, so that every callback hears of the failure and the
        original error is the one that propagates.
        """
        for method in self.listeners["on_exception"]:
            try:
                method(exception)
            except Exception as error:
                owner = getattr(method, "__self__", method)
                warnings.warn(
                    f"{type(owner).__name__}.on_exception raised {type(error).__name__}: {error} while "
                    f"handling {type(exception).__name__}; the original error propagates.",
                    stacklevel=2,
                )

    def __getattr__(self, hook: str) -> Any:
        if hook in HOOKS:
            return lambda *args: self.call(hook, *args)
        raise AttributeError(hook)


def listened_hooks(callback: Any) -> list[str]:
    """The hooks the loop calls on ``callback``.

    For a :class:`Callback` subclass, those it listens to (by default, those its class overrides);
    for any other object, every hook it has as a method, whether or not it does anything.

    >>> class OnEpochs(Callback):
    ...     def on_epoch_end(self, epoch_number, logs): ...
    >>> listened_hooks(OnEpochs())
    ['on_epoch_end']
    >>> class DuckTyped:
    ...     def on_train_begin(self, logs): ...
    >>> listened_hooks(DuckTyped())
    ['on_train_begin']
    """
    if issubclass(type(callback), Callback):
        return list(callback.listened_hooks())
    # type(), not isinstance: a MagicMock(spec=Callback) passes isinstance but defines no hook of its own.
    return [hook for hook in HOOKS if callable(getattr(callback, hook, None))]


def epoch_learning_rates(model: Any) -> dict[str, float]:
    """The learning rates to write beside an epoch's logs, which carry none (Poutyne's contract).

    Those the loop read when the epoch's training ended, before an epoch scheduler stepped in
    ``on_epoch_end`` (so every logger writes the rate the epoch used, whatever the callbacks' order); for
    a model the loop does not run, the optimizer's current ones. ``{'lr': ...}`` for one parameter group,
    ``lr_group_<i>`` for several, ``lr_<name>`` for named optimizers.

    >>> import torch
    >>> from trainwell import Model
    >>> epoch_learning_rates(Model(torch.nn.Linear(2, 1), 'sgd', 'mse'))
    {'lr': 0.01}
    """
    rates = getattr(getattr(model, "state", None), "learning_rates", None)
    if isinstance(rates, dict) and rates:
        return dict(rates)
    return learning_rates(getattr(model, "optimizer", None))


def with_learning_rates(model: Any, logs: Mapping[str, Any]) -> dict[str, Any]:
    """An epoch's logs with its learning rates after ``epoch`` and ``time``, the column order loggers write.

    >>> import torch
    >>> from trainwell import Model
    >>> with_learning_rates(Model(torch.nn.Linear(2, 1), 'sgd', 'mse'), {'epoch': 1, 'time': 0.5, 'loss': 2.0})
    {'epoch': 1, 'time': 0.5, 'lr': 0.01, 'loss': 2.0}
    """
    head = {key: logs[key] for key in ("epoch", "time") if key in logs}
    return {**head, **epoch_learning_rates(model), **logs}
