import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from trainwell import TensorDataset


def test_samples_keep_the_nesting_of_the_arguments():
    x1, x2, y = torch.arange(10).reshape(5, 2), np.arange(5) * 10, torch.arange(5) + 100
    dataset = TensorDataset((x1, [x2]), y)
    assert len(dataset) == 5
    (first, (second,)), target = dataset[3]
    assert torch.equal(first, torch.tensor([6, 7]))
    assert second == 30 and isinstance(second, np.integer)
    assert target.item() == 103
    assert isinstance(dataset[0], tuple) and isinstance(dataset[0][0], tuple) and isinstance(dataset[0][0][1], list)


def test_one_tensor_gives_one_element_tuples_like_torch():
    dataset = TensorDataset(torch.arange(3))
    assert dataset[2] == (torch.tensor(2),)


def test_a_data_loader_collates_the_nested_samples():
    dataset = TensorDataset((torch.zeros(6, 2), torch.ones(6)), torch.arange(6))
    (x1, x2), y = next(iter(DataLoader(dataset, batch_size=4)))
    assert x1.shape == (4, 2) and x2.shape == (4,) and y.tolist() == [0, 1, 2, 3]


def test_lengths_that_differ_are_refused():
    with pytest.raises(ValueError, match=r"different lengths \[5, 4\]"):
        TensorDataset((torch.zeros(5), torch.zeros(4)))
    with pytest.raises(ValueError, match="at least one tensor"):
        TensorDataset()
    with pytest.raises(TypeError, match=r"tensors\[0\] must be a tensor, an array.*Received: int"):
        TensorDataset(3)
