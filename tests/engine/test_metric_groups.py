"""Additive batch metrics computed on groups of batches when nobody reads a batch's values."""

import torch
from torch import nn

from trainwell import Callback, Model
from trainwell.engine.tracking import MetricTracker
from trainwell.metrics import Accuracy, BatchMetric, TopKAccuracy
from trainwell.metrics.classification import accuracy_counts


class CountingCounts:
    """``accuracy_counts`` that records the batch size of each call (the real function, counted)."""

    def __init__(self) -> None:
        self.sizes: list[int] = []

    def __call__(self, y_pred: torch.Tensor, y_true: torch.Tensor) -> torch.Tensor:
        self.sizes.append(len(y_true))
        return accuracy_counts(y_pred, y_true)


def counted_accuracy(additive: bool, name: str = "acc") -> tuple[BatchMetric, CountingCounts]:
    counts = CountingCounts()
    metric = BatchMetric(
        lambda y_pred, y_true: torch.tensor(0.0), (name,), counts=counts, scale=100.0, additive=additive
    )
    return metric, counts


def batches(sizes, classes=5, length=None, seed=0):
    """Random ``(loss, y_pred, y_true)`` batches, some targets ignored (-100); ``length`` adds a sequence dim."""
    generator = torch.Generator().manual_seed(seed)
    out = []
    for index, size in enumerate(sizes):
        steps = () if length is None else (length + index % 3,)  # sequences of varying length
        y_pred = torch.randn(size, classes, *steps, generator=generator)
        y_true = torch.randint(0, classes, (size, *steps), generator=generator)
        y_true[torch.rand(y_true.shape, generator=generator) < 0.1] = -100
        out.append((torch.rand((), generator=generator), y_pred, y_true, size))
    return out


def run(tracker, data):
    for loss, y_pred, y_true, size in data:
        tracker.update(loss, y_pred, y_true, size)
    return tracker.compute()


def metrics():
    return [Accuracy(), TopKAccuracy(2), Accuracy(ignore_index=1, name="acc_no1")]


def test_grouped_metrics_equal_per_batch_metrics_across_folds_groups_and_shapes():
    sizes = [7, 32, 32, 5, 32, 1, 32, 32, 32, 11] * 15  # 150 batches: two folds and a rest
    for length in (None, 4):
        data = batches(sizes, length=length)
        eager = MetricTracker(metrics(), [])
        grouped = MetricTracker(metrics(), [])
        grouped.defer_metrics(True)
        grouped.held.limit_bytes = 6_000  # a few batches per group, so that groups end before the folds too
        assert grouped.deferring and not eager.deferring
        expected = run(eager, data)
        assert run(grouped, data) == expected  # exact: the sums are integer counts
        assert set(expected) == {"loss", "acc", "top2", "acc_no1"}


def test_hits_are_grouped_as_well_when_every_target_counts():
    data = [(loss, y_pred, y_true.clamp_min(0), size) for loss, y_pred, y_true, size in batches([16] * 40)]
    eager, grouped = MetricTracker(metrics(), []), MetricTracker(metrics(), [])
    for tracker in (eager, grouped):
        tracker.reset(targets_valid=True)
    grouped.defer_metrics(True)
    assert run(grouped, data) == run(eager, data)


def test_a_group_computes_its_metric_once_and_never_past_the_byte_limit():
    metric, counts = counted_accuracy(additive=True)
    tracker = MetricTracker([metric], [])
    tracker.defer_metrics(True)
    data = batches([8] * 10)
    run(tracker, data)
    assert counts.sizes == [80]  # ten batches, one call
    metric, counts = counted_accuracy(additive=True)
    tracker = MetricTracker([metric], [])
    tracker.defer_metrics(True)
    tracker.held.limit_bytes = 1  # every batch is over the limit: nothing is held
    run(tracker, data)
    assert counts.sizes == [8] * 10


def test_a_metric_that_does_not_declare_itself_additive_is_computed_per_batch():
    metric, counts = counted_accuracy(additive=False)
    tracker = MetricTracker([metric], [])
    tracker.defer_metrics(True)
    assert not tracker.deferring
    run(tracker, batches([8] * 10))
    assert counts.sizes == [8] * 10


def test_a_checkpoint_taken_with_batches_held_resumes_to_the_same_values():
    data = batches([9, 16, 16, 3] * 20)
    uninterrupted = MetricTracker(metrics(), [])
    uninterrupted.defer_metrics(True)
    expected = run(uninterrupted, data)
    for deferring_after in (True, False):  # the resumed phase may or may not group (other callbacks)
        tracker = MetricTracker(metrics(), [])
        tracker.defer_metrics(True)
        for loss, y_pred, y_true, size in data[:70]:
            tracker.update(loss, y_pred, y_true, size)
        assert tracker.held.batches  # batches are held when the checkpoint is taken
        state = tracker.state_dict()
        resumed = MetricTracker(metrics(), [])
        resumed.load_state_dict(state)
        resumed.defer_metrics(deferring_after)
        assert run(resumed, data[70:]) == expected


class _ReadsEveryBatch(Callback):
    """Reads the accuracy of every batch (logged as acc, val_acc or test_acc)."""

    def __init__(self) -> None:
        super().__init__()
        self.accuracies: list[float] = []

    def _read(self, logs):
        self.accuracies.append(next(value for key, value in logs.items() if key.endswith("acc")))

    def on_train_batch_end(self, batch_number, logs):
        self._read(logs)

    def on_valid_batch_end(self, batch_number, logs):
        self._read(logs)

    def on_test_batch_end(self, batch_number, logs):
        self._read(logs)


def _model(seed=0, *extra_metrics):
    torch.manual_seed(seed)
    network = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 4))
    return Model(network, "sgd", "cross_entropy", batch_metrics=["accuracy", TopKAccuracy(2), *extra_metrics])


def test_fit_and_evaluate_log_the_same_with_and_without_a_batch_listener():
    generator = torch.Generator().manual_seed(1)
    x, y = torch.randn(500, 6, generator=generator), torch.randint(0, 4, (500,), generator=generator)
    reader = _ReadsEveryBatch()
    runs = []
    for callbacks in ([], [reader]):
        model = _model()  # seeds the weights and the shuffles
        history = model.fit(x, y, validation_data=(x, y), batch_size=16, epochs=2, verbose=False, callbacks=callbacks)
        runs.append(([{k: v for k, v in logs.items() if k != "time"} for logs in history], model))
    (quiet, quiet_model), (listened, listened_model) = runs
    assert quiet == listened
    assert len(reader.accuracies) == 2 * 32 + 2 * 32  # the listener saw every batch's value (train, valid)
    evaluations = [
        model.evaluate(x, y, batch_size=7, verbose=False, return_dict_format=True, callbacks=callbacks)
        for model, callbacks in ((quiet_model, []), (listened_model, [reader]))
    ]
    for logs in evaluations:
        del logs["time"]
    assert evaluations[0] == evaluations[1]
    assert len(reader.accuracies) == 2 * 32 + 2 * 32 + 72


class _ReadsDespiteSayingNot(_ReadsEveryBatch):
    reads_batch_metrics = False  # wrong: it reads them; the values must still be right


def test_a_callback_that_says_it_reads_no_metric_still_reads_the_right_values():
    generator = torch.Generator().manual_seed(2)
    x, y = torch.randn(300, 6, generator=generator), torch.randint(0, 4, (300,), generator=generator)
    honest, liar = _ReadsEveryBatch(), _ReadsDespiteSayingNot()
    results = []
    for reader in (honest, liar):
        model = _model()
        history = model.fit(x, y, batch_size=16, epochs=1, verbose=False, callbacks=[reader])
        results.append({k: v for k, v in history[0].items() if k != "time"})
    assert liar.accuracies == honest.accuracies and len(honest.accuracies) == 19
    assert results[0] == results[1]


def test_the_progress_bar_lets_metrics_be_grouped_and_shows_the_same_values(capsys):
    generator = torch.Generator().manual_seed(4)
    x, y = torch.randn(400, 6, generator=generator), torch.randint(0, 4, (400,), generator=generator)
    computed = []
    histories = []
    for verbose in (True, False):
        metric, counts = counted_accuracy(additive=True, name="counted")  # how many times it runs
        model = _model(0, metric)
        logs = model.fit(x, y, batch_size=8, epochs=1, verbose=verbose, callbacks=[])
        histories.append({k: v for k, v in logs[0].items() if k != "time"})
        computed.append(len(counts.sizes))
    assert "acc" in capsys.readouterr().out  # the bar showed the running accuracy
    assert histories[0] == histories[1]
    # 50 batches, after the sanity check's 2 (computed per batch): one group without the bar; with it,
    # groups that its reads of the running values end, still far fewer than the batches.
    assert computed[1] == 2 + 1 and computed[0] < 2 + 25
