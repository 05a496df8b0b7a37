"""StepProfiler: its sections add up to the measured training time and show where it went."""

import io
import time

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset

from trainwell import Callback, Model, StepProfiler
from trainwell.callbacks.profiler import SECTIONS


class _SlowDataset(Dataset):
    """Each sample takes `delay` seconds to load: an input-bound pipeline."""

    def __init__(self, n, delay):
        generator = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, 8, generator=generator)
        self.y = (self.x[:, 0] > 0).long()
        self.delay = delay

    def __len__(self):
        return len(self.x)

    def __getitem__(self, index):
        time.sleep(self.delay)
        return self.x[index], self.y[index]


class _Stopwatch(Callback):
    """Measures the training batches of each epoch from the outside."""

    def __init__(self):
        self.seconds = 0.0
        self.started = None

    def on_epoch_begin(self, epoch_number, logs):
        self.started = time.perf_counter()

    def on_train_batch_end(self, batch_number, logs):
        self.last_batch_end = time.perf_counter()

    def on_epoch_end(self, epoch_number, logs):
        self.seconds += self.last_batch_end - self.started


def _model(loss="cross_entropy"):
    torch.manual_seed(0)
    return Model(nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2)), "adam", loss, batch_metrics=["acc"])


def test_an_input_bound_run_shows_data_loading_dominating_and_the_rows_add_up():
    profiler, watch, printed = StepProfiler(file=io.StringIO()), _Stopwatch(), io.StringIO()
    profiler.file = printed
    loader = DataLoader(_SlowDataset(48, 0.01), batch_size=8, shuffle=True)  # >= 80 ms of loading per batch
    history = _model().fit_generator(loader, epochs=2, verbose=False, callbacks=[watch, profiler])
    assert len(history) == 2 and profiler.steps == 12
    rows = {row["section"]: row for row in profiler.rows()}
    assert list(rows) == list(SECTIONS)
    # The sections cover the training batches: their sum is the time measured from outside.
    assert abs(profiler.total - watch.seconds) < 0.1 * watch.seconds + 0.01
    assert abs(sum(row["seconds"] for row in rows.values()) - profiler.total) < 1e-9
    assert abs(sum(row["percent"] for row in rows.values()) - 100) < 1e-6
    # Bounds that hold on a busy machine too: sleeping is a floor, and the compute here is tiny.
    assert rows["data"]["ms_per_step"] >= 80
    assert rows["data"]["percent"] > 50 and max(rows.values(), key=lambda row: row["seconds"]) is rows["data"]
    assert "Input-bound" in printed.getvalue() and "data" in printed.getvalue()
    assert model_timer_is_removed(profiler)


def model_timer_is_removed(profiler):
    return profiler._steps_object.timer is None


def test_a_slow_loss_is_charged_to_the_forward_section_and_a_slow_callback_to_callbacks():
    def slow_loss(y_pred, y_true):
        time.sleep(0.005)
        return F.cross_entropy(y_pred, y_true)

    class SlowCallback(Callback):
        def on_train_batch_end(self, batch_number, logs):
            time.sleep(0.003)

    x = torch.randn(64, 8)
    y = (x[:, 0] > 0).long()
    profiler, watch = StepProfiler(verbose=False), _Stopwatch()
    model = _model(slow_loss)
    # Validation batches also run the slow loss, but they are not training steps.
    callbacks = [profiler, SlowCallback(), watch]
    model.fit(x, y, validation_data=(x, y), batch_size=8, epochs=1, verbose=False, callbacks=callbacks)
    rows = {row["section"]: row for row in profiler.rows()}
    assert profiler.steps == 8
    assert rows["forward"]["ms_per_step"] >= 5 and rows["callbacks"]["ms_per_step"] >= 3
    # In-memory batches are slices: nothing to wait for.
    assert rows["data"]["seconds"] < rows["forward"]["seconds"] / 2
    assert rows["backward"]["seconds"] > 0 and rows["optimizer"]["seconds"] > 0
    assert abs(profiler.total - watch.seconds) < 0.1 * watch.seconds + 0.01


def test_profiling_changes_nothing_in_the_results():
    x = torch.randn(64, 8)
    y = (x[:, 0] > 0).long()
    histories = []
    for callbacks in ([], [StepProfiler(verbose=False)]):
        histories.append(
            [
                {k: v for k, v in e.items() if k != "time"}
                for e in _model().fit(x, y, batch_size=8, epochs=2, verbose=False, callbacks=callbacks)
            ]
        )
    assert histories[0] == histories[1]
