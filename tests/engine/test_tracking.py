import pytest
import torch

from tests.sync_guard import SyncGuard
from trainwell.engine.tracking import BatchLogs, MetricTracker
from trainwell.metrics import Accuracy, BatchMetric


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
