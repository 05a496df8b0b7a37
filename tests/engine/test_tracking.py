import pytest
import torch
from torch import nn

from tests.sync_guard import SyncGuard
from trainwell import Model
from trainwell.engine.batch_logs import BatchLogs
from trainwell.engine.tracking import MetricTracker
from trainwell.metrics import Accuracy, BatchMetric, Metric


def test_counts_metrics_are_exact_over_padded_batches():
    # Two batches of 2 sequences of length 5; -100 marks padding. Batch 1 has 10 real tokens, batch 2 only 2.
    logits = torch.zeros(2, 3, 5)
    logits[:, 1] = 1.0  # always predicts class 1
    first = torch.ones(2, 5, dtype=torch.long)  # 10 real tokens, all correct
    second = torch.full((2, 5), -100)
    second[0, :2] = torch.tensor([0, 0])  # 2 real tokens, both wrong
    tracker = MetricTracker([Accuracy()], [])
    tracker.update(torch.tensor(0.0), logits, first, 2)
    tracker.update(torch.tensor(0.0), logits, second, 2)
    # 10 hits out of 12 real tokens, not the mean of the batch means (100% and 0% -> 50%)
    assert abs(tracker.compute()["acc"] - 100 * 10 / 12) < 1e-9


def test_mean_metrics_are_weighted_by_batch_size():
    metric = BatchMetric(lambda y_pred, y_true: y_pred.mean(), ("m",))
    tracker = MetricTracker([metric], [])
    tracker.update(torch.tensor(1.0), torch.full((3,), 2.0), None, 3)
    tracker.update(torch.tensor(4.0), torch.full((1,), 6.0), None, 1)
    logs = tracker.compute()
    assert logs == {"loss": (3 * 1.0 + 4.0) / 4, "m": (3 * 2.0 + 6.0) / 4}


def test_batch_logs_read_the_device_only_when_asked():
    tracker = MetricTracker([Accuracy()], [])
    with SyncGuard() as guard:
        values = tracker.update(torch.tensor(0.5), torch.tensor([[0.0, 1.0], [1.0, 0.0]]), torch.tensor([1, 1]), 2)
        logs = BatchLogs({"batch": 1, "size": 2}, tracker, values)
        assert logs["batch"] == 1  # plain values are free
    assert guard.calls == []
    assert dict(logs) == {"batch": 1, "size": 2, "loss": 0.5, "acc": 50.0}
    assert logs.copy()["acc"] == 50.0 and len(logs) == 4


def test_state_dict_round_trip_mid_phase():
    tracker = MetricTracker([Accuracy()], [])
    tracker.update(torch.tensor(1.0), torch.tensor([[0.0, 1.0]]), torch.tensor([1]), 1)
    state = tracker.state_dict()
    restored = MetricTracker([Accuracy()], [])
    restored.load_state_dict(state)
    for other in (tracker, restored):
        other.update(torch.tensor(3.0), torch.tensor([[0.0, 1.0]]), torch.tensor([0]), 1)
    assert restored.compute() == tracker.compute() == {"loss": 2.0, "acc": 50.0}


def test_training_metrics_build_no_autograd_graph():
    from torch import nn

    from trainwell import Model

    seen = []
    metric = BatchMetric(lambda y_pred, y_true: seen.append(y_pred.requires_grad) or (y_pred**2).mean(), ("sq",))
    # Without the sanity check, whose extra batches would add calls to count.
    model = Model(nn.Linear(3, 2), "sgd", "cross_entropy", batch_metrics=[metric], sanity_check=False)
    model.fit(torch.randn(8, 3), torch.randint(0, 2, (8,)), batch_size=4, epochs=1, verbose=False)
    assert seen == [False, False]


def test_hits_fast_path_gives_the_same_accuracy_as_the_counts_path():
    from trainwell import Model, set_seeds

    set_seeds(0)
    x, y = torch.randn(203, 5), torch.randint(0, 4, (203,))
    model = Model(torch.nn.Linear(5, 4), "sgd", "cross_entropy", batch_metrics=["accuracy", "top2"])
    in_memory = model.evaluate(x, y, batch_size=16, verbose=False, return_dict_format=True)  # hits
    batches = [(x[i : i + 16], y[i : i + 16]) for i in range(0, 203, 16)]
    generator = model.evaluate_generator(batches, verbose=False, return_dict_format=True)  # counts
    assert model._loop.state.tracker.targets_valid is False
    for key in ("test_acc", "test_top2", "test_loss"):
        assert in_memory[key] == pytest.approx(generator[key], abs=1e-9)


def test_ignored_labels_keep_the_counts_path():
    from trainwell import Model

    x, y = torch.randn(40, 3), torch.randint(0, 3, (40,))
    y[::4] = -100
    model = Model(torch.nn.Linear(3, 3), "sgd", "cross_entropy", batch_metrics=["accuracy"])
    logs = model.evaluate(x, y, batch_size=8, verbose=False, return_dict_format=True)
    assert model._loop.state.tracker.targets_valid is False
    with torch.no_grad():
        predicted = model.network(x).argmax(1)
    kept = y != -100
    assert logs["test_acc"] == pytest.approx(100.0 * (predicted[kept] == y[kept]).float().mean().item(), abs=1e-4)


def test_a_resumed_phase_keeps_the_hits_layout():
    from trainwell.metrics.resolve import resolve_batch_metrics

    tracker = MetricTracker(resolve_batch_metrics(["accuracy"], "batch_metrics"), [])
    tracker.reset(targets_valid=True)
    y_pred, y_true = torch.tensor([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]]), torch.tensor([1, 1, 1])
    tracker.update(torch.tensor(0.5), y_pred, y_true, 3)
    restored = MetricTracker(resolve_batch_metrics(["accuracy"], "batch_metrics"), [])
    restored.reset()
    restored.load_state_dict(tracker.state_dict())
    tracker.update(torch.tensor(0.7), y_pred, y_true, 3)
    restored.update(torch.tensor(0.7), y_pred, y_true, 3)
    assert restored.compute() == tracker.compute() == {"loss": pytest.approx(0.6), "acc": pytest.approx(200 / 3)}


def _classification_batches():
    generator = torch.Generator().manual_seed(3)
    y_pred, y_true = torch.randn(30, 4, generator=generator), torch.randint(0, 4, (30,), generator=generator)
    return [(y_pred[:16], y_true[:16]), (y_pred[16:], y_true[16:])], y_pred, y_true


def test_a_metric_object_as_batch_metric_logs_its_batch_value_and_its_epoch_compute():
    from trainwell.metrics import F1, BatchMetricAdapter

    parts, y_pred, y_true = _classification_batches()
    tracker = MetricTracker([BatchMetricAdapter(F1())], [])
    tracker.reset()
    logs = []
    for pred, true in parts:
        with SyncGuard():  # the forward's value stays on the device until the logs are read
            values = tracker.update(torch.tensor(0.0), pred, true, len(pred))
        logs.append(BatchLogs({}, tracker, values)["fscore_macro"])
        alone = F1()
        alone.update(pred, true)
        assert logs[-1] == pytest.approx(alone.compute())
    assert tracker.running_logs()["fscore_macro"] == pytest.approx(logs[-1])  # the last batch's value
    whole = F1()
    whole.update(y_pred, y_true)
    assert tracker.compute()["fscore_macro"] == pytest.approx(whole.compute())  # not the mean of the batches
    tracker.reset()
    assert tracker.batch_metrics[0].metric.confusion.sum().item() == 0


def test_a_stateful_batch_metric_resumes_exactly_mid_phase():
    from trainwell.metrics.resolve import resolve_batch_metrics

    parts, _, _ = _classification_batches()
    tracker = MetricTracker(resolve_batch_metrics(["f1", "acc"]), [])
    tracker.reset()
    tracker.update(torch.tensor(1.0), *parts[0], 16)
    restored = MetricTracker(resolve_batch_metrics(["f1", "acc"]), [])
    restored.reset()
    restored.load_state_dict(tracker.state_dict())
    for other in (tracker, restored):
        other.update(torch.tensor(2.0), *parts[1], 14)
    assert restored.compute() == tracker.compute()


def test_python_numbers_and_containers_from_user_metrics():
    metrics = [
        BatchMetric(lambda y_pred, y_true: 2, ("two",)),
        BatchMetric(lambda y_pred, y_true: {"b": len(y_pred), "a": 1.5}, ("a", "b")),
        BatchMetric(lambda y_pred, y_true: (y_pred.sum(), 7), ("s", "seven")),
    ]
    tracker = MetricTracker(metrics, [])
    values = tracker.update(torch.tensor(1.0), torch.ones(3), None, 3)
    assert BatchLogs({}, tracker, values).copy() == {
        "loss": 1.0,
        "two": 2.0,
        "a": 1.5,
        "b": 3.0,
        "s": 3.0,
        "seven": 7.0,
    }
    tracker.update(torch.tensor(1.0), torch.ones(1), None, 1)
    assert tracker.compute() == {"loss": 1.0, "two": 2.0, "a": 1.5, "b": 2.5, "s": 2.5, "seven": 7.0}


def test_a_model_numbers_doubles_and_logs_every_kind_of_metric():
    from torch import nn

    from trainwell import F1, Metric, Model

    class Constant(Metric):
        def __init__(self, value):
            super().__init__()
            self.value = value

        def update(self, y_pred, y_true):
            pass

        def compute(self):
            return self.value

        def reset(self):
            pass

    def const(y_pred, y_true):
        return 3

    torch.manual_seed(0)
    x, y = torch.randn(20, 3), torch.randint(0, 2, (20,))
    model = Model(
        nn.Linear(3, 2),
        "sgd",
        "cross_entropy",
        batch_metrics=[const, const, "f1"],
        epoch_metrics=[(("a", "b"), Constant({"a": 1, "b": 2})), const, "acc"],
    )
    assert model.metrics_names == ["const1", "const2", "fscore_macro", "a", "b", "const3", "acc"]
    history = model.fit(x, y, validation_data=(x, y), batch_size=8, epochs=1, verbose=False)
    logs = history[0]
    assert logs["const1"] == logs["const2"] == logs["val_const3"] == 3.0
    assert (logs["a"], logs["b"], logs["val_b"]) == (1.0, 2.0, 2.0)
    with torch.no_grad():
        predicted = model.network(x).argmax(1)
    f1 = F1()
    f1.update(model.network(x).detach(), y)
    assert logs["val_fscore_macro"] == pytest.approx(f1.compute(), abs=1e-6)
    assert logs["val_acc"] == pytest.approx(100.0 * (predicted == y).float().mean().item(), abs=1e-4)


class _Counting(Metric):
    """Counts its updates in a buffer, returns the buffer itself from compute, and counts its resets."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("total", torch.zeros(()))
        self.resets = 0

    def forward(self, y_pred, y_true):
        self.update(y_pred, y_true)
        return self.total

    def update(self, y_pred, y_true) -> None:
        self.total += 1

    def compute(self):
        return self.total  # the state tensor itself: the reset that follows must not change the logged value

    def reset(self) -> None:
        self.total.zero_()
        self.resets += 1


def test_a_metric_is_reset_after_each_phase_computes_it_never_before_the_first():
    metric = _Counting()
    # No sanity check: its trial phases would compute (and reset) the metric too.
    model = Model(nn.Linear(2, 1), "sgd", "mse", epoch_metrics=[("count", metric)], sanity_check=False)
    x, y = torch.randn(12, 2), torch.randn(12, 1)
    history = model.fit(x, y, validation_data=(x, y), batch_size=4, epochs=2, verbose=False)
    assert [(epoch["count"], epoch["val_count"]) for epoch in history] == [(3.0, 3.0), (3.0, 3.0)]
    assert metric.resets == 4  # one per phase, after its value is read
    assert float(metric.total) == 0.0  # the last phase left it reset


def test_a_phase_cut_short_leaves_no_state_for_the_next_one():
    metric = _Counting()
    model = Model(nn.Linear(2, 1), "sgd", "mse", epoch_metrics=[("count", metric)])

    def batches():
        yield torch.randn(4, 2), torch.randn(4, 1)
        raise RuntimeError("the data broke")

    with pytest.raises(RuntimeError, match="the data broke"):
        model.fit_generator(batches(), epochs=1, verbose=False)
    assert float(metric.total) == 1.0  # the interrupted phase's state
    x, y = torch.randn(8, 2), torch.randn(8, 1)
    assert model.evaluate(x, y, batch_size=4, return_dict_format=True)["test_count"] == 2.0


@pytest.mark.parametrize("fold_every", [1, 2, 3, 64])
def test_sums_over_runs_of_batch_sizes_across_folds(fold_every):
    # Sizes change inside a fold and back again (5, 5, 2, 5, 3): each run of equal sizes is weighted apart.
    losses = [0.25, 1.5, 3.0, 0.125, 2.0, 0.75]
    sizes = [5, 5, 2, 5, 3, 5]

    def counts(y_pred, y_true):
        return torch.stack([y_pred.sum(), torch.tensor(float(len(y_pred)))])

    metric = BatchMetric(counts, ("s",), counts=counts)  # [sum, count]: added up as they are
    tracker = MetricTracker([metric], [])
    tracker.FOLD_EVERY = fold_every
    expected_loss = sum(loss * size for loss, size in zip(losses, sizes)) / sum(sizes)
    for index, (loss, size) in enumerate(zip(losses, sizes)):
        tracker.update(torch.tensor(loss), torch.full((size,), float(index)), None, size)
        if index == 2:
            partial = tracker.running_logs()  # a read between folds changes nothing after it
            assert partial["loss"] == pytest.approx((0.25 * 5 + 1.5 * 5 + 3.0 * 2) / 12, rel=1e-12)
    logs = tracker.compute()
    assert logs["loss"] == pytest.approx(expected_loss, rel=1e-12)
    values_sum = sum(index * size for index, size in enumerate(sizes))
    assert logs["s"] == values_sum / sum(sizes)  # integer-valued sums: exact
    assert isinstance(logs["loss"], float)


def test_phase_values_are_python_floats_whatever_the_tensor_dtype():
    ints = BatchMetric(lambda y_pred, y_true: torch.tensor([3, 4]), ("a", "b"))
    tracker = MetricTracker([ints], [], with_loss=False)
    values = tracker.update(None, torch.zeros(2), None, 2)
    logs = tracker.batch_logs(values)
    assert logs == {"a": 3.0, "b": 4.0} and all(type(value) is float for value in logs.values())
