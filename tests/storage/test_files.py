"""Weights and optimizer state are stored without pickle, atomically, and load back exactly."""

import io
import os
import pickle

import pytest
import torch
from torch import nn

from trainwell import Model
from trainwell.storage.files import atomic_write, load_state, save_state


def _trained_model():
    torch.manual_seed(0)
    network = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 2))
    model = Model(network, "adam", "cross_entropy")
    model.fit(torch.randn(32, 4), torch.randint(0, 2, (32,)), epochs=1, batch_size=8, verbose=False)
    return model


def test_weights_round_trip_through_safetensors(tmp_path):
    model = _trained_model()
    path = tmp_path / "weights.safetensors"
    model.save_weights(path)
    assert path.read_bytes()[8:9] == b"{"  # a safetensors header, not a pickle
    from safetensors.torch import load_file

    assert set(load_file(path)) == set(model.network.state_dict())

    other = Model(nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 2)), "adam", "cross_entropy")
    other.load_weights(path)
    for key, value in model.get_weights().items():
        assert torch.equal(value, other.get_weights()[key])


def test_optimizer_state_round_trip_and_training_continues_identically(tmp_path):
    model = _trained_model()
    model.save_weights(tmp_path / "w")
    model.save_optimizer_state(tmp_path / "o")
    x, y = torch.randn(16, 4), torch.randint(0, 2, (16,))
    copy = Model(nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 2)), "adam", "cross_entropy")
    copy.load_weights(tmp_path / "w")
    copy.load_optimizer_state(tmp_path / "o")
    model.train_on_batch(x, y)
    copy.train_on_batch(x, y)
    for key, value in model.get_weights().items():
        assert torch.equal(value, copy.get_weights()[key])


def test_file_objects_are_accepted():
    model = _trained_model()
    buffer = io.BytesIO()
    model.save_weights(buffer)
    buffer.seek(0)
    model.load_weights(buffer)


def test_plain_torch_state_dict_loads_with_weights_only(tmp_path):
    model = _trained_model()
    torch.save(model.network.state_dict(), tmp_path / "legacy.pt")
    model.load_weights(tmp_path / "legacy.pt")


class _Payload:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def test_a_pickle_payload_is_never_executed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pt"
    path.write_bytes(pickle.dumps({"weight": _Payload()}))
    model = _trained_model()
    with pytest.raises(Exception):  # noqa: B017 - torch's weights-only unpickler refuses it, whatever its class
        model.load_weights(path)
    with pytest.raises(Exception):  # noqa: B017
        model.load_optimizer_state(path)
    assert not (tmp_path / "PWNED").exists()


def test_nested_state_keeps_types(tmp_path):
    state = {
        "step": 3,
        "ids": {0: torch.ones(2), 1: None},
        "betas": (0.9, 0.99),
        "name": "x",
        "flags": [True, 1.5],
    }
    save_state(tmp_path / "s", state)
    loaded = load_state(tmp_path / "s")
    assert loaded["betas"] == (0.9, 0.99) and set(loaded["ids"]) == {0, 1}
    assert torch.equal(loaded["ids"][0], torch.ones(2)) and loaded["flags"] == [True, 1.5]
    with pytest.raises(TypeError, match="only tensors, numbers, strings"):
        save_state(tmp_path / "bad", {"f": object()})


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path, monkeypatch):
    target = tmp_path / "weights"
    atomic_write(target, b"good")

    def failing_fsync(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="No space left"):
        atomic_write(target, b"partial")
    assert target.read_bytes() == b"good"
    assert [p.name for p in tmp_path.iterdir()] == ["weights"]  # no temporary file left behind
