import errno
import json
import os
import random

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from tests.learning_rates import LearningRates
from trainwell import Callback, Model
from trainwell.callbacks.checkpoint import (
    LRSchedulerCheckpoint,
    ModelCheckpoint,
    OptimizerCheckpoint,
    RandomStatesCheckpoint,
    StateCheckpoint,
    load_random_states,
)
from trainwell.callbacks.periodic import PeriodicSaveCallback, PeriodicSaveLambda
from trainwell.storage.files import decode_state, encode_state, load_state

# Values of the 'scripted' metric per epoch: improvements (min) at epochs 1, 2 and 4 only.
SCRIPT = {1: 3.0, 2: 1.0, 3: 2.0, 4: 0.5, 5: 0.7}


def _model(optimizer="sgd", script=SCRIPT):
    """A tiny regression model whose 'scripted' / 'val_scripted' logs follow `script`, epoch by epoch."""
    torch.manual_seed(0)
    holder = {}

    def scripted(y_pred, y_true):
        return torch.tensor(script[holder["model"].state.epoch])

    model = Model(nn.Linear(3, 2), optimizer, "mse", batch_metrics=[scripted])
    holder["model"] = model
    return model


def _data():
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(16, 3, generator=generator)
    return x, x @ torch.randn(3, 2, generator=generator)


def _fit(model, callbacks, epochs, initial_epoch=1):
    x, y = _data()
    return model.fit(
        x,
        y,
        validation_data=(x, y),
        batch_size=8,
        epochs=epochs,
        initial_epoch=initial_epoch,
        verbose=False,
        callbacks=callbacks,
    )


def _files(directory):
    return sorted(os.listdir(directory))


def test_files_are_named_from_the_epoch_logs(tmp_path):
    template = str(tmp_path / "ckpt_{epoch:02d}_{val_loss:.3f}.safetensors")
    history = _fit(_model(), [ModelCheckpoint(template)], epochs=3)
    assert _files(tmp_path) == [f"ckpt_{logs['epoch']:02d}_{logs['val_loss']:.3f}.safetensors" for logs in history]


def test_saved_weights_load_into_a_fresh_network_with_safetensors(tmp_path):
    model = _model()
    _fit(model, [ModelCheckpoint(tmp_path / "last.safetensors")], epochs=2)
    weights = load_file(str(tmp_path / "last.safetensors"))
    fresh = nn.Linear(3, 2)
    fresh.load_state_dict(weights)
    x, _ = _data()
    assert torch.equal(fresh(x), model.network(x))


def test_save_best_only_writes_only_on_improvement(tmp_path):
    checkpoint = ModelCheckpoint(tmp_path / "best_{epoch}.safetensors", monitor="val_scripted", save_best_only=True)
    history = _fit(_model(), [checkpoint], epochs=5)
    best, improved = float("inf"), []
    for logs in history:
        if logs["val_scripted"] < best:
            best, improved = logs["val_scripted"], [*improved, logs["epoch"]]
    assert improved == [1, 2, 4]
    assert _files(tmp_path) == [f"best_{epoch}.safetensors" for epoch in improved]
    assert checkpoint.best_filename == str(tmp_path / "best_4.safetensors")
    assert (checkpoint.monitor.best, checkpoint.monitor.best_epoch) == (0.5, 4)


def test_mode_max_and_keep_only_last_best_leave_one_file(tmp_path):
    checkpoint = ModelCheckpoint(
        tmp_path / "best_{epoch}.safetensors",
        monitor="val_scripted",
        mode="max",
        save_best_only=True,
        keep_only_last_best=True,
    )
    _fit(_model(), [checkpoint], epochs=5)
    # Under 'max', only epoch 1 (3.0) is ever the best.
    assert _files(tmp_path) == ["best_1.safetensors"]
    checkpoint = ModelCheckpoint(
        tmp_path / "min_{epoch}.safetensors", monitor="val_scripted", save_best_only=True, keep_only_last_best=True
    )
    _fit(_model(), [checkpoint], epochs=5)
    assert _files(tmp_path) == ["best_1.safetensors", "min_4.safetensors"]


def test_period_saves_every_nth_epoch(tmp_path):
    _fit(_model(), [ModelCheckpoint(tmp_path / "w_{epoch}.safetensors", period=2)], epochs=5)
    assert _files(tmp_path) == ["w_2.safetensors", "w_4.safetensors"]


def test_restore_best_loads_the_weights_of_the_best_epoch(tmp_path):
    every = ModelCheckpoint(tmp_path / "all" / "w_{epoch}.safetensors")
    best = ModelCheckpoint(
        tmp_path / "best.safetensors", monitor="val_scripted", save_best_only=True, restore_best=True
    )
    model = _model()
    _fit(model, [every, best], epochs=3)  # best at epoch 2
    weights = model.network.state_dict()
    at_best = load_file(str(tmp_path / "all" / "w_2.safetensors"))
    at_end = load_file(str(tmp_path / "all" / "w_3.safetensors"))
    assert all(torch.equal(weights[name], at_best[name]) for name in at_best)
    assert not all(torch.equal(weights[name], at_end[name]) for name in at_end)


def test_restore_best_warns_when_nothing_was_saved(tmp_path):
    checkpoint = ModelCheckpoint(tmp_path / "b.safetensors", monitor="val_nan", save_best_only=True, restore_best=True)
    # A monitored value that is always NaN never improves.
    model = Model(nn.Linear(3, 2), "sgd", "mse", batch_metrics=[("nan", lambda p, t: torch.tensor(float("nan")))])
    x, y = _data()
    with pytest.warns(UserWarning, match="restore_best found no best file"):
        model.fit(x, y, validation_data=(x, y), batch_size=8, epochs=2, verbose=False, callbacks=[checkpoint])
    assert _files(tmp_path) == []


def test_a_failed_write_leaves_the_previous_file_intact(tmp_path, monkeypatch):
    model = _model()
    checkpoints = [
        ModelCheckpoint(tmp_path / "last.safetensors"),
        ModelCheckpoint(tmp_path / "other.safetensors", temporary_filename=tmp_path / "other.tmp"),
    ]
    _fit(model, checkpoints, epochs=1)
    before = {name: (tmp_path / name).read_bytes() for name in _files(tmp_path)}

    def failing_replace(source, target):
        raise OSError(28, "No space left on device")

    for checkpoint in checkpoints:
        monkeypatch.setattr(os, "replace", failing_replace)
        with pytest.raises(OSError, match="No space left"):
            _fit(model, [checkpoint], epochs=2, initial_epoch=2)
        monkeypatch.undo()
    # Same files, same bytes, no temporary file left behind.
    assert {name: (tmp_path / name).read_bytes() for name in _files(tmp_path)} == before


def test_a_failed_best_write_keeps_the_previous_best(tmp_path, monkeypatch):
    checkpoint = ModelCheckpoint(
        tmp_path / "best_{epoch}.safetensors", monitor="val_scripted", save_best_only=True, keep_only_last_best=True
    )
    model = _model()
    _fit(model, [checkpoint], epochs=1)

    def failing_replace(source, target):
        raise OSError("disk failure")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk failure"):
        _fit(model, [checkpoint], epochs=2, initial_epoch=2)
    assert _files(tmp_path) == ["best_1.safetensors"]
    assert (checkpoint.best_filename, checkpoint.monitor.best) == (str(tmp_path / "best_1.safetensors"), 3.0)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root ignores directory permissions")
def test_a_read_only_directory_fails_without_touching_the_file(tmp_path):
    model = _model()
    checkpoint = ModelCheckpoint(tmp_path / "last.safetensors")
    _fit(model, [checkpoint], epochs=1)
    before = (tmp_path / "last.safetensors").read_bytes()
    tmp_path.chmod(0o500)
    try:
        with pytest.raises(PermissionError):
            _fit(model, [checkpoint], epochs=2, initial_epoch=2)
    finally:
        tmp_path.chmod(0o700)
    assert (tmp_path / "last.safetensors").read_bytes() == before


def _run_with_checkpoints(directory, model, epochs, initial_epoch=1, state=None):
    callbacks = [
        ModelCheckpoint(
            directory / "best_{epoch}_{val_scripted:.1f}.safetensors",
            monitor="val_scripted",
            save_best_only=True,
            keep_only_last_best=True,
            restore_best=True,
        ),
        ModelCheckpoint(directory / "every2_{epoch}.safetensors", period=2),
    ]
    if state is not None:
        for callback, callback_state in zip(callbacks, state):
            callback.load_state_dict(callback_state)
    _fit(model, callbacks, epochs=epochs, initial_epoch=initial_epoch)
    # Through the checkpoint encoding (JSON + safetensors): what a resumed run would really read.
    return [decode_state(*encode_state(callback.state_dict())) for callback in callbacks]


def test_state_dict_resumes_exactly_like_an_uninterrupted_run(tmp_path):
    script = {1: 3.0, 2: 1.0, 3: 2.0, 4: 1.5}  # the best epoch comes before the interruption
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    model = _model(script=script)
    final_state = _run_with_checkpoints(whole, model, epochs=4)
    whole_weights = model.get_weight_copies()

    model = _model(script=script)
    state = _run_with_checkpoints(resumed, model, epochs=2)
    json.dumps(encode_state(state)[0])  # storable without pickle
    resumed_state = _run_with_checkpoints(resumed, model, epochs=4, initial_epoch=3, state=state)
    assert (
        _files(whole) == _files(resumed) == ["best_2_1.0.safetensors", "every2_2.safetensors", "every2_4.safetensors"]
    )
    for name in _files(whole):
        assert (whole / name).read_bytes() == (resumed / name).read_bytes()
    best = load_file(str(whole / "best_2_1.0.safetensors"))
    weights = model.get_weight_copies()
    assert all(torch.equal(weights[name], best[name]) and torch.equal(whole_weights[name], best[name]) for name in best)
    assert final_state[0]["best_filename"] == str(whole / "best_2_1.0.safetensors")
    assert resumed_state[0]["best_filename"] == str(resumed / "best_2_1.0.safetensors")
    assert resumed_state[0]["monitor"] == final_state[0]["monitor"] == {"best": 1.0, "best_epoch": 2}


def test_optimizer_checkpoint_loads_back_into_a_new_model(tmp_path):
    model = _model("adam")
    _fit(model, [OptimizerCheckpoint(tmp_path / "optimizer.safetensors")], epochs=2)
    other = _model("adam")
    other.load_optimizer_state(tmp_path / "optimizer.safetensors")
    saved, loaded = model.optimizer.state_dict(), other.optimizer.state_dict()
    assert saved["param_groups"] == loaded["param_groups"]
    for index, state in saved["state"].items():
        assert torch.equal(state["exp_avg"], loaded["state"][index]["exp_avg"])
        assert float(state["step"]) == float(loaded["state"][index]["step"]) == 4


class _StepEachEpoch(Callback):
    """A stand-in LR scheduler callback: steps a torch scheduler at each epoch end."""

    def __init__(self):
        self.scheduler = None
        self.batches = 0

    def on_train_begin(self, logs):
        if self.scheduler is None:
            self.scheduler = torch.optim.lr_scheduler.StepLR(self.model.optimizer, step_size=1, gamma=0.5)

    def on_epoch_end(self, epoch_number, logs):
        self.scheduler.step()

    def state_dict(self):
        return self.scheduler.state_dict()

    def load_state_dict(self, state):
        self.scheduler.load_state_dict(state)


def test_lr_scheduler_checkpoint_drives_a_scheduler_callback_and_saves_its_state(tmp_path):
    scheduler = _StepEachEpoch()
    checkpoint = LRSchedulerCheckpoint(scheduler, tmp_path / "lr_{epoch}.safetensors")
    assert "on_train_batch_end" not in checkpoint.listened_hooks()
    model = _model()
    rates = LearningRates()
    _fit(model, [checkpoint, rates], epochs=2)
    assert rates.values() == [0.01, 0.005]  # stepped once per epoch, not twice
    assert model.optimizer.param_groups[0]["lr"] == 0.0025  # and after the last epoch
    assert load_state(tmp_path / "lr_1.safetensors")["last_epoch"] == 1
    assert load_state(tmp_path / "lr_2.safetensors") == scheduler.scheduler.state_dict()
    assert checkpoint.state_dict()["scheduler"]["last_epoch"] == 2


def test_lr_scheduler_checkpoint_saves_any_object_with_state_dict(tmp_path):
    model = _model()
    scheduler = torch.optim.lr_scheduler.ExponentialLR(model.optimizer, gamma=0.9)
    _fit(model, [LRSchedulerCheckpoint(scheduler, tmp_path / "lr.safetensors")], epochs=1)
    assert load_state(tmp_path / "lr.safetensors") == scheduler.state_dict()
    with pytest.raises(TypeError, match="`lr_scheduler` must have a state_dict"):
        LRSchedulerCheckpoint(0.1, "lr.safetensors")


def test_random_states_checkpoint_restores_every_generator(tmp_path):
    _fit(_model(), [RandomStatesCheckpoint(tmp_path / "random.safetensors")], epochs=2)
    first = (random.random(), np.random.rand(), torch.rand(2))
    load_random_states(tmp_path / "random.safetensors")
    second = (random.random(), np.random.rand(), torch.rand(2))
    assert first[:2] == second[:2] and torch.equal(first[2], second[2])


def test_state_checkpoint_saves_named_objects_and_restores_them(tmp_path):
    model = _model("adam")
    objects = {"network": model.network, "optimizer": model.optimizer}
    _fit(model, [StateCheckpoint(objects, tmp_path / "state.safetensors")], epochs=1)
    assert sorted(load_state(tmp_path / "state.safetensors")) == ["network", "optimizer"]
    fresh = _model("adam")
    restorer = StateCheckpoint({"network": fresh.network, "optimizer": fresh.optimizer}, tmp_path / "unused")
    with open(tmp_path / "state.safetensors", "rb") as fd:
        restorer.restore(fd)
    assert all(torch.equal(a, b) for a, b in zip(fresh.network.parameters(), model.network.parameters()))
    assert fresh.optimizer.state_dict()["state"][0]["step"] == 2
    with pytest.raises(TypeError, match=r"`objects\['x'\]` must have state_dict"):
        StateCheckpoint({"x": 3}, "s.safetensors")


def test_periodic_save_lambda_writes_text_and_restores(tmp_path):
    restored = []
    saver = PeriodicSaveLambda(
        lambda fd, epoch, logs: json.dump({"epoch": epoch, "scripted": logs["val_scripted"]}, fd),
        tmp_path / "logs.json",
        monitor="val_scripted",
        save_best_only=True,
        restore_best=True,
        open_mode="w",
        read_mode="r",
        restore=lambda fd: restored.append(json.load(fd)),
    )
    _fit(_model(), [saver], epochs=3)
    assert json.loads((tmp_path / "logs.json").read_text()) == {"epoch": 2, "scripted": 1.0}
    assert restored == [{"epoch": 2, "scripted": 1.0}]


def test_without_atomic_write_any_open_mode_writes_the_target_directly(tmp_path, capsys):
    appender = PeriodicSaveLambda(
        lambda fd, epoch, logs: fd.write(f"{epoch}\n"),
        tmp_path / "epochs.txt",
        atomic_write=False,
        open_mode="a",
        verbose=True,
    )
    _fit(_model(), [appender], epochs=3)
    assert (tmp_path / "epochs.txt").read_text() == "1\n2\n3\n"
    assert "Epoch 3: saving" in capsys.readouterr().out


def test_a_temporary_file_on_another_file_system_still_replaces_atomically(tmp_path, monkeypatch):
    real_replace = os.replace
    temporary = tmp_path / "elsewhere.tmp"

    def cross_device_replace(source, target):
        if os.fspath(source) == os.fspath(temporary):
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        real_replace(source, target)

    monkeypatch.setattr(os, "replace", cross_device_replace)
    model = _model()
    _fit(model, [ModelCheckpoint(tmp_path / "w.safetensors", temporary_filename=temporary)], epochs=1)
    assert _files(tmp_path) == ["w.safetensors"]
    assert torch.equal(load_file(str(tmp_path / "w.safetensors"))["weight"], model.network.weight)


def test_arguments_are_validated():
    with pytest.raises(ValueError, match=r"`period` must be a positive int. Received: period=0"):
        ModelCheckpoint("w.safetensors", period=0)
    with pytest.raises(TypeError, match="`period` must be a positive int"):
        ModelCheckpoint("w.safetensors", period=1.5)
    with pytest.raises(ValueError, match=r"`restore_best=True` needs `save_best_only=True`.*save_best_only=False"):
        ModelCheckpoint("w.safetensors", restore_best=True)
    with pytest.raises(ValueError, match="`keep_only_last_best=True` needs `save_best_only=True`"):
        ModelCheckpoint("w.safetensors", keep_only_last_best=True)
    with pytest.raises(ValueError, match="`mode` must be 'min', 'max' or 'auto'"):
        ModelCheckpoint("w.safetensors", mode="lowest")
    with pytest.raises(ValueError, match="`open_mode` must be one of"):
        ModelCheckpoint("w.safetensors", open_mode="ab")
    with pytest.raises(TypeError, match="`filename` must be a path"):
        ModelCheckpoint(3)
    with pytest.raises(ValueError, match="PeriodicSaveLambda: pass `restore=`"):
        PeriodicSaveLambda(lambda fd, epoch, logs: None, "x", save_best_only=True, restore_best=True)

    class NoRestore(PeriodicSaveCallback):
        def save_file(self, fd, epoch_number, logs):
            fd.write(b"x")

    with pytest.raises(ValueError, match="NoRestore has none"):
        NoRestore("x", save_best_only=True, restore_best=True)


def test_unknown_filename_keys_and_monitors_list_the_available_keys(tmp_path):
    with pytest.raises(ValueError, match=r"uses \{val_acc\}.*Available keys: \['epoch', 'loss', 'scripted', 'time'"):
        _fit(_model(), [ModelCheckpoint(tmp_path / "w_{val_acc:.2f}.safetensors")], epochs=1)
    with pytest.raises(ValueError, match=r"cannot be filled.*\{epoch:02d\}"):
        _fit(_model(), [ModelCheckpoint(tmp_path / "w_{val_loss:02d}.safetensors")], epochs=1)
    with pytest.raises(ValueError, match=r"ModelCheckpoint monitors 'val_acc'.*Available keys"):
        _fit(_model(), [ModelCheckpoint(tmp_path / "w.safetensors", monitor="val_acc", save_best_only=True)], epochs=1)
    assert _files(tmp_path) == []
