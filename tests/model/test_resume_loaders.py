"""A user's own DataLoader resumes mid-epoch without fetching the samples already done, and ends bit for bit
like the uninterrupted run: shuffled or not, with its own generator, through a Subset, with worker
processes running random augmentations (persistent or not), with pinned memory, a DistributedSampler or a
BatchSampler of its own, and across an epoch boundary."""

from __future__ import annotations

import gc
import time
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import (
    BatchSampler,
    DataLoader,
    Dataset,
    DistributedSampler,
    RandomSampler,
    Subset,
    TensorDataset,
)

from tests.model.test_training_state import Snapshot
from trainwell import Model, set_seeds

EPOCHS = 3
_GENERATOR = torch.Generator().manual_seed(8)
_X = torch.randn(96, 6, generator=_GENERATOR)
_Y = (_X[:, 0] > 0).long() + (_X[:, 1] > 0.5).long()


class _Indexable(Dataset):
    """What a sampler needs of a dataset: its length (the samples come from AugmentingDataset)."""

    def __len__(self):
        return len(_X)

    def __getitem__(self, index):
        return index


class AugmentingDataset(Dataset):
    """Adds random noise per sample (an augmentation) and records every fetched index in a file, so that
    fetches made in worker processes are counted too."""

    def __init__(self, log: Path) -> None:
        self.log = log

    def __len__(self):
        return len(_X)

    def __getitem__(self, index):
        with open(self.log, "a") as handle:
            handle.write(f"{index}\n")
        return _X[index] + 0.1 * torch.randn(6), _Y[index]


def _fetches(log: Path) -> int:
    return len(log.read_text().splitlines()) if log.exists() else 0


def _model():
    set_seeds(5)
    network = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 3))
    return Model(network, "adam", "cross_entropy", batch_metrics=["accuracy"], sanity_check=False)


LOADERS = {
    "shuffled": lambda log: DataLoader(AugmentingDataset(log), batch_size=8, shuffle=True),
    "sequential": lambda log: DataLoader(AugmentingDataset(log), batch_size=8),
    "own generator": lambda log: DataLoader(
        AugmentingDataset(log), batch_size=8, shuffle=True, generator=torch.Generator().manual_seed(3)
    ),
    "subset of tensors": lambda log: DataLoader(
        Subset(TensorDataset(_X, _Y), list(range(95, -1, -1))), batch_size=8, shuffle=True
    ),
    "two workers": lambda log: DataLoader(AugmentingDataset(log), batch_size=8, shuffle=True, num_workers=2),
    "persistent workers": lambda log: DataLoader(
        AugmentingDataset(log), batch_size=8, shuffle=True, num_workers=2, persistent_workers=True
    ),
    "pinned memory": lambda log: DataLoader(AugmentingDataset(log), batch_size=8, shuffle=True, pin_memory=True),
    # A DistributedSampler outside torchrun (one replica): it shuffles by its own seed and epoch.
    "distributed sampler": lambda log: DataLoader(
        AugmentingDataset(log), batch_size=8, sampler=DistributedSampler(_Indexable(), num_replicas=1, rank=0, seed=4)
    ),
    "batch sampler": lambda log: DataLoader(
        AugmentingDataset(log), batch_sampler=BatchSampler(RandomSampler(range(len(_X))), batch_size=8, drop_last=False)
    ),
}


def _wait_until_quiet(log: Path, quiet: float = 0.5, limit: float = 20.0) -> None:
    """Returns once ``log`` has not grown for ``quiet`` seconds (or after ``limit``)."""
    deadline, size, since = time.monotonic() + limit, -1, time.monotonic()
    while time.monotonic() < deadline:
        now = log.stat().st_size if log.exists() else 0
        if now != size:
            size, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return
        time.sleep(0.05)


def _run(make_loader, log: Path, stop_at=None):
    model = _model()
    callbacks = [Snapshot(*stop_at)] if stop_at else []
    first = make_loader(log)
    try:
        model.fit_generator(first, epochs=EPOCHS, verbose=False, callbacks=callbacks)
        return model, None
    except KeyboardInterrupt:
        snapshot = callbacks[0].snapshot
    # The interrupted run's worker processes may still be finishing the batches they prefetched (a process
    # that dies takes its workers with it; this one lives on): let them go quiet before counting afresh.
    del first
    gc.collect()
    _wait_until_quiet(log)
    log.unlink(missing_ok=True)
    model = _model()  # a new process: fresh objects, other random states
    torch.rand(5)
    loader = make_loader(log)  # built before the state is restored, as a script does before resuming
    initial_epoch = model.restore_training_state(snapshot)
    model.fit_generator(loader, epochs=EPOCHS, initial_epoch=initial_epoch, verbose=False)
    return model, _fetches(log)


@pytest.mark.parametrize("kind", sorted(LOADERS))
@pytest.mark.parametrize("stop_at", [(2, 5), (1, None)], ids=["mid-epoch", "epoch end"])
def test_a_users_loader_resumes_without_replay_and_ends_bit_for_bit(kind, stop_at, tmp_path):
    reference, _ = _run(LOADERS[kind], tmp_path / "reference.log")
    resumed, fetched = _run(LOADERS[kind], tmp_path / "resumed.log", stop_at)
    for name, tensor in reference.network.state_dict().items():
        assert torch.equal(tensor, resumed.network.state_dict()[name]), name
    if kind != "subset of tensors":  # the tensors are read directly: nothing to count
        epoch, batch = stop_at
        done = 0 if batch is None else batch * 8  # samples of the resumed epoch already trained
        remaining_epochs = EPOCHS - epoch + (0 if batch is None else 1)
        assert fetched == remaining_epochs * len(_X) - done  # not one done sample fetched again


def test_the_negative_control_a_replayed_loader_of_another_kind_still_resumes_exactly(tmp_path):
    # A plain generator cannot be advanced without reading it: it is read forward, with a warning.
    batches = [(_X[i : i + 8], _Y[i : i + 8]) for i in range(0, 96, 8)]

    class Replayable:
        def __iter__(self):
            return iter(batches)

        def __len__(self):
            return len(batches)

    reference, _ = _run(lambda log: Replayable(), tmp_path / "a.log")
    with pytest.warns(UserWarning, match="reads and drops the 5 batches"):
        resumed, _ = _run(lambda log: Replayable(), tmp_path / "b.log", (2, 5))
    assert torch.equal(reference.network[0].weight, resumed.network[0].weight)


def test_the_fast_path_trains_exactly_like_the_loader_itself():
    """The fast path (tensors indexed with the batch sampler) against the loader iterated by torch."""

    class Opaque(DataLoader):  # a subclass is iterated as it is, by torch
        pass

    def train(loader_class):
        model = _model()
        loader = loader_class(TensorDataset(_X, _Y), batch_size=8, shuffle=True)
        history = model.fit_generator(loader, epochs=2, verbose=False)
        return model, history

    fast, fast_history = train(DataLoader)
    slow, slow_history = train(Opaque)
    assert [row["loss"] for row in fast_history] == [row["loss"] for row in slow_history]
    for name, tensor in fast.network.state_dict().items():
        assert torch.equal(tensor, slow.network.state_dict()[name]), name


class CountingStream(torch.utils.data.IterableDataset):
    """An iterable-style dataset that knows its position (state_dict/load_state_dict) and counts reads."""

    def __init__(self, log: Path) -> None:
        self.log, self.position = log, 0

    def __iter__(self):
        while self.position < len(_X):
            index = self.position
            self.position += 1
            with open(self.log, "a") as handle:
                handle.write(f"{index}\n")
            yield _X[index], _Y[index]
        self.position = 0  # the next pass starts over

    def __len__(self):
        return len(_X) // 8 * 8

    def state_dict(self):
        return {"position": self.position}

    def load_state_dict(self, state):
        self.position = int(state["position"])


STATEFUL = {
    "StatefulDataLoader": lambda log: pytest.importorskip("torchdata.stateful_dataloader").StatefulDataLoader(
        AugmentingDataset(log), batch_size=8, shuffle=True
    ),
    "stateful iterable dataset": lambda log: DataLoader(CountingStream(log), batch_size=8),
}


@pytest.mark.filterwarnings("ignore:'set_vital' is deprecated")
@pytest.mark.parametrize("kind", sorted(STATEFUL))
def test_a_stateful_source_continues_from_its_saved_position(kind, tmp_path):
    reference, _ = _run(STATEFUL[kind], tmp_path / "reference.log")
    resumed, fetched = _run(STATEFUL[kind], tmp_path / "resumed.log", (2, 5))
    assert fetched == 2 * len(_X) - 5 * 8  # the rest of epoch 2 and all of epoch 3: nothing replayed
    for name, tensor in reference.network.state_dict().items():
        assert torch.equal(tensor, resumed.network.state_dict()[name]), name
