import csv
import os

import pytest
import torch
from torch import nn

from tests.learning_rates import LearningRates
from trainwell import Callback, Model
from trainwell.callbacks.csv_logger import AtomicCSVLogger, CSVLogger
from trainwell.callbacks.lr_scheduler import StepLR
from trainwell.storage.files import decode_state, encode_state

LOGGERS = [CSVLogger, AtomicCSVLogger]


def _data(n=12):
    torch.manual_seed(0)
    return torch.randn(n, 3), torch.randint(0, 2, (n,))


def _model():
    torch.manual_seed(1)
    return Model(nn.Linear(3, 2), "sgd", "cross_entropy", batch_metrics=["accuracy"], epoch_metrics=["f1"])


def _read(path, separator=","):
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle, delimiter=separator))


def _epoch_rows(path, separator=","):
    header, *rows = _read(path, separator)
    return (
        [dict(zip(header, row)) for row in rows if row[header.index("batch")] == ""]
        if "batch" in header
        else [dict(zip(header, row)) for row in rows]
    )


def _assert_rows_match(rows, history):
    assert len(rows) == len(history)
    for row, logs in zip(rows, history):
        for key, value in logs.items():
            assert float(row[key]) == value, key  # repr() of a float reads back exactly


@pytest.mark.parametrize(("logger_class", "separator"), [(CSVLogger, ","), (CSVLogger, "\t"), (AtomicCSVLogger, ";")])
def test_rows_header_and_values_match_the_history(tmp_path, logger_class, separator):
    x, y = _data()
    path = tmp_path / "log.csv"
    rates = LearningRates()
    history = _model().fit(
        x,
        y,
        validation_data=(x, y),
        batch_size=4,
        epochs=2,
        verbose=False,
        callbacks=[logger_class(path, separator=separator), rates],
    )
    # The history carries no lr (Poutyne's contract); the logger writes the epoch's rate after epoch and time.
    assert "lr" not in history[0]
    header, *rows = _read(path, separator)
    assert header == ["epoch", "time", "lr", *list(history[0])[2:]]  # epoch, time, lr, loss, acc, ..., val_...
    assert list(history[0])[:3] == ["epoch", "time", "loss"] and "val_fscore_macro" in header
    records = [dict(zip(header, row)) for row in rows]
    _assert_rows_match(records, history)
    assert [float(record["lr"]) for record in records] == rates.values() == [0.01, 0.01]


@pytest.mark.parametrize("batch_granularity", [False, True])
@pytest.mark.parametrize("scheduler_first", [True, False])
@pytest.mark.parametrize("logger_class", LOGGERS)
def test_the_lr_written_is_the_one_the_epoch_trained_with_whatever_the_callbacks_order(
    tmp_path, logger_class, scheduler_first, batch_granularity
):
    x, y = _data()
    model = _model()
    used = []  # the rate of every optimizer update, by epoch
    model._steps.before_optimizer_step.append(
        lambda: used.append((model.state.epoch, model.optimizer.param_groups[0]["lr"]))
    )
    path = tmp_path / "log.csv"
    logger = logger_class(path, batch_granularity=batch_granularity)
    scheduler = StepLR(step_size=1, gamma=0.5)  # steps at on_epoch_end, before or after the logger writes
    callbacks = [scheduler, logger] if scheduler_first else [logger, scheduler]
    model.fit(x, y, batch_size=4, epochs=3, verbose=False, callbacks=callbacks)
    trained_with = [sorted({rate for epoch, rate in used if epoch == number}) for number in (1, 2, 3)]
    assert trained_with == [[0.01], [0.005], [0.0025]]  # one rate per epoch, halved after each
    written = [float(row["lr"]) for row in _epoch_rows(path)]
    assert written == [0.01, 0.005, 0.0025]
    assert model.optimizer.param_groups[0]["lr"] == 0.00125  # the scheduler did step after the last epoch


@pytest.mark.parametrize("logger_class", LOGGERS)
def test_append_continues_without_a_second_header(tmp_path, logger_class):
    x, y = _data()
    path = tmp_path / "log.csv"
    model = _model()
    first = model.fit(x, y, batch_size=4, epochs=2, verbose=False, callbacks=[logger_class(path)])
    second = model.fit(
        x, y, batch_size=4, epochs=3, initial_epoch=3, verbose=False, callbacks=[logger_class(path, append=True)]
    )
    lines = _read(path)
    assert [line[0] for line in lines] == ["epoch", "1", "2", "3"]
    _assert_rows_match(_epoch_rows(path), first + second)


@pytest.mark.parametrize("logger_class", LOGGERS)
def test_without_append_the_file_is_overwritten(tmp_path, logger_class):
    x, y = _data()
    path = tmp_path / "log.csv"
    path.write_text("old,content\n1,2\n")
    history = _model().fit(x, y, batch_size=4, epochs=1, verbose=False, callbacks=[logger_class(path)])
    _assert_rows_match(_epoch_rows(path), history)
    assert "old" not in path.read_text()


class BatchCollector(Callback):
    def __init__(self):
        self.rows = []

    def on_train_batch_end(self, batch_number, logs):
        self.rows.append(dict(logs))


@pytest.mark.parametrize("logger_class", LOGGERS)
def test_batch_granularity_writes_one_row_per_batch(tmp_path, logger_class):
    x, y = _data(10)  # batches of 4, 4 and 2
    path = tmp_path / "log.csv"
    collector = BatchCollector()
    history = _model().fit(
        x,
        y,
        validation_data=(x, y),
        batch_size=4,
        epochs=2,
        verbose=False,
        callbacks=[logger_class(path, batch_granularity=True), collector],
    )
    header, *rows = _read(path)
    assert header == [
        "epoch",
        "batch",
        "size",
        "time",
        "lr",
        "loss",
        "acc",
        "fscore_macro",
        "val_loss",
        "val_acc",
        "val_fscore_macro",
    ]
    assert len(rows) == 2 * (3 + 1)
    records = [dict(zip(header, row)) for row in rows]
    batch_rows = [record for record in records if record["batch"]]
    # As in Poutyne, a batch row leaves the epoch cell empty: it belongs to the epoch row that follows it.
    assert [(row["epoch"], row["batch"], row["size"]) for row in batch_rows] == [
        ("", str(batch), str(size)) for _ in (1, 2) for batch, size in ((1, 4), (2, 4), (3, 2))
    ]
    for row, seen in zip(batch_rows, collector.rows):
        assert float(row["loss"]) == seen["loss"] and float(row["acc"]) == seen["acc"]
        assert row["val_loss"] == "" and row["fscore_macro"] == ""  # epoch-only cells stay empty
    _assert_rows_match(_epoch_rows(path), history)
    assert records[3]["batch"] == "" and records[3]["epoch"] == "1"  # the epoch row follows its batches


class CaptureState(Callback):
    """Captures a callback's state at the end of one epoch, as a checkpoint would."""

    def __init__(self, target, epoch):
        self.target, self.epoch, self.state = target, epoch, None

    def on_epoch_end(self, epoch_number, logs):
        if epoch_number == self.epoch:
            skeleton, tensors = encode_state(self.target.state_dict())  # what a checkpoint stores (no pickle)
            self.state = decode_state(skeleton, tensors)


@pytest.mark.parametrize(
    ("logger_class", "capture_before_logging", "batch_granularity"),
    [
        (CSVLogger, False, False),
        (CSVLogger, True, False),
        (CSVLogger, False, True),
        (AtomicCSVLogger, True, True),
    ],
)
def test_resume_cuts_the_rows_written_after_the_checkpoint(
    tmp_path, logger_class, capture_before_logging, batch_granularity
):
    x, y = _data()
    path = tmp_path / "log.csv"
    model = _model()
    logger = logger_class(path, batch_granularity=batch_granularity)
    capture = CaptureState(logger, epoch=2)
    # The checkpoint of epoch 2 may be taken before or after the logger writes epoch 2's row.
    callbacks = [capture, logger] if capture_before_logging else [logger, capture]
    crashed_run = model.fit(x, y, batch_size=4, epochs=3, verbose=False, callbacks=callbacks)
    assert len(_epoch_rows(path)) == 3  # epoch 3 was written, then the run "died" before its checkpoint

    resumed_logger = logger_class(path, batch_granularity=batch_granularity)
    resumed_logger.load_state_dict(capture.state)
    resumed = model.fit(x, y, batch_size=4, epochs=4, initial_epoch=3, verbose=False, callbacks=[resumed_logger])

    lines = _read(path)
    assert lines.count(lines[0]) == 1  # one header
    _assert_rows_match(_epoch_rows(path), crashed_run[:2] + resumed)
    if batch_granularity:
        header = lines[0]
        epochs = [row[header.index("epoch")] for row in lines[1:]]
        # 3 batch rows (no epoch cell) + 1 epoch row each: epoch 3's rows of the crashed run were cut.
        assert epochs == [cell for epoch in "1234" for cell in ("", "", "", epoch)]
    assert resumed_logger.state_dict()["epoch"] == 4
    assert resumed_logger.state_dict()["rows"] == len(lines) - 1


def test_atomic_logger_leaves_no_temporary_file_and_matches_csv_logger(tmp_path):
    x, y = _data()
    streamed, atomic = tmp_path / "streamed.csv", tmp_path / "atomic.csv"
    seen_during_run = []

    class ReadBack(Callback):
        def on_train_batch_end(self, batch_number, logs):
            seen_during_run.append(sorted(os.listdir(tmp_path)))

    _model().fit(
        x,
        y,
        validation_data=(x, y),
        batch_size=4,
        epochs=2,
        verbose=False,
        callbacks=[
            CSVLogger(streamed, batch_granularity=True),
            AtomicCSVLogger(atomic, batch_granularity=True),
            ReadBack(),
        ],
    )
    assert atomic.read_bytes() == streamed.read_bytes()
    assert sorted(os.listdir(tmp_path)) == ["atomic.csv", "streamed.csv"]
    assert all(listing == ["atomic.csv", "streamed.csv"] for listing in seen_during_run)


def test_atomic_logger_uses_the_given_temporary_file(tmp_path):
    x, y = _data()
    path, temporary = tmp_path / "log.csv", tmp_path / "log.csv.partial"
    history = _model().fit(
        x,
        y,
        batch_size=4,
        epochs=2,
        verbose=False,
        callbacks=[AtomicCSVLogger(path, temporary_filename=str(temporary))],
    )
    _assert_rows_match(_epoch_rows(path), history)
    assert not temporary.exists()  # renamed over the target every time


def test_errors_name_the_argument(tmp_path):
    with pytest.raises(TypeError, match=r"`filename` must be a path .* Received: filename of type int"):
        CSVLogger(3)
    with pytest.raises(ValueError, match=r"`separator` must be a single character .* Received: separator=', '"):
        CSVLogger(tmp_path / "a.csv", separator=", ")
    with pytest.raises(TypeError, match=r"`append` must be True or False. Received: append='yes'"):
        CSVLogger(tmp_path / "a.csv", append="yes")
    with pytest.raises(TypeError, match=r"`batch_granularity` must be True or False"):
        AtomicCSVLogger(tmp_path / "a.csv", batch_granularity=1)
    with pytest.raises(TypeError, match=r"`temporary_filename` must be a path or None. .* of type int"):
        AtomicCSVLogger(tmp_path / "a.csv", temporary_filename=5)
