"""Reading a DataLoader through its batch sampler: the fast path is the loader's own batches, bit for bit, and a
skipped epoch fetches nothing it leaves out."""

from __future__ import annotations

import multiprocessing
import random
import weakref

import pytest
import torch
from torch.utils.data import DataLoader, Dataset, Subset, TensorDataset

from trainwell import Callback, Model
from trainwell.data.loader_reading import NumberedBatch, SeededDataset, reader_of
from trainwell.utils.rng import capture_rng, restore_rng


def _reader(loader):
    return reader_of(loader, capture_rng, restore_rng)


def _same(batches_a, batches_b):
    assert len(batches_a) == len(batches_b)
    for a, b in zip(batches_a, batches_b):
        assert type(a) is type(b) and len(a) == len(b)
        for x, y in zip(a, b):
            assert x.dtype == y.dtype and x.shape == y.shape and torch.equal(x, y)


def _data(n=53):
    torch.manual_seed(3)
    return torch.randn(n, 4), torch.randint(0, 5, (n,)), torch.rand(n, 2, 3) > 0.5


@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("with_generator", [False, True])
@pytest.mark.parametrize("drop_last", [False, True])
def test_the_fast_path_gives_the_loaders_own_batches_and_random_state(shuffle, with_generator, drop_last):
    dataset = TensorDataset(*_data())

    def loader():
        generator = torch.Generator().manual_seed(7) if with_generator else None
        return DataLoader(dataset, batch_size=8, shuffle=shuffle, generator=generator, drop_last=drop_last)

    torch.manual_seed(11)
    expected = list(loader())
    after_expected = torch.rand(3)  # the global generator after iterating the loader itself
    torch.manual_seed(11)
    reader = _reader(loader())
    assert reader.fast
    got = list(reader)
    _same(got, expected)
    assert torch.equal(torch.rand(3), after_expected)


def test_the_fast_path_goes_through_subsets():
    x, y, _ = _data()
    subset = Subset(Subset(TensorDataset(x, y), list(range(40, 0, -1))), [5, 1, 30, 2, 9])
    loader = DataLoader(subset, batch_size=2)
    reader = _reader(loader)
    assert reader.fast
    _same(list(reader), list(loader))


class CountingDataset(Dataset):
    """A map-style dataset that counts its fetches and draws a random augmentation per sample."""

    def __init__(self, n=40):
        self.n = n
        self.fetched = []

    def __len__(self):
        return self.n

    def __getitem__(self, index):
        self.fetched.append(index)
        return torch.tensor([float(index)]) + torch.rand(1), torch.tensor(index)


def _epoch_with_resume(loader_factory, done):
    """The batches after ``done`` of an epoch read whole, and of the same epoch resumed after ``done``."""
    torch.manual_seed(5)
    random.seed(5)
    epoch_state = capture_rng()
    whole_reader = _reader(loader_factory())
    whole = []
    for number, batch in enumerate(whole_reader, 1):
        whole.append(batch)
        if number == done:
            checkpoint = capture_rng()
    # The resumed process: the epoch's start, then the checkpoint's generators after the skip.
    restore_rng(epoch_state)
    loader = loader_factory()
    reader = _reader(loader)
    reader.skip_next_epoch(done, checkpoint)
    rest = list(reader)
    return whole[done:], rest, loader


@pytest.mark.parametrize("shuffle", [False, True])
def test_a_skipped_epoch_fetches_nothing_it_leaves_out_and_continues_identically(shuffle):
    dataset = CountingDataset()

    def factory():
        dataset.fetched = []
        return DataLoader(dataset, batch_size=4, shuffle=shuffle)

    expected, rest, _ = _epoch_with_resume(factory, done=6)
    assert len(dataset.fetched) == 4 * 4  # the 4 batches after the 6 done ones, nothing else
    _same(rest, expected)  # including the random augmentation drawn while fetching


def test_the_fast_path_skips_without_indexing_the_done_batches():
    x, y, _ = _data()

    def factory():
        return DataLoader(TensorDataset(x, y), batch_size=8, shuffle=True)

    expected, rest, _ = _epoch_with_resume(factory, done=3)
    _same(rest, expected)


def test_with_workers_each_batch_is_seeded_by_its_number_whichever_worker_fetches_it():
    dataset = CountingDataset(24)

    def factory():
        return DataLoader(dataset, batch_size=4, shuffle=True, num_workers=2)

    expected, rest, _ = _epoch_with_resume(factory, done=3)
    _same(rest, expected)
    # Two passes of the same epoch (same starting state) are the same batches: the seeds come from the
    # epoch's state, not from which worker ran what before.
    torch.manual_seed(9)
    first = list(_reader(factory()))
    torch.manual_seed(9)
    second = list(_reader(factory()))
    _same(first, second)


def test_persistent_workers_give_the_same_epochs_as_fresh_ones():
    dataset = CountingDataset(16)
    torch.manual_seed(2)
    persistent = _reader(DataLoader(dataset, batch_size=4, shuffle=True, num_workers=2, persistent_workers=True))
    epochs_persistent = []
    for _ in range(2):
        state = capture_rng()
        epochs_persistent.append(list(persistent))
    # A fresh loader (a resumed process) started from the second epoch's state gives the second epoch.
    restore_rng(state)
    fresh = _reader(DataLoader(dataset, batch_size=4, shuffle=True, num_workers=2, persistent_workers=True))
    _same(list(fresh), epochs_persistent[1])


@pytest.mark.parametrize("kind", ["fit", "evaluate", "predict", "fit raises"])
def test_the_worker_processes_of_trainwells_copy_stop_when_the_run_ends(kind):
    """With workers, trainwell iterates its own copy of the loader (per-batch seeds); a persistent copy's
    workers must stop when fit/evaluate/predict returns or raises, not when the garbage collector finds the
    copy (torch's shutdown from inside a collection waits 5 s per worker), while the model lives on."""
    x, y, _ = _data(48)
    generator = torch.Generator().manual_seed(0)
    loader = DataLoader(
        TensorDataset(x, y), batch_size=8, shuffle=True, num_workers=2, persistent_workers=True, generator=generator
    )
    model = Model(torch.nn.Linear(4, 5), "sgd", "cross_entropy", sanity_check=False)
    before = set(multiprocessing.active_children())

    class Fails(Callback):
        def on_epoch_end(self, epoch, logs):
            raise RuntimeError("stop here")

    if kind == "fit":
        model.fit_generator(loader, loader, epochs=2, verbose=False)
    elif kind == "evaluate":
        model.evaluate_generator(loader, verbose=False)
    elif kind == "predict":
        model.predict_generator(loader, has_ground_truth=True, verbose=False)
    else:
        with pytest.raises(RuntimeError, match="stop here"):
            model.fit_generator(loader, epochs=2, verbose=False, callbacks=[Fails()])
    assert set(multiprocessing.active_children()) - before == set()
    # The user's loader has workers of its own once iterated; the model, alive, does not hold it: dropping it
    # frees it at once, not at the next garbage collection.
    assert list(loader) and len(set(multiprocessing.active_children()) - before) == 2
    alive = weakref.ref(loader)
    del loader
    assert alive() is None and model.network is not None
    assert set(multiprocessing.active_children()) - before == set()
    if kind.startswith("fit"):  # what a checkpoint takes of the source after the fit: its generator's state
        assert torch.equal(model.training_state()["source_generators"][0], generator.get_state())


def test_seeded_dataset_seeds_every_generator_from_the_batch():
    dataset = SeededDataset(CountingDataset())
    a = dataset.__getitems__(NumberedBatch([1, 2], seed=10, number=3))
    b = dataset.__getitems__(NumberedBatch([1, 2], seed=10, number=3))
    c = dataset.__getitems__(NumberedBatch([1, 2], seed=10, number=4))
    assert all(torch.equal(x[0], y[0]) for x, y in zip(a, b))
    assert not all(torch.equal(x[0], y[0]) for x, y in zip(a, c))


def test_other_loaders_are_not_read():
    class Custom(DataLoader):
        pass

    x, y, _ = _data()
    assert reader_of(Custom(TensorDataset(x, y)), capture_rng, restore_rng) is None
    assert reader_of([(x, y)], capture_rng, restore_rng) is None
    assert not _reader(DataLoader(TensorDataset(x, y), collate_fn=lambda batch: batch)).fast
    assert not _reader(DataLoader(CountingDataset())).fast
