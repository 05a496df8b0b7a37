"""Elastic resume in one process: merged running sums, and a global batch that cannot be kept.

The multi-process runs (2 -> 1 -> 2 processes, killed with SIGKILL) are in tests/integration/test_scale.py.
"""

import pytest
import torch
from torch import nn

from trainwell import Callback, Model
from trainwell.engine.tracking import MetricTracker
from trainwell.metrics import Accuracy, FBeta


def _batches():
    generator = torch.Generator().manual_seed(0)
    return [(torch.randn(4, 3, generator=generator), torch.randint(0, 3, (4,), generator=generator)) for _ in range(5)]


def test_merged_tracker_states_give_the_logs_of_one_tracker_over_every_batch():
    batches = _batches()
    whole = MetricTracker([Accuracy()], [FBeta()])
    parts = [MetricTracker([Accuracy()], [FBeta()]) for _ in range(2)]
    for index, (logits, targets) in enumerate(batches):
        loss = nn.functional.cross_entropy(logits, targets)
        whole.update(loss, logits, targets, len(targets))
        parts[index % 2].update(loss, logits, targets, len(targets))  # two ranks' shares
    merged = MetricTracker([Accuracy()], [FBeta()])
    merged.load_merged([part.state_dict() for part in parts])
    expected, got = whole.compute(), merged.compute()
    assert expected.keys() == got.keys()
    for key in expected:
        assert got[key] == pytest.approx(expected[key], abs=1e-6), key


class _Snapshot(Callback):
    def __init__(self, at):
        self.at, self.state = at, None

    def on_train_batch_end(self, batch_number, logs):
        if self.model.state.global_step == self.at:
            self.state = self.model.training_state()
            self.model.stop_training = True


def test_a_mid_epoch_resume_with_another_global_batch_is_refused_naming_batch_size():
    x, y = torch.randn(64, 3), torch.randint(0, 3, (64,))
    model = Model(nn.Linear(3, 3), "sgd", "cross_entropy", sanity_check=False)
    snapshot = _Snapshot(at=2)
    model.fit(x, y, epochs=1, batch_size=8, verbose=False, callbacks=[snapshot])
    assert snapshot.state["epoch_in_progress"]["global_batch"] == 8
    resumed = Model(nn.Linear(3, 3), "sgd", "cross_entropy", sanity_check=False)
    epoch = resumed.restore_training_state(snapshot.state)
    with pytest.raises(
        ValueError, match=r"`batch_size`: this mid-epoch checkpoint was taken with a global batch of 8 "
    ):
        resumed.fit(x, y, epochs=1, initial_epoch=epoch, batch_size=4, verbose=False)
    again = Model(nn.Linear(3, 3), "sgd", "cross_entropy", sanity_check=False)
    epoch = again.restore_training_state(snapshot.state)
    with pytest.raises(ValueError, match=r"pass batch_size=8 per process"):
        again.fit(x, y, epochs=1, initial_epoch=epoch, batch_size=16, verbose=False)
    # The same global batch continues.
    fine = Model(nn.Linear(3, 3), "sgd", "cross_entropy", sanity_check=False)
    epoch = fine.restore_training_state(snapshot.state)
    fine.fit(x, y, epochs=1, initial_epoch=epoch, batch_size=8, verbose=False)
    assert fine.state.global_step == 8
