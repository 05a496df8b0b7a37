import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from trainwell import Model
from trainwell.callbacks.best_model_restore import BestModelRestore
from trainwell.callbacks.checkpoint import ModelCheckpoint
from trainwell.storage.files import load_state, save_state


def _model(script):
    """A tiny regression model whose 'scripted' / 'val_scripted' logs follow `script`, epoch by epoch."""
    torch.manual_seed(0)
    holder = {}

    def scripted(y_pred, y_true):
        return torch.tensor(script[holder["model"].state.epoch])

    model = Model(nn.Linear(3, 2), "sgd", "mse", batch_metrics=[scripted])
    holder["model"] = model
    return model


def _fit(model, callbacks, epochs, initial_epoch=1):
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(16, 3, generator=generator)
    y = x @ torch.randn(3, 2, generator=generator)
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


def _equal(weights, other):
    return sorted(weights) == sorted(other) and all(torch.equal(weights[name], other[name]) for name in weights)


@pytest.mark.parametrize(("mode", "best_epoch"), [("min", 2), ("max", 3)])
def test_restores_the_weights_of_the_best_epoch(tmp_path, mode, best_epoch):
    every = ModelCheckpoint(tmp_path / "w_{epoch}.safetensors")
    restore = BestModelRestore(monitor="val_scripted", mode=mode)
    model = _model({1: 2.0, 2: 1.0, 3: 3.0, 4: 1.5})
    _fit(model, [every, restore], epochs=4)
    assert restore.monitor.best_epoch == best_epoch
    assert _equal(model.get_weight_copies(), load_file(str(tmp_path / f"w_{best_epoch}.safetensors")))
    assert not _equal(model.get_weight_copies(), load_file(str(tmp_path / "w_4.safetensors")))
    # The kept copy lives on the CPU and does not follow further training.
    assert all(tensor.device.type == "cpu" for tensor in restore.best_weights.values())


def test_warns_when_no_epoch_improved():
    restore = BestModelRestore(monitor="val_scripted")
    model = _model({1: float("nan"), 2: float("nan")})
    before = model.get_weight_copies()
    with pytest.warns(UserWarning, match="no weights to restore"):
        _fit(model, [restore], epochs=2)
    assert not _equal(model.get_weight_copies(), before)  # trained weights left as they are


def test_a_resumed_run_still_ends_on_the_best_weights_before_the_interruption(tmp_path):
    script = {1: 2.0, 2: 1.0, 3: 3.0, 4: 1.5}
    model = _model(script)
    _fit(model, [BestModelRestore(monitor="val_scripted")], epochs=4)
    uninterrupted = model.get_weight_copies()

    model = _model(script)
    first = BestModelRestore(monitor="val_scripted")
    _fit(model, [first], epochs=2)
    # Stored and read back the way a checkpoint does (safetensors + JSON, no pickle).
    save_state(tmp_path / "callback.safetensors", first.state_dict())
    resumed = BestModelRestore(monitor="val_scripted")
    resumed.load_state_dict(load_state(tmp_path / "callback.safetensors"))
    _fit(model, [resumed], epochs=4, initial_epoch=3)
    assert resumed.monitor.best_epoch == 2
    assert _equal(model.get_weight_copies(), uninterrupted)


def test_arguments_and_missing_logs_are_reported():
    with pytest.raises(ValueError, match="`mode` must be 'min', 'max' or 'auto'. Received: mode='best'"):
        BestModelRestore(mode="best")
    with pytest.raises(ValueError, match=r"BestModelRestore monitors 'val_acc'.*Available keys"):
        _fit(_model({1: 1.0}), [BestModelRestore(monitor="val_acc")], epochs=1)
