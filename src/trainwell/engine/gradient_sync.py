"""Whether a backward pass synchronizes gradients between torchrun ranks: ``no_sync`` for accumulation.

With ``batches_per_step=k``, only the k-th micro-batch's gradients need to cross processes: the others
are added up where they are, and the synchronized backward then reduces the whole sum at once. Under
``DistributedDataParallel`` that is ``no_sync()`` (k-1 fewer all-reduces per optimizer step); under FSDP2,
``set_requires_gradient_sync(False)`` (k-1 fewer reduce-scatters). Gradients are sums, so the result
is the same as reducing every micro-batch, to float-summation order. In a single process nothing here
does anything.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch.distributed as dist
from torch import nn

__all__ = ["gradient_sync", "synchronize_gradients"]


def _inner(network: nn.Module) -> nn.Module:
    # A compiled network (trainwell.engine.compilation.CompiledNetwork) holds the wrapper as `module`.
    from trainwell.engine.compilation import CompiledNetwork

    return network.module if isinstance(network, CompiledNetwork) else network


def _fsdp_module(network: nn.Module) -> bool:
    try:
        from torch.distributed.fsdp import FSDPModule
    except ImportError:  # pragma: no cover - a torch without FSDP2
        return False
    return isinstance(network, FSDPModule)


@contextlib.contextmanager
def gradient_sync(network: nn.Module, sync: bool) -> Iterator[None]:
    """A context in which the forward and backward of ``network`` reduce gradients over ranks, or not.

    Args:
        network: what the steps call (a ``DistributedDataParallel`` wrapper, an FSDP module, a module).
        sync: False keeps this backward's gradients on this rank.

    >>> with gradient_sync(nn.Linear(2, 2), sync=False):
    ...     pass
    """
    inner = _inner(network)
    if sync:
        yield
    elif isinstance(inner, nn.parallel.DistributedDataParallel):
        with inner.no_sync():
            yield
    elif _fsdp_module(inner):
        inner.set_requires_gradient_sync(False)  # type: ignore[operator]
        try:
            yield
        finally:
            inner.set_requires_gradient_sync(True)  # type: ignore[operator]
    else:
        yield


def synchronize_gradients(network: nn.Module) -> None:
    """Averages the gradients of a DDP-wrapped ``network`` over the ranks by hand (DDP's own reduction).

    For a step that ends on a micro-batch run under ``no_sync`` (an epoch stopped early): the optimizer
    must see the same averaged gradients on every rank. Other networks are left as they are.
    """
    inner = _inner(network)
    if not isinstance(inner, nn.parallel.DistributedDataParallel) or not dist.is_initialized():
        return
    count = dist.get_world_size()
    for parameter in inner.module.parameters():
        if parameter.grad is not None:
            dist.all_reduce(parameter.grad)
            parameter.grad.div_(count)
