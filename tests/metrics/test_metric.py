from __future__ import annotations

import pytest
import torch

from trainwell.metrics import Metric


class Histogram(Metric):
    """Counts predicted classes; the number of classes is learned from the first batch."""

    def __init__(self):
        super().__init__()
        self.register_buffer("counts", None)

    def forward(self, y_pred, y_true):
        batch = torch.zeros(y_pred.shape[1], dtype=torch.long).index_add_(
            0, y_pred.argmax(1), torch.ones(len(y_pred), dtype=torch.long)
        )
        self.counts = batch if self.counts is None else self.counts + batch
        return batch

    def update(self, y_pred, y_true):
        self(y_pred, y_true)

    def compute(self):
        return self.counts.tolist()

    def reset(self):
        self.counts = None


def test_a_metric_is_an_abstract_module() -> None:
    assert isinstance(Histogram(), torch.nn.Module)
    with pytest.raises(TypeError, match=r"abstract"):
        Metric()


def test_state_dict_round_trip_creates_a_lazy_buffer() -> None:
    metric = Histogram()
    metric.update(torch.eye(3), None)
    fresh = Histogram()
    assert fresh.counts is None
    fresh.load_state_dict(metric.state_dict())
    assert fresh.compute() == [1, 1, 1]


def test_state_tensors_and_merge_default_to_summed_buffers() -> None:
    first, second = Histogram(), Histogram()
    first.update(torch.eye(2), None)
    second.update(torch.tensor([[0.0, 1.0]]), None)
    merged = Histogram()
    merged.load_state_tensors(merged.merge_states([first.state_tensors(), second.state_tensors()]))
    assert merged.compute() == [1, 2]
    assert merged.compute_on_device() == merged.compute()  # the default hook is compute()
    assert first.state_tensors()["counts"] is not first.counts  # copies


def test_unimplemented_methods_say_which_list_needs_them() -> None:
    class EpochOnly(Metric):
        def compute(self):
            return 0

        def reset(self):
            pass

    with pytest.raises(NotImplementedError, match=r"used as a batch metric but does not implement forward"):
        EpochOnly()(None, None)
    with pytest.raises(NotImplementedError, match=r"used as an epoch metric but does not implement update"):
        EpochOnly().update(None, None)
    assert EpochOnly().higher_is_better is None
