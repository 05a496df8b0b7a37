import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from trainwell.data import IterableBatches, TensorBatches, batch_size_of, dataset_loader, flatten, to_device


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
    with pytest.raises(TypeError, match="tensors or NumPy arrays.*Received an element of type str"):
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
