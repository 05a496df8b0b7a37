import numpy as np
import pytest
import torch
from torch.nn.utils.rnn import PackedSequence, pack_sequence
from torch.utils.data import DataLoader, TensorDataset

from trainwell.data import IterableBatches, TensorBatches, batch_size_of, dataset_loader, flatten, to_device
from trainwell.data.inputs import validation_source
from trainwell.data.sources import source_length


def test_tensor_batches_slice_without_shuffle_and_keep_last_partial_batch():
    x, y = torch.arange(10.0), torch.arange(10)
    batches = list(TensorBatches(x, y, batch_size=4, shuffle=False))
    assert [len(bx) for bx, _ in batches] == [4, 4, 2]
    assert torch.equal(torch.cat([bx for bx, _ in batches]), x)
    assert torch.equal(torch.cat([by for _, by in batches]), y)


def test_shuffle_is_a_permutation_that_changes_between_epochs_and_follows_the_seed():
    x = torch.arange(100.0)
    source = TensorBatches(x, x.clone(), batch_size=10, shuffle=True)
    torch.manual_seed(0)
    first = torch.cat([bx for bx, _ in source])
    second = torch.cat([bx for bx, _ in source])
    assert sorted(first.tolist()) == x.tolist()
    assert not torch.equal(first, second)
    # x and y stay aligned through the shuffle
    for bx, by in source:
        assert torch.equal(bx, by)
    torch.manual_seed(0)
    assert torch.equal(torch.cat([bx for bx, _ in source]), first)


def test_nested_numpy_inputs_become_tensors_with_same_structure():
    x = {"a": np.ones((6, 2), dtype=np.float32), "b": (np.zeros(6), np.arange(6))}
    (bx, by), *_ = list(TensorBatches(x, np.arange(6), batch_size=4, shuffle=False))
    assert set(bx) == {"a", "b"} and isinstance(bx["b"], tuple)
    assert bx["a"].shape == (4, 2) and torch.equal(by, torch.arange(4))


def test_skip_next_epoch_draws_the_same_permutation_and_skips_the_done_batches():
    x = torch.arange(50.0)
    source = TensorBatches(x, x, batch_size=5, shuffle=True)
    torch.manual_seed(3)
    full = [bx.tolist() for bx, _ in source]
    torch.manual_seed(3)
    source.skip_next_epoch(4)
    assert [bx.tolist() for bx, _ in source] == full[4:]
    assert len([bx for bx, _ in source]) == 10  # only the next epoch is shortened


@pytest.mark.parametrize("pair", [True, False])
def test_skipping_every_batch_or_more_leaves_an_empty_epoch(pair):
    x = torch.arange(12.0).reshape(6, 2)
    source = TensorBatches(x, torch.arange(6) if pair else None, batch_size=4, shuffle=False)
    for done in (2, 3):  # all the batches, and more than all (a checkpoint at the epoch's end)
        source.skip_next_epoch(done)
        assert list(source) == []
    source.skip_next_epoch(1)
    rest = list(source)
    assert len(rest) == 1 and torch.equal(rest[0][0] if pair else rest[0], x[4:])


def test_inputs_alone_come_as_views_of_the_tensor():
    x = torch.arange(20.0).reshape(10, 2)
    batches = list(TensorBatches(x, None, batch_size=4, shuffle=False))
    assert [batch.shape[0] for batch in batches] == [4, 4, 2]
    assert all(batch.untyped_storage().data_ptr() == x.untyped_storage().data_ptr() for batch in batches)
    assert torch.equal(torch.cat(batches), x)


@pytest.mark.parametrize(
    ("x", "y", "match"),
    [
        (torch.zeros(5, 2), torch.zeros(4), "Received: x has 5 samples, y has 4"),
        (torch.zeros(0, 2), torch.zeros(0), "is empty"),
        ((torch.zeros(5), torch.zeros(6)), torch.zeros(5), r"same number of samples.*\[5, 6\]"),
        (torch.tensor(1.0), torch.zeros(1), "0-dimensional"),
    ],
)
def test_bad_in_memory_data_is_rejected_with_the_reason(x, y, match):
    with pytest.raises(ValueError, match=match):
        TensorBatches(x, y, batch_size=2, shuffle=False)


def test_non_tensor_leaves_are_rejected():
    with pytest.raises(TypeError, match="must hold tensors or NumPy arrays.*Received: an element of type str"):
        flatten(("a", torch.zeros(1)))


def test_iterable_batches_cycle_a_dataloader_and_continue_a_generator():
    loader = DataLoader(TensorDataset(torch.arange(6.0)), batch_size=2)
    cycled = IterableBatches(loader, steps=5)
    assert len(cycled) == 5
    assert [b[0].tolist() for b in cycled] == [[0, 1], [2, 3], [4, 5], [0, 1], [2, 3]]

    generator = iter(range(7))
    continued = IterableBatches(generator, steps=3)
    assert list(continued) == [0, 1, 2]
    assert list(continued) == [3, 4, 5]
    assert list(continued) == [6]  # runs dry: the epoch ends early instead of spinning


def test_iterable_without_len_has_no_len():
    with pytest.raises(TypeError):
        len(IterableBatches(x for x in range(3)))
    with pytest.raises(TypeError, match="must be an iterable of batches"):
        IterableBatches(3)


def test_dataset_loader_kwargs_override_defaults():
    loader = dataset_loader(
        TensorDataset(torch.zeros(10)), batch_size=2, shuffle=True, dataloader_kwargs={"batch_size": 5}
    )
    assert [len(batch[0]) for batch in loader] == [5, 5]
    generator = torch.Generator()
    own = dataset_loader(TensorDataset(torch.arange(10)), batch_size=4, shuffle=True, dataloader_kwargs={
        "generator": generator.manual_seed(1), "drop_last": True})  # fmt: skip
    first = [batch[0].tolist() for batch in own]
    generator.manual_seed(1)
    assert [batch[0].tolist() for batch in own] == first and len(first) == 2  # the user's generator, drop_last


def test_a_dataset_loader_skips_without_changing_the_order():
    source = IterableBatches(dataset_loader(TensorDataset(torch.arange(20)), batch_size=3, shuffle=True))
    torch.manual_seed(4)
    full = [batch[0].tolist() for batch in source]
    torch.manual_seed(4)
    assert source.skip_next_epoch(2)
    assert [batch[0].tolist() for batch in source] == full[2:]
    assert len([batch for batch in source]) == 7  # only one epoch is shortened


def test_batch_size_and_device_helpers():
    assert batch_size_of({"a": torch.zeros(7, 3)}) == 7
    assert batch_size_of(torch.tensor(1.0), torch.zeros(4)) == 4
    moved = to_device({"a": np.zeros(2)}, torch.device("cpu"))
    assert isinstance(moved["a"], torch.Tensor)


class CountingIterable:
    """A user's iterable of batches that records how it is used."""

    def __init__(self, batches):
        self.batches = batches
        self.calls = []

    def __len__(self):
        self.calls.append("len")
        return len(self.batches)

    def __iter__(self):
        self.calls.append("iter")
        for batch in self.batches:
            self.calls.append("next")
            yield batch


def test_the_length_is_read_once_and_an_epoch_takes_exactly_that_many_batches():
    source = CountingIterable(list(range(3)))
    batches = IterableBatches(source)
    assert list(batches) == [0, 1, 2] and list(batches) == [0, 1, 2] and len(batches) == 3
    # No fourth next() to find the end: the length says where the epoch ends.
    assert source.calls == ["len", "iter", "next", "next", "next", "iter", "next", "next", "next"]


def test_an_endless_iterator_with_a_length_gives_epochs_of_that_length():
    class Endless:
        def __len__(self):
            return 2

        def __iter__(self):
            return iter(range(100))

    assert list(IterableBatches(Endless())) == [0, 1]


def test_restart_begins_every_epoch_from_the_start_of_the_source():
    loader = DataLoader(TensorDataset(torch.arange(6.0)), batch_size=2)
    batches = IterableBatches(loader, steps=2, restart=True)
    assert [b[0].tolist() for b in batches] == [[0, 1], [2, 3]]
    assert [b[0].tolist() for b in batches] == [[0, 1], [2, 3]]  # the same batches, not [4, 5], [0, 1]


def test_validation_batches_follow_poutynes_rule():
    loader = DataLoader(TensorDataset(torch.arange(6.0)), batch_size=2)
    assert len(validation_source(loader, 2, 5, "valid_generator")) == 2  # validation_steps first
    assert len(validation_source(loader, None, 5, "valid_generator")) == 3  # then len()
    assert len(validation_source(iter(range(9)), None, 5, "valid_generator")) == 5  # then steps_per_epoch
    one_pass = validation_source(iter(range(4)), None, None, "valid_generator")
    assert source_length(one_pass) is None and list(one_pass) == [0, 1, 2, 3]


def test_batch_size_of_packed_sequences_and_dicts_that_say_it():
    packed = pack_sequence([torch.ones(4, 2), torch.ones(3, 2), torch.ones(1, 2)])
    assert batch_size_of(packed, torch.zeros(3)) == 3  # sequences, not time steps
    assert batch_size_of({"batch_size": 7, "tokens": torch.zeros(50)}) == 7


def test_to_device_moves_a_packed_sequence_and_keeps_its_batch_sizes_on_the_cpu():
    packed = pack_sequence([torch.ones(3, 2), torch.ones(2, 2)], enforce_sorted=False)
    (moved, other) = to_device((packed, np.zeros(2)), torch.device("cpu"))
    assert isinstance(moved, PackedSequence) and moved.batch_sizes.device.type == "cpu"
    assert torch.equal(moved.data, packed.data) and isinstance(other, torch.Tensor)
