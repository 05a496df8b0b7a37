"""FSDP's unit policy, the strategy argument and the no_sync context in a single process.

Real sharding (2 processes, gloo, torchrun) is tested in tests/integration/test_scale.py.
"""

import pytest
import torch
from torch import nn

from trainwell.engine.gradient_sync import gradient_sync, synchronize_gradients
from trainwell.engine.sharded import FSDP, full_state_dict, is_fsdp, resolve_strategy, units_of


class Block(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.inner = nn.Linear(width, width)

    def forward(self, x):
        return self.inner(x)


def test_the_default_policy_makes_a_unit_of_every_submodule_past_the_size_then_the_network():
    network = nn.Sequential(nn.Linear(1000, 1000), nn.ReLU(), nn.Linear(1000, 10))  # 1,001,000 and 10,010
    units = units_of(network, FSDP())
    assert units == [network[0], network]
    # The inner Linear of a big block is the unit; the block itself has nothing left to take.
    nested = nn.Sequential(Block(1000), nn.Linear(1000, 2))
    assert units_of(nested, FSDP()) == [nested[0].inner, nested]


def test_named_module_classes_are_units_whatever_their_size():
    network = nn.Sequential(Block(4), Block(4), nn.Linear(4, 2))
    assert units_of(network, FSDP(modules=(Block,))) == [network[0], network[1], network]
    assert units_of(network, FSDP(min_params=10**9)) == [network]


def test_the_strategy_argument():
    assert resolve_strategy(None) == "ddp" and resolve_strategy("DDP") == "ddp"
    assert resolve_strategy("fsdp") == FSDP()
    policy = FSDP(modules=(Block,), min_params=10)
    assert resolve_strategy(policy) is policy
    with pytest.raises(ValueError, match=r"`strategy` must be 'ddp', 'fsdp'.*Received: strategy='zero'"):
        resolve_strategy("zero")
    with pytest.raises(ValueError, match=r"Received: strategy=3 \(type int\)"):
        resolve_strategy(3)


def test_without_a_process_group_nothing_is_sharded_or_synchronized():
    network = nn.Linear(3, 2)
    assert not is_fsdp(network)
    with gradient_sync(network, sync=False):
        network(torch.ones(1, 3)).sum().backward()
    before = network.weight.grad.clone()
    synchronize_gradients(network)  # a plain module: left as it is
    assert torch.equal(network.weight.grad, before)
    assert full_state_dict(network).keys() == network.state_dict().keys()
