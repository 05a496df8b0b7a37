import sys

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch import nn
from torch.utils.tensorboard import SummaryWriter

from tests.learning_rates import LearningRates
from trainwell import Model
from trainwell.callbacks.tensorboard import TensorBoardLogger


def read_scalars(directory):
    """{tag: [(step, value)]} of the event files directly in `directory`, read by TensorBoard itself."""
    accumulator = EventAccumulator(str(directory))
    accumulator.Reload()
    return {
        tag: [(event.step, event.value) for event in accumulator.Scalars(tag)] for tag in accumulator.Tags()["scalars"]
    }


def as_float32(values):
    return [float(np.float32(value)) for value in values]  # TensorBoard stores scalars as float32


def _fit(callbacks, optimizer="sgd", epochs=2):
    torch.manual_seed(0)
    x, y = torch.randn(12, 3), torch.randint(0, 2, (12,))
    model = Model(nn.Linear(3, 2), optimizer, "cross_entropy", batch_metrics=["accuracy"])
    return model.fit(x, y, validation_data=(x, y), batch_size=4, epochs=epochs, verbose=False, callbacks=callbacks)


def test_train_and_validation_share_a_chart_by_default(tmp_path):
    rates = LearningRates()
    history = rates.beside(_fit([TensorBoardLogger(SummaryWriter(tmp_path)), rates]))  # + lr, not in the logs
    # add_scalars writes each series of chart C to the run's subdirectory C_<series>, under tag C.
    expected = {
        "loss_loss": ("loss", "loss"),
        "loss_val_loss": ("loss", "val_loss"),
        "acc_acc": ("acc", "acc"),
        "acc_val_acc": ("acc", "val_acc"),
        "lr_lr": ("lr", "lr"),
        "time_time": ("time", "time"),
        "epoch_epoch": ("epoch", "epoch"),  # as in Poutyne, the epoch number is a scalar too
    }
    assert sorted(path.name for path in tmp_path.iterdir() if path.is_dir()) == sorted(expected)
    for directory, (chart, key) in expected.items():
        scalars = read_scalars(tmp_path / directory)
        assert list(scalars) == [chart]
        assert [step for step, _ in scalars[chart]] == [1, 2]
        assert [value for _, value in scalars[chart]] == as_float32(logs[key] for logs in history)
    assert read_scalars(tmp_path) == {}  # the run's own file holds no scalar


def test_split_train_val_gives_one_chart_per_key(tmp_path):
    rates = LearningRates()
    history = rates.beside(_fit([TensorBoardLogger(SummaryWriter(tmp_path), split_train_val=True), rates]))
    scalars = read_scalars(tmp_path)
    assert "lr" in scalars and "epoch" in scalars and sorted(scalars) == sorted(history[0])
    for key, points in scalars.items():
        assert [step for step, _ in points] == [1, 2]
        assert [value for _, value in points] == as_float32(logs[key] for logs in history)
    assert not any(path.is_dir() for path in tmp_path.iterdir())


def test_learning_rates_of_several_groups_share_the_lr_chart(tmp_path):
    torch.manual_seed(0)
    network = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    optimizer = torch.optim.SGD(
        [{"params": network[0].parameters(), "lr": 0.1}, {"params": network[1].parameters(), "lr": 0.01}]
    )
    model = Model(network, optimizer, "cross_entropy")
    x, y = torch.randn(8, 3), torch.randint(0, 2, (8,))
    model.fit(x, y, epochs=1, verbose=False, callbacks=[TensorBoardLogger(tmp_path)])
    assert read_scalars(tmp_path / "lr_lr_group_0") == {"lr": [(1, float(np.float32(0.1)))]}
    assert read_scalars(tmp_path / "lr_lr_group_1") == {"lr": [(1, float(np.float32(0.01)))]}


def test_a_directory_path_creates_the_writer(tmp_path):
    logger = TensorBoardLogger(tmp_path / "run", split_train_val=True)
    assert isinstance(logger.writer, SummaryWriter)
    history = _fit([logger], epochs=1)
    assert read_scalars(tmp_path / "run")["val_loss"] == [(1, float(np.float32(history[0]["val_loss"])))]


def test_errors(tmp_path, monkeypatch):
    with pytest.raises(TypeError, match=r"`writer` must be a .*SummaryWriter or a log directory path. .* type int"):
        TensorBoardLogger(3)
    with pytest.raises(TypeError, match=r"`split_train_val` must be True or False. Received: split_train_val=1"):
        TensorBoardLogger(tmp_path, split_train_val=1)
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # as if tensorboard were not installed
    with pytest.raises(
        ImportError, match=r"TensorBoardLogger needs the `tensorboard` package.*trainwell\[tensorboard\]"
    ):
        TensorBoardLogger(tmp_path)
