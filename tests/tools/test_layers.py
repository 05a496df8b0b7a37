import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell.tools.layers import Lambda


def test_forward_applies_the_function():
    layer = Lambda(lambda x: x * 2)
    assert torch.equal(layer(torch.ones(3)), torch.full((3,), 2.0))


def test_forward_unpacks_several_inputs():
    layer = Lambda(torch.add)
    assert torch.equal(layer(torch.ones(2), torch.ones(2)), torch.full((2,), 2.0))


def test_lambda_has_no_parameters():
    assert list(Lambda(torch.relu).parameters()) == []


def test_repr_names_the_function():
    assert repr(Lambda(torch.relu)) == "Lambda(func=relu)"
    assert repr(Lambda(lambda x: x)) == "Lambda(func=<lambda>)"

    def flatten(x):
        return x.flatten(1)

    network = nn.Sequential(nn.Linear(2, 2), Lambda(flatten))
    assert "(1): Lambda(func=flatten)" in repr(network)


def test_non_callable_func_raises_type_error():
    with pytest.raises(TypeError, match=r"`func` must be callable.* Received: func=3 \(type int\)\."):
        Lambda(3)


def test_lambda_inside_sequential_trains():
    torch.manual_seed(0)
    network = nn.Sequential(nn.Conv2d(1, 2, 3), Lambda(lambda x: x.flatten(1)), nn.Linear(2 * 2 * 2, 1))
    optimizer = torch.optim.SGD(network.parameters(), lr=0.1)
    x, y = torch.randn(8, 1, 4, 4), torch.randn(8, 1)
    before = [param.detach().clone() for param in network.parameters()]

    optimizer.zero_grad()
    F.mse_loss(network(x), y).backward()
    optimizer.step()

    after = list(network.parameters())
    assert all(not torch.equal(old, new) for old, new in zip(before, after, strict=True))
