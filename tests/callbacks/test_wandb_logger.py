"""WandBLogger with the real wandb package, offline: what it logged is read back from the run's own file."""

import json
import struct
import time
from pathlib import Path

import pytest
import torch
from torch import nn

wandb = pytest.importorskip("wandb")
wandb_internal_pb2 = pytest.importorskip("wandb.proto.wandb_internal_pb2")

from trainwell import Model  # noqa: E402
from trainwell.callbacks.wandb_logger import WandBLogger  # noqa: E402

_BLOCK = 32768  # the .wandb file is a LevelDB-style log: 32 KiB blocks of records with 7-byte headers
_HEADER = 7


def read_records(path):
    """The protobuf records of an offline run's ``run-<id>.wandb`` file, in order."""
    data = Path(path).read_bytes()
    assert data[:4] == b":W&B"
    records, pending, position = [], b"", _HEADER
    while position + _HEADER <= len(data):
        room = _BLOCK - position % _BLOCK
        if room < _HEADER:  # the block's tail is padding
            position += room
            continue
        _, length, kind = struct.unpack("<IHB", data[position : position + _HEADER])
        if kind == 0 and length == 0:
            break
        chunk = data[position + _HEADER : position + _HEADER + length]
        position += _HEADER + length
        pending = chunk if kind in (1, 2) else pending + chunk
        if kind in (1, 4):  # a whole record, or the last part of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
    return records


def run_records(directory, timeout=60.0):
    """The records of the one run written under ``directory``, once wandb has written its end.

    wandb's service writes the file in the background: ``run.finish()`` returns before the last records
    reach the disk, so the file is read again until it holds the run's ``exit`` record.
    """
    deadline = time.monotonic() + timeout
    while True:
        (path,) = Path(directory).glob("wandb/offline-run-*/run-*.wandb")
        records = read_records(path)
        if any(record.WhichOneof("record_type") == "exit" for record in records) or time.monotonic() > deadline:
            return records
        time.sleep(0.1)


def logged_history(directory):
    """Every ``run.log`` of the run: a list of (step, {key path: value})."""
    rows = []
    for record in run_records(directory):
        if record.WhichOneof("record_type") != "history":
            continue
        values = {"/".join(item.nested_key) or item.key: json.loads(item.value_json) for item in record.history.item}
        rows.append((record.history.step.num, values))
    return rows


def config_of(directory):
    config = {}
    for record in run_records(directory):
        kind = record.WhichOneof("record_type")
        updates = record.run.config.update if kind == "run" else record.config.update if kind == "config" else []
        config.update({item.key: json.loads(item.value_json) for item in updates})
    return config


@pytest.fixture
def quiet_wandb(monkeypatch, tmp_path):
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("WANDB_MODE", raising=False)
    yield
    if wandb.run is not None:
        wandb.run.finish()


def _fit(callbacks, epochs=2, **kwargs):
    torch.manual_seed(0)
    model = Model(nn.Linear(3, 2), "sgd", "cross_entropy", batch_metrics=["accuracy"])
    x, y = torch.randn(12, 3), torch.randint(0, 2, (12,))
    history = model.fit(x, y, validation_data=(x, y), batch_size=4, epochs=epochs, verbose=False, callbacks=callbacks)
    return model, history, (x, y)


def test_epochs_validation_and_learning_rates_are_logged_at_their_epoch(tmp_path, quiet_wandb):
    logger = WandBLogger(name="run", project="tests", save_dir=tmp_path, offline=True, config={"seed": 0})
    logger.log_config_params({"epochs": 2})
    model, history, (x, y) = _fit([logger])
    logs = model.evaluate(x, y, verbose=False, callbacks=[logger], return_dict_format=True)
    logger.run.finish()

    rows = logged_history(tmp_path)
    assert [step for step, _ in rows] == [1, 2, 3]  # wandb merges the records of one step; the test is one after
    for (_, values), epoch_logs in zip(rows, history):
        assert values["training/loss"] == pytest.approx(epoch_logs["loss"])
        assert values["training/epoch"] == epoch_logs["epoch"]
        assert values["validation/acc"] == pytest.approx(epoch_logs["val_acc"])
        assert values["params/lr"] == pytest.approx(0.01)
        assert not any(key.startswith("training/val_") for key in values)
    assert rows[2][1]["testing/loss"] == pytest.approx(logs["test_loss"])
    config = config_of(tmp_path)
    assert config["seed"] == 0 and config["epochs"] == 2 and config["run_id"] == logger.run.id


def test_batch_granularity_logs_every_batch(tmp_path, quiet_wandb):
    logger = WandBLogger(name="batches", save_dir=tmp_path, offline=True, batch_granularity=True)
    _, history, _ = _fit([logger], epochs=1)
    logger.run.finish()
    rows = logged_history(tmp_path)
    batches = [values for _, values in rows if "training/batch/loss" in values]
    assert [values["training/batch/batch"] for values in batches] == [1, 2, 3]
    (epoch,) = [values for _, values in rows if "training/epoch/loss" in values]
    assert epoch["training/epoch/loss"] == pytest.approx(history[0]["loss"])


def test_a_running_run_is_reused_with_a_warning(tmp_path, quiet_wandb):
    run = wandb.init(mode="offline", dir=str(tmp_path), project="tests")
    with pytest.warns(UserWarning, match="a wandb run is already going on"):
        logger = WandBLogger(name="ignored")
    assert logger.run is run
    assert WandBLogger(experiment=run).run is run


def test_artifacts_and_argument_errors(tmp_path, quiet_wandb):
    (tmp_path / "notes.txt").write_text("hello")
    logger = WandBLogger(save_dir=tmp_path, offline=True, initial_artifacts_paths=[tmp_path / "notes.txt"])
    with pytest.raises(FileNotFoundError, match=r"cannot log '.*missing' as an artifact"):
        logger._log_artifacts([str(tmp_path / "missing")], "x", "Miscellaneous")
    with pytest.raises(TypeError, match=r"`batch_granularity` must be True or False. Received: batch_granularity=1"):
        WandBLogger(batch_granularity=1)
