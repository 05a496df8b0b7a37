import random
import re
from collections import namedtuple

import numpy as np
import pytest
import torch

from trainwell.utils.tensors import numpy_to_torch, set_seeds, torch_apply, torch_to, torch_to_numpy

Pair = namedtuple("Pair", ["x", "y"])


def test_torch_apply_walks_nested_containers_and_keeps_their_types():
    data = {"a": (torch.ones(2), [torch.zeros(1), "text"]), "b": 3}
    result = torch_apply(data, lambda t: t + 1)
    assert set(result) == {"a", "b"}
    assert isinstance(result["a"], tuple)
    assert isinstance(result["a"][1], list)
    assert torch.equal(result["a"][0], torch.full((2,), 2.0))
    assert torch.equal(result["a"][1][0], torch.ones(1))
    assert result["a"][1][1] == "text"
    assert result["b"] == 3


def test_torch_apply_rebuilds_named_tuples():
    result = torch_apply(Pair(torch.ones(1), (torch.zeros(1),)), lambda t: t * 3)
    assert isinstance(result, Pair)
    assert torch.equal(result.x, torch.full((1,), 3.0))
    assert isinstance(result.y, tuple)
    assert torch.equal(result.y[0], torch.zeros(1))


def test_torch_to_moves_every_tensor():
    result = torch_to({"x": [torch.ones(1, dtype=torch.float64)]}, "cpu")
    assert result["x"][0].device.type == "cpu"


def test_torch_to_numpy_detaches_and_converts():
    tensor = torch.ones(2, requires_grad=True) * 2
    result = torch_to_numpy({"p": tensor, "q": (torch.tensor([1, 2]),)})
    assert isinstance(result["p"], np.ndarray)
    np.testing.assert_array_equal(result["p"], [2.0, 2.0])
    assert isinstance(result["q"], tuple)
    np.testing.assert_array_equal(result["q"][0], [1, 2])


def test_torch_to_numpy_copy_does_not_share_memory():
    tensor = torch.zeros(3)
    shared = torch_to_numpy(tensor)
    copied = torch_to_numpy(tensor, copy=True)
    tensor += 1
    np.testing.assert_array_equal(shared, [1.0, 1.0, 1.0])
    np.testing.assert_array_equal(copied, [0.0, 0.0, 0.0])


def test_round_trip_through_nested_containers():
    original = {"x": [np.arange(6, dtype=np.float32).reshape(2, 3)], "y": Pair(np.array([1, 2]), np.int64(7))}
    tensors = numpy_to_torch(original)
    assert isinstance(tensors["y"], Pair)
    assert isinstance(tensors["y"].y, torch.Tensor)
    assert tensors["x"][0].dtype == torch.float32
    back = torch_to_numpy(tensors)
    np.testing.assert_array_equal(back["x"][0], original["x"][0])
    np.testing.assert_array_equal(back["y"].x, original["y"].x)
    assert back["y"].y == 7


def test_numpy_to_torch_shares_writable_arrays():
    array = np.zeros(3)
    tensor = numpy_to_torch(array)
    array[0] = 5
    assert tensor[0].item() == 5


def test_numpy_to_torch_copies_non_writable_arrays():
    array = np.arange(3)
    array.flags.writeable = False
    tensor = numpy_to_torch(array)
    tensor += 1  # would be undefined behaviour on a shared read-only buffer
    np.testing.assert_array_equal(array, [0, 1, 2])
    assert tensor.tolist() == [1, 2, 3]


def test_numpy_to_torch_leaves_other_values_alone():
    assert numpy_to_torch({"name": "a", "n": 1}) == {"name": "a", "n": 1}


def _draws() -> tuple[float, float, torch.Tensor]:
    return random.random(), float(np.random.rand()), torch.rand(3)


def test_set_seeds_reproduces_python_numpy_and_torch_draws():
    set_seeds(1234)
    first = _draws()
    set_seeds(1234)
    second = _draws()
    assert first[:2] == second[:2]
    assert torch.equal(first[2], second[2])

    set_seeds(4321)
    other = _draws()
    assert other[:2] != first[:2]


def test_set_seeds_accepts_seeds_beyond_numpys_range():
    set_seeds(2**40)


@pytest.mark.parametrize("seed", [1.5, "42", None, True])
def test_set_seeds_rejects_non_int(seed):
    with pytest.raises(
        TypeError,
        match=re.escape(f"`seed` must be an int. Received: seed={seed!r} (type {type(seed).__name__})."),
    ):
        set_seeds(seed)


def test_torch_apply_leaves_the_batch_sizes_of_a_packed_sequence_alone():
    from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence

    padded = torch.randn(4, 3, 2)  # (time, batch, features)
    packed = pack_padded_sequence(padded, torch.tensor([2, 4, 3]), enforce_sorted=False)
    result = torch_apply(packed, lambda t: t.double() if t.is_floating_point() else t + 0)
    assert isinstance(result, PackedSequence)
    assert result.data.dtype == torch.float64
    assert result.batch_sizes is packed.batch_sizes
    assert torch.equal(result.sorted_indices, packed.sorted_indices)
    assert torch.equal(result.unsorted_indices, packed.unsorted_indices)
    calls = []
    torch_apply((packed, [torch.ones(1)]), lambda t: calls.append(t.shape) or t)
    assert torch.Size([1]) in calls and packed.batch_sizes.shape not in calls[1:2]
    assert len(calls) == 4  # data, sorted and unsorted indices, and the list's tensor; never batch_sizes
