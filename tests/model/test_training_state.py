"""Exact resume at the Model level: a snapshot restored into a fresh model finishes bit-for-bit the same."""

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from trainwell import Callback, Model, set_seeds
from trainwell.storage.files import decode_state, encode_state
from trainwell.utils.rng import capture_rng

EPOCHS = 3


def _model():
    set_seeds(5)
    network = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 3))
    return Model(network, "adam", "cross_entropy", batch_metrics=["accuracy"], epoch_metrics=["f1"])


_GENERATOR = torch.Generator().manual_seed(6)
_X = torch.randn(90, 6, generator=_GENERATOR)
_Y = (_X[:, 0] > 0).long() + (_X[:, 1] > 0.5).long()


def _data():
    return _X, _Y  # made once: seeding here would reset the generators a resumed run restored


class Snapshot(Callback):
    """Takes a snapshot at (epoch, batch) -- batch None: at the end of the epoch -- and stops training there."""

    def __init__(self, epoch, batch):
        self.at, self.snapshot = (epoch, batch), None

    def on_train_batch_end(self, batch_number, logs):
        if (self.model.state.epoch, batch_number) == self.at:
            self._take()

    def on_epoch_end(self, epoch_number, logs):
        if (epoch_number, None) == self.at:
            self._take()

    def _take(self):
        # Through the checkpoint encoding: what is resumed is what a file would hold.
        skeleton, tensors = encode_state(self.model.training_state())
        self.snapshot = decode_state(skeleton, tensors)
        raise KeyboardInterrupt  # the process "dies" here


def _train(fit, stop_at=None):
    model = _model()
    callbacks = [Snapshot(*stop_at)] if stop_at else []
    history = []
    try:
        history = fit(model, 1, callbacks)
    except KeyboardInterrupt:
        snapshot = callbacks[0].snapshot
        model = _model()  # a new process: fresh objects, other RNG states
        torch.rand(7)
        initial_epoch = model.restore_training_state(snapshot)
        history = fit(model, initial_epoch, [])
    return model, history


def _fit_tensors(model, initial_epoch, callbacks):
    x, y = _data()
    return model.fit(
        x, y, validation_data=(x[:30], y[:30]), batch_size=8, epochs=EPOCHS, initial_epoch=initial_epoch,
        verbose=False, callbacks=callbacks,
    )  # fmt: skip


def _fit_loader(model, initial_epoch, callbacks):
    x, y = _data()
    loader = DataLoader(TensorDataset(x, y), batch_size=8, shuffle=True)
    return model.fit_generator(
        loader, [(x[:30], y[:30])], epochs=EPOCHS, initial_epoch=initial_epoch, verbose=False, callbacks=callbacks
    )


class CountingDataset(torch.utils.data.Dataset):
    """Counts the samples read, to show that a resumed epoch does not load the batches already done."""

    reads = 0

    def __len__(self):
        return len(_X)

    def __getitem__(self, index):
        CountingDataset.reads += 1
        return _X[index], _Y[index]


def _fit_dataset(model, initial_epoch, callbacks):
    return model.fit_dataset(
        CountingDataset(), TensorDataset(_X[:30], _Y[:30]), batch_size=8, epochs=EPOCHS, initial_epoch=initial_epoch,
        verbose=False, callbacks=callbacks,
    )  # fmt: skip


def test_a_resumed_dataset_epoch_does_not_load_the_batches_already_done():
    model = _model()
    snapshotter = Snapshot(2, 5)
    with pytest.raises(KeyboardInterrupt):
        _fit_dataset(model, 1, [snapshotter])
    resumed = _model()
    CountingDataset.reads = 0
    _fit_dataset(resumed, resumed.restore_training_state(snapshotter.snapshot), [])
    assert CountingDataset.reads == (len(_X) - 5 * 8) + len(_X)  # the rest of epoch 2, then all of epoch 3


@pytest.mark.parametrize("fit", [_fit_tensors, _fit_loader, _fit_dataset], ids=["tensors", "dataloader", "dataset"])
@pytest.mark.parametrize("stop_at", [(2, 5), (1, 12), (2, None), (3, 1)])
def test_a_resumed_run_ends_bit_for_bit_like_an_uninterrupted_one(fit, stop_at):
    reference, full_history = _train(fit)
    resumed, history = _train(fit, stop_at)
    for name, tensor in reference.network.state_dict().items():
        assert torch.equal(tensor, resumed.network.state_dict()[name]), name
    for key, value in reference.optimizer.state_dict()["state"][0].items():
        assert torch.equal(torch.as_tensor(value), torch.as_tensor(resumed.optimizer.state_dict()["state"][0][key]))
    # The resumed epochs log exactly what the uninterrupted run logged (all but the wall time).
    strip = [{k: v for k, v in entry.items() if k != "time"} for entry in history]
    assert strip == [{k: v for k, v in entry.items() if k != "time"} for entry in full_history[-len(history) :]]
    assert resumed.state.global_step == reference.state.global_step


def test_without_the_rng_the_resumed_run_differs():
    """Negative control: the same resume with the random generators left as they are does not match."""
    reference, _ = _train(_fit_tensors)
    model = _model()
    snapshotter = Snapshot(2, 5)
    with pytest.raises(KeyboardInterrupt):
        _fit_tensors(model, 1, [snapshotter])
    snapshot = dict(snapshotter.snapshot)
    resumed = _model()
    torch.manual_seed(123)
    snapshot["rng"] = capture_rng()
    snapshot["epoch_in_progress"] = {**snapshot["epoch_in_progress"], "epoch_rng": capture_rng()}
    _fit_tensors(resumed, resumed.restore_training_state(snapshot), [])
    assert not torch.equal(reference.network[0].weight, resumed.network[0].weight)


def test_a_snapshot_inside_a_gradient_accumulation_is_refused():
    class Early(Callback):
        def on_train_batch_end(self, batch_number, logs):
            self.model.training_state()

    x, y = _data()
    with pytest.raises(RuntimeError, match="in the middle of a gradient accumulation"):
        _model().fit(x, y, batches_per_step=2, epochs=1, verbose=False, callbacks=[Early()])
    with pytest.raises(RuntimeError, match="training_state\\(\\) is taken during fit"):
        _model().training_state()


def test_fit_must_start_where_the_snapshot_continues():
    model = _model()
    snapshotter = Snapshot(2, 3)
    with pytest.raises(KeyboardInterrupt):
        _fit_tensors(model, 1, [snapshotter])
    fresh = _model()
    assert fresh.restore_training_state(snapshotter.snapshot) == 2
    with pytest.raises(RuntimeError, match="continues epoch 2, but fit starts at epoch 1. Pass initial_epoch=2"):
        _fit_tensors(fresh, 1, [])


def _fit_single_samples(model, initial_epoch, callbacks):
    # Batches of one sample: 90 batches per epoch, so the tracker folds its sums (every 64 batches)
    # on both sides of the snapshot.
    return model.fit(_X, _Y, batch_size=1, epochs=2, initial_epoch=initial_epoch, verbose=False, callbacks=callbacks)


@pytest.mark.parametrize("stop_at", [(1, 70), (2, 64), (2, 3)])
def test_resuming_between_folds_of_the_running_sums_is_bit_exact(stop_at):
    reference, full_history = _train(_fit_single_samples)
    resumed, history = _train(_fit_single_samples, stop_at)
    strip = [{k: v for k, v in entry.items() if k != "time"} for entry in history]
    assert strip == [{k: v for k, v in entry.items() if k != "time"} for entry in full_history[-len(history) :]]
    for name, tensor in reference.network.state_dict().items():
        assert torch.equal(tensor, resumed.network.state_dict()[name]), name
