"""EarlyStopping, TerminateOnNaN, LambdaCallback and DelayCallback through real training."""

import math

import pytest
import torch
from torch import nn

from tests.sync_guard import SyncGuard
from trainwell import Model, set_seeds
from trainwell.callbacks.control import EarlyStopping, TerminateOnNaN
from trainwell.callbacks.delay import DelayCallback
from trainwell.callbacks.lambda_callback import LambdaCallback


def _data(n=64):
    set_seeds(0)
    x = torch.randn(n, 4)
    return x, (x[:, 0] > 0).long()


def _model(lr=0.1):
    set_seeds(1)
    network = nn.Linear(4, 2)
    return Model(network, torch.optim.SGD(network.parameters(), lr=lr), "cross_entropy", batch_metrics=["accuracy"])


class ScriptedValue(LambdaCallback):
    """Overwrites the monitored value with a script, so the stopping epoch is known in advance."""

    def __init__(self, values):
        super().__init__(on_epoch_end=lambda epoch, logs: logs.__setitem__("score", values[epoch - 1]))


@pytest.mark.parametrize(
    ("patience", "mode", "values", "stopped"),
    [
        (0, "min", [3.0, 2.0, 2.5, 1.0, 0.5], 3),  # the first epoch without improvement
        (2, "min", [3.0, 2.0, 2.5, 2.1, 1.0], 4),  # two epochs without improvement
        (2, "min", [3.0, 2.0, 2.5, 1.0, 1.5], None),  # improvements reset the counter
        (1, "max", [1.0, 2.0, 1.5, 3.0, 2.0], 3),
    ],
)
def test_early_stopping_stops_on_the_documented_epoch(patience, mode, values, stopped):
    x, y = _data()
    stopper = EarlyStopping(monitor="score", patience=patience, mode=mode)
    history = _model().fit(x, y, epochs=5, verbose=False, callbacks=[ScriptedValue(values), stopper])
    assert len(history) == (stopped or 5)
    assert stopper.stopped_epoch == stopped


def test_early_stopping_min_delta_on_real_validation_loss():
    x, y = _data()
    stopper = EarlyStopping(monitor="val_loss", min_delta=10.0)  # no real epoch improves by 10
    history = _model().fit(x, y, validation_data=(x, y), epochs=5, verbose=False, callbacks=[stopper])
    assert [entry["epoch"] for entry in history] == [1, 2]


def test_early_stopping_restores_the_best_weights_when_it_stops():
    x, y = _data()
    snapshots = {}
    keep = LambdaCallback(on_epoch_end=lambda epoch, logs: snapshots.__setitem__(epoch, model.get_weight_copies()))
    stopper = EarlyStopping(monitor="score", patience=1, restore_best_weights=True)
    model = _model()
    model.fit(x, y, epochs=5, verbose=False, callbacks=[ScriptedValue([3.0, 1.0, 2.0, 0.5, 0.1]), keep, stopper])
    assert stopper.stopped_epoch == 3
    for name, tensor in model.get_weight_copies().items():
        assert torch.equal(tensor, snapshots[2][name])
        assert not torch.equal(tensor, snapshots[3][name])


def test_early_stopping_state_resumes_the_counter():
    x, y = _data()
    values = [3.0, 2.0, 2.5, 2.6, 2.7]
    first = EarlyStopping(monitor="score", patience=3)
    model = _model()
    model.fit(x, y, epochs=3, verbose=False, callbacks=[ScriptedValue(values), first])
    resumed = EarlyStopping(monitor="score", patience=3)
    resumed.load_state_dict(first.state_dict())
    history = model.fit(x, y, epochs=5, initial_epoch=4, verbose=False, callbacks=[ScriptedValue(values), resumed])
    assert [entry["epoch"] for entry in history] == [4, 5] and resumed.stopped_epoch == 5
    assert resumed.monitor.best == 2.0 and resumed.monitor.best_epoch == 2


def test_early_stopping_names_a_missing_monitor():
    x, y = _data()
    with pytest.raises(
        ValueError, match=r"EarlyStopping monitors 'val_acc'.*Available keys: \['acc', 'loss', 'time'\]"
    ):
        _model().fit(x, y, epochs=2, verbose=False, callbacks=[EarlyStopping(monitor="val_acc")])
    with pytest.raises(ValueError, match=r"`patience` must be an int >= 0. Received: patience=-1"):
        EarlyStopping(patience=-1)


def test_terminate_on_nan_stops_in_the_bad_epoch_and_names_it(capsys):
    x, y = _data()
    x[40] = math.nan  # the 2nd batch of 32 holds a NaN sample whatever the shuffle... once shuffled, some batch does
    terminate = TerminateOnNaN()
    history = _model().fit(x, y, epochs=3, batch_size=32, verbose=False, callbacks=[terminate])
    assert len(history) == 1 and terminate.stopped_at is not None and terminate.stopped_at[0] == 1
    assert "Invalid loss, terminating training (epoch 1): the training loss became NaN" in capsys.readouterr().out


def test_terminate_on_nan_can_raise_and_checks_every_n_steps():
    x, y = _data(128)
    x[5] = math.inf
    terminate = TerminateOnNaN(check_every_n_steps=4, raise_error=True)
    with pytest.raises(FloatingPointError, match=r"^Batch [48]: Invalid loss, terminating training \(epoch 1\)"):
        _model().fit(x, y, epochs=2, batch_size=16, verbose=False, callbacks=[terminate])
    assert terminate.stopped_at in [(1, 4), (1, 8)]  # the shuffle decides the batch; checks land on multiples of 4


def test_terminate_on_nan_checks_without_a_sync_between_checks():
    x, y = _data(128)
    model = _model()
    syncs_at_batch_end = []
    guard = SyncGuard(strict=False)
    count = LambdaCallback(on_train_batch_end=lambda batch, logs: syncs_at_batch_end.append(len(guard.calls)))
    with guard:
        model.fit(x, y, epochs=1, batch_size=8, verbose=False, callbacks=[TerminateOnNaN(check_every_n_steps=8), count])
    # TerminateOnNaN runs before `count`: the syncs seen grow only at batches 8 and 16 (after the first
    # batch's one-off target check).
    growth = [batch for batch in range(2, 17) if syncs_at_batch_end[batch - 1] > syncs_at_batch_end[batch - 2]]
    assert growth == [8, 16]


def test_lambda_callback_calls_only_the_given_hooks_in_order():
    x, y = _data(16)
    calls = []
    callback = LambdaCallback(
        on_train_begin=lambda logs: calls.append("begin"),
        on_epoch_end=lambda epoch, logs: calls.append(f"epoch {epoch} {logs['loss'] > 0}"),
        on_backward_end=lambda batch: calls.append(f"backward {batch}"),
        on_train_end=lambda logs: calls.append("end"),
    )
    assert sorted(callback.listened_hooks()) == ["on_backward_end", "on_epoch_end", "on_train_begin", "on_train_end"]
    _model().fit(x, y, epochs=2, batch_size=8, verbose=False, callbacks=[callback])
    epoch = ["backward 1", "backward 2"]
    assert calls == ["begin", *epoch, "epoch 1 True", *epoch, "epoch 2 True", "end"]


def test_lambda_callback_refuses_unknown_hooks():
    with pytest.raises(TypeError, match="unknown hook 'on_epoch_ends'"):
        LambdaCallback(on_epoch_ends=print)
    with pytest.raises(TypeError, match="`on_epoch_end` must be a function"):
        LambdaCallback(on_epoch_end=3)


def test_delay_callback_by_epochs_and_by_batches():
    x, y = _data(32)
    epochs, batches, begins = [], [], []
    inner = LambdaCallback(
        on_train_begin=lambda logs: begins.append(True),
        on_epoch_end=lambda epoch, logs: epochs.append(epoch),
        on_train_batch_end=lambda batch, logs: batches.append((model.state.epoch, batch)),
    )
    model = _model()
    model.fit(x, y, epochs=4, batch_size=8, verbose=False, callbacks=[DelayCallback(inner, epoch_delay=2)])
    assert begins == [True] and epochs == [3, 4] and batches[0] == (3, 1) and len(batches) == 8

    epochs.clear(), batches.clear()
    model = _model()
    model.fit(x, y, epochs=3, batch_size=8, verbose=False, callbacks=[DelayCallback([inner], batch_delay=6)])
    assert batches[0] == (2, 3) and len(batches) == 12 - 6  # batches 7.. of 12
    assert epochs == [2, 3]


def test_delay_callback_state_keeps_the_batch_count():
    delayed = DelayCallback(EarlyStopping(monitor="loss", patience=5), batch_delay=10)
    delayed.batches_seen = 7
    restored = DelayCallback(EarlyStopping(monitor="loss", patience=5), batch_delay=10)
    restored.load_state_dict(delayed.state_dict())
    assert restored.batches_seen == 7
    with pytest.raises(ValueError, match="`epoch_delay` must be an int >= 0 or None. Received: epoch_delay=-2"):
        DelayCallback(EarlyStopping(), epoch_delay=-2)
