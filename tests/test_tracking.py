import torch

from tests.sync_guard import SyncGuard
from trainwell.metrics import Accuracy, BatchMetric
from trainwell.tracking import BatchLogs, MetricTracker


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
    model = Model(nn.Linear(3, 2), "sgd", "cross_entropy", batch_metrics=[metric])
    model.fit(torch.randn(8, 3), torch.randint(0, 2, (8,)), batch_size=4, epochs=1, verbose=False)
    assert seen == [False, False]
