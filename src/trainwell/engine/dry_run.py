"""The dry run: the network called once on a sample input, leaving everything as it was.

Eval mode, no gradients, every module's own mode restored afterwards, so batch normalization statistics,
dropout and the weights are untouched. Lazy layers (``nn.LazyLinear``, ``nn.LazyConv2d``...) get their
shapes during that run: what ``fit`` does on its first batch before building a named optimizer
(:mod:`trainwell.model.lazy_layers`), and what :func:`trainwell.summary` measures.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn
from torch.nn.parameter import UninitializedBuffer, UninitializedParameter

from trainwell.data.batches import split_batch, to_device
from trainwell.engine.steps import call_network
from trainwell.utils.rng import capture_rng, restore_rng

__all__ = ["check_network", "device_of", "dry_run", "first_inputs", "has_uninitialized_parameters", "materialize"]


def has_uninitialized_parameters(network: nn.Module) -> bool:
    """Whether some lazy layer has not seen an input yet (its parameters have no shape).

    >>> has_uninitialized_parameters(nn.LazyLinear(3)), has_uninitialized_parameters(nn.Linear(2, 3))
    (True, False)
    """
    return any(isinstance(tensor, (UninitializedParameter, UninitializedBuffer)) for tensor in _tensors(network))


def _tensors(network: nn.Module) -> Iterator[torch.Tensor]:
    yield from network.parameters()
    yield from network.buffers()


@contextmanager
def dry_run(network: nn.Module) -> Iterator[None]:
    """Runs the block with ``network`` in eval mode and without gradients, every module's mode restored after."""
    # Each module's own flag is restored, not just the root's: a frozen batch-norm left in eval mode
    # inside a network in train mode must stay so.
    modes = {module: module.training for module in network.modules()}
    network.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        for module, training in modes.items():
            module.train(training)


def device_of(network: nn.Module) -> torch.device | None:
    """Where the network's first parameter or buffer is (None for a network without any)."""
    tensor = next(_tensors(network), None)
    return None if tensor is None else tensor.device


def materialize(network: nn.Module, sample_input: Any) -> nn.Module:
    """Runs ``network`` once on ``sample_input`` so that its lazy layers get their shapes.

    The run is a dry one (eval mode, no gradients, modes restored afterwards); only the lazy layers'
    parameter initialization draws random numbers. Lazy layers are materialized in place, so an
    optimizer built on them beforehand still holds the same parameters. Calling this before building
    an optimizer that creates its state eagerly (``Adagrad``) is required; for the others it is optional.

    Args:
        network: the module, with or without lazy layers.
        sample_input: a batch of inputs as the network is called with during training: a tensor, a
            tuple or list unpacked as ``network(*x)``, or a dict passed as one argument. It is moved to
            the network's device first.

    Returns:
        ``network``, materialized.

    >>> network = nn.Sequential(nn.LazyLinear(8), nn.ReLU(), nn.LazyLinear(2))
    >>> _ = materialize(network, torch.randn(4, 5))
    >>> network[0].weight.shape, has_uninitialized_parameters(network)
    (torch.Size([8, 5]), False)
    """
    check_network(network)
    with dry_run(network):
        call_network(network, to_device(sample_input, device_of(network)))
    return network


def first_inputs(source: Iterable[Any], argument: str = "train_generator") -> Any:
    """The inputs ``x`` of the first ``(x, y)`` batch of a re-iterable source, without using it up.

    Every random generator is put back afterwards, so the source's next real pass draws the same
    shuffle as if it had not been peeked at. What ``fit`` materializes lazy layers with.

    Raises:
        RuntimeError: the source is a one-shot iterator (a generator), whose first batch would be lost.

    >>> first_inputs([(torch.ones(2, 3), torch.zeros(2))]).shape
    torch.Size([2, 3])
    """
    inner = getattr(source, "source", source)  # IterableBatches wraps the user's iterable
    if isinstance(inner, Iterator):
        raise RuntimeError(
            f"`{argument}` is a one-shot iterator, so its first batch cannot be read ahead to give the lazy layers "
            "their shapes. Call model.materialize(sample_x) (or trainwell.materialize) before fit."
        )
    state = capture_rng()
    try:
        # The user's iterable itself, not the wrapper: a wrapper's saved position must not move.
        return split_batch(next(iter(inner)), argument)[0]
    finally:
        restore_rng(state)


def check_network(network: Any) -> None:
    """Refuses a ``network`` that is not an ``nn.Module``, saying what to pass."""
    if not isinstance(network, nn.Module):
        raise TypeError(
            f"`network` must be a torch.nn.Module. Received: network of type {type(network).__name__}. "
            "Pass the module itself (model.network for a trainwell Model)."
        )
