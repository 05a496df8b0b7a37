"""The callback protocol: which hooks CallbackList calls, on Callback subclasses and on any other object."""

from unittest.mock import ANY, MagicMock, call

import pytest
import torch
from torch import nn

from trainwell import Callback, CallbackList, Model
from trainwell.callbacks.base import HOOKS, listened_hooks


class OnEpochEnd(Callback):
    def __init__(self):
        self.epochs = []

    def on_epoch_end(self, epoch_number, logs):
        self.epochs.append(epoch_number)


class DuckTyped:
    """A callback that is no Callback subclass: every hook it defines is called, whatever it does."""

    def __init__(self):
        self.calls = []

    def set_model(self, model):
        self.calls.append("set_model")

    def on_train_begin(self, logs):
        self.calls.append("train_begin")

    def on_train_batch_begin(self, batch_number, logs):
        self.calls.append(f"batch_begin {batch_number}")

    def on_epoch_end(self, epoch_number, logs):
        self.calls.append(f"epoch_end {epoch_number}")


def _fit(callbacks, **options):
    torch.manual_seed(0)
    x, y = torch.randn(8, 3), torch.randn(8, 1)
    model = Model(nn.Linear(3, 1), "sgd", "mse")
    model.fit(x, y, batch_size=4, epochs=1, verbose=False, callbacks=callbacks, **options)
    return model


def test_a_subclass_listens_to_the_hooks_it_overrides_only():
    assert listened_hooks(OnEpochEnd()) == ["on_epoch_end"]
    callbacks = CallbackList([OnEpochEnd()])
    assert [hook for hook in HOOKS if callbacks.listeners[hook]] == ["on_epoch_end"]


def test_any_object_with_hook_methods_is_called_on_each_of_them():
    duck = DuckTyped()
    _fit([duck])
    assert duck.calls == ["set_model", "train_begin", "batch_begin 1", "batch_begin 2", "epoch_end 1"]


def test_a_mock_of_callback_receives_every_hook_in_poutynes_order():
    mock = MagicMock(spec=Callback)
    x, y = torch.randn(8, 3), torch.randn(8, 1)
    model = Model(nn.Linear(3, 1), "sgd", "mse")
    history = model.fit(x, y, validation_data=(x, y), batch_size=4, epochs=1, verbose=False, callbacks=[mock])
    batch = {"batch": ANY, "size": 4, "time": ANY, "loss": ANY}
    valid_batch = {"batch": ANY, "size": 4, "time": ANY, "val_loss": ANY}
    assert mock.method_calls == [
        call.set_model(model),
        call.set_params({"epochs": 1, "steps": 2, "valid_steps": 2}),
        call.on_train_begin({}),
        call.on_epoch_begin(1, {}),
        *[item for step in (1, 2) for item in (
            call.on_train_batch_begin(step, {}), call.on_backward_end(step), call.on_train_batch_end(step, batch),
        )],
        call.on_valid_begin({}),
        *[item for step in (1, 2) for item in (
            call.on_valid_batch_begin(step, {}), call.on_valid_batch_end(step, valid_batch),
        )],
        call.on_valid_end({"time": ANY, "val_loss": ANY}),
        call.on_epoch_end(1, history[0]),
        call.on_train_end({}),
    ]  # fmt: skip
    assert set(history[0]) == {"epoch", "time", "loss", "val_loss"}


def test_append_and_iteration():
    first, second = OnEpochEnd(), OnEpochEnd()
    callbacks = CallbackList([first])
    callbacks.append(second)
    callbacks.append(DuckTyped())
    assert len(callbacks) == 3 and list(callbacks)[:2] == [first, second]
    callbacks.on_epoch_end(4, {})
    assert first.epochs == second.epochs == [4]
    assert CallbackList(None).callbacks == []


def test_an_object_without_any_hook_is_refused():
    with pytest.raises(TypeError, match="must hold callbacks.*Received an element of type str"):
        CallbackList(["early_stopping"])


def test_gradients_are_kept_only_while_a_batch_end_listener_may_read_them():
    class Reader(Callback):
        def on_train_batch_end(self, batch_number, logs): ...

    class NoReader(Reader):
        reads_gradients = False

    assert not CallbackList([OnEpochEnd(), NoReader()]).reads_gradients
    callbacks = CallbackList([NoReader()])
    callbacks.append(Reader())
    assert callbacks.reads_gradients
