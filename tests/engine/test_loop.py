import pytest
import torch
from torch import nn

from tests.sync_guard import SyncGuard
from trainwell import Callback, Model


class Recorder(Callback):
    def __init__(self):
        self.calls = []

    def on_train_begin(self, logs):
        self.calls.append("train_begin")

    def on_epoch_begin(self, epoch_number, logs):
        self.calls.append(f"epoch_begin {epoch_number}")

    def on_train_batch_begin(self, batch_number, logs):
        self.calls.append(f"batch_begin {batch_number}")

    def on_backward_end(self, batch_number):
        self.calls.append(f"backward_end {batch_number}")

    def on_train_batch_end(self, batch_number, logs):
        self.calls.append(f"batch_end {batch_number} {sorted(logs)}")

    def on_valid_begin(self, logs):
        self.calls.append("valid_begin")

    def on_valid_batch_end(self, batch_number, logs):
        self.calls.append(f"valid_batch_end {batch_number}")

    def on_valid_end(self, logs):
        self.calls.append(f"valid_end {sorted(logs)}")

    def on_epoch_end(self, epoch_number, logs):
        self.calls.append(f"epoch_end {epoch_number} {sorted(logs)}")

    def on_train_end(self, logs):
        self.calls.append("train_end")


def _data(n=8):
    torch.manual_seed(0)
    return torch.randn(n, 3), torch.randint(0, 2, (n,))


def test_hook_order_is_pinned():
    x, y = _data()
    recorder = Recorder()
    model = Model(nn.Linear(3, 2), "sgd", "cross_entropy", batch_metrics=["accuracy"])
    model.fit(x, y, validation_data=(x, y), batch_size=4, epochs=1, verbose=False, callbacks=[recorder])
    batch_keys = "['acc', 'batch', 'loss', 'size', 'time']"
    assert recorder.calls == [
        "train_begin",
        "epoch_begin 1",
        "batch_begin 1",
        "backward_end 1",
        f"batch_end 1 {batch_keys}",
        "batch_begin 2",
        "backward_end 2",
        f"batch_end 2 {batch_keys}",
        "valid_begin",
        "valid_batch_end 1",
        "valid_batch_end 2",
        "valid_end ['acc', 'loss']",
        "epoch_end 1 ['acc', 'epoch', 'loss', 'lr', 'time', 'val_acc', 'val_loss']",
        "train_end",
    ]


def test_batch_logs_are_weighted_into_the_epoch_average():
    x, y = _data(10)
    seen = []

    class Collect(Callback):
        def on_train_batch_end(self, batch_number, logs):
            seen.append((logs["size"], logs["loss"]))

    model = Model(nn.Linear(3, 2), "sgd", "cross_entropy")
    history = model.fit(x, y, batch_size=4, epochs=1, verbose=False, callbacks=[Collect()])
    assert [size for size, _ in seen] == [4, 4, 2]
    expected = sum(size * loss for size, loss in seen) / 10
    assert abs(history[0]["loss"] - expected) < 1e-6


def test_stop_training_ends_the_epoch_after_the_current_batch_and_the_run():
    x, y = _data(20)

    class StopAtThird(Callback):
        def on_train_batch_end(self, batch_number, logs):
            if batch_number == 3:
                self.model.stop_training = True

    batches = []

    class Count(Callback):
        def on_train_batch_begin(self, batch_number, logs):
            batches.append(batch_number)

    model = Model(nn.Linear(3, 2), "sgd", "cross_entropy")
    history = model.fit(x, y, batch_size=2, epochs=5, verbose=False, callbacks=[StopAtThird(), Count()])
    assert len(history) == 1 and batches == [1, 2, 3]


def _count_syncs(num_samples):
    x, y = _data(num_samples)
    model = Model(nn.Linear(3, 2), "sgd", "cross_entropy", batch_metrics=["accuracy"])
    with SyncGuard(strict=False) as guard:
        model.fit(x, y, validation_data=(x, y), batch_size=4, epochs=1, verbose=False)
    return len(guard.calls)


def test_training_loop_does_not_sync_per_batch():
    # Host reads happen at phase boundaries (epoch logs, one target check), never per batch.
    assert _count_syncs(16) == _count_syncs(160)


def test_state_reports_position_to_callbacks():
    x, y = _data(8)
    positions = []

    class Where(Callback):
        def on_train_batch_end(self, batch_number, logs):
            state = self.model.state
            positions.append((state.phase, state.epoch, state.batch, state.global_step))
            assert set(state.tracker.running_logs()) == {"loss"}

    model = Model(nn.Linear(3, 2), "sgd", "cross_entropy")
    model.fit(x, y, batch_size=4, epochs=2, verbose=False, callbacks=[Where()])
    assert positions == [("train", 1, 1, 1), ("train", 1, 2, 2), ("train", 2, 1, 3), ("train", 2, 2, 4)]


def test_a_failing_run_calls_on_exception_instead_of_on_train_end():
    class Watch(Callback):
        def __init__(self):
            self.seen = []

        def on_exception(self, exception):
            self.seen.append(("exception", type(exception).__name__, str(exception)))

        def on_train_end(self, logs):
            self.seen.append(("train_end",))

    class Broken(Callback):
        def on_train_batch_end(self, batch_number, logs):
            if batch_number == 2:
                raise RuntimeError("broken callback")

    class AlsoBroken(Callback):
        def on_exception(self, exception):
            raise ValueError("a bad handler must not hide the original error")

    x, y = _data()
    watch = Watch()
    model = Model(nn.Linear(3, 2), "sgd", "cross_entropy")
    with (
        pytest.warns(UserWarning, match="AlsoBroken.on_exception raised ValueError"),
        pytest.raises(RuntimeError, match="broken callback"),
    ):
        model.fit(x, y, batch_size=2, epochs=1, verbose=False, callbacks=[AlsoBroken(), Broken(), watch])
    assert watch.seen == [("exception", "RuntimeError", "broken callback")]
    model.fit(x, y, batch_size=2, epochs=1, verbose=False, callbacks=[watch])
    assert watch.seen[-1] == ("train_end",)
