"""A DataLoader over an (x, y) TensorDataset exposes its targets: checked once, hits counted alone."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from trainwell import Callback, Model, set_seeds
from trainwell.data import IterableBatches

X = torch.randn(96, 4, generator=torch.Generator().manual_seed(0))
Y = (X[:, 0] > 0).long()


class Kinds(Callback):
    """Records how the tracker sums accuracy in each phase ('hits' or 'counts')."""

    def __init__(self):
        self.kinds = []

    def on_train_batch_end(self, batch_number, logs):
        if batch_number == 1:
            self.kinds.append(self.model.state.tracker._kinds[1])


def _accuracy_with(loader, ignore_label=False):
    set_seeds(0)
    model = Model(nn.Linear(4, 2), "sgd", "cross_entropy", batch_metrics=["accuracy"], sanity_check=False)
    kinds = Kinds()
    history = model.fit_generator(loader, epochs=1, verbose=False, callbacks=[kinds])
    return history[0]["acc"], kinds.kinds[0]


def test_a_tensor_dataset_loader_counts_hits_alone_and_gives_the_same_accuracy():
    plain = DataLoader(TensorDataset(X, Y), batch_size=16)
    # The same batches through a loader the loop cannot see into (a list of them).
    opaque = list(DataLoader(TensorDataset(X, Y), batch_size=16))
    accuracy, kind = _accuracy_with(plain)
    other_accuracy, other_kind = _accuracy_with(opaque)
    assert (kind, other_kind) == ("hits", "counts")
    assert accuracy == pytest.approx(other_accuracy, abs=1e-9)


def test_ignored_labels_keep_the_counting_path():
    y = Y.clone()
    y[::3] = -100  # ignored by cross_entropy and by accuracy
    accuracy, kind = _accuracy_with(DataLoader(TensorDataset(X, y), batch_size=16))
    assert kind == "counts"
    assert 0 <= accuracy <= 100


def test_only_plain_loaders_expose_targets():
    assert IterableBatches(DataLoader(TensorDataset(X, Y), batch_size=8)).targets is Y
    custom = DataLoader(TensorDataset(X, Y), batch_size=8, collate_fn=lambda samples: samples)
    assert IterableBatches(custom).targets is None  # its batches are whatever the collate makes
    assert IterableBatches(DataLoader(TensorDataset(X), batch_size=8)).targets is None
    assert IterableBatches([(X, Y)]).targets is None


def test_a_bad_label_anywhere_in_the_dataset_fails_at_the_first_batch():
    y = Y.clone()
    y[-1] = 7  # out of range for 2 outputs, in the last batch
    model = Model(nn.Linear(4, 2), "sgd", "cross_entropy", sanity_check=False)
    seen = []

    class Count(Callback):
        def on_train_batch_end(self, batch_number, logs):
            seen.append(batch_number)

    with pytest.raises(ValueError, match="Class labels"):
        model.fit_generator(
            DataLoader(TensorDataset(X, y), batch_size=16), epochs=1, verbose=False, callbacks=[Count()]
        )
    assert seen == []  # checked before any batch was trained on
