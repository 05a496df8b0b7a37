"""The network seen through ``DistributedDataParallel`` under torchrun: what the steps call.

A network sharded with ``strategy='fsdp'`` (:mod:`trainwell.engine.sharded`) is called as it is.

``model.network`` stays the raw module (its ``state_dict`` keys do not change); the steps call the
wrapper, which all-reduces gradients during backward.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from trainwell.distributed.process import is_distributed
from trainwell.engine.compilation import CompiledNetwork
from trainwell.engine.sharded import is_fsdp

__all__ = ["distribute", "wrap"]


def wrap(network: nn.Module, device: torch.device | None) -> nn.Module:
    """``network`` wrapped in ``DistributedDataParallel`` (or as it is in a single process).

    The wrapper broadcasts rank 0's parameters and buffers when it is built, so every rank starts from
    the same weights; ``network`` itself stays the module whose ``state_dict`` is saved.

    >>> layer = nn.Linear(2, 2)
    >>> wrap(layer, None) is layer
    True
    """
    if not is_distributed():
        return network
    device_ids = [device.index] if device is not None and device.type == "cuda" and device.index is not None else None
    return nn.parallel.DistributedDataParallel(network, device_ids=device_ids)


def distribute(model: Any) -> None:
    """Makes a ``Model``'s steps call its network through ``DistributedDataParallel`` (once; under torchrun).

    ``model.network`` stays the raw module (its ``state_dict`` keys do not change); what the loop calls,
    ``model._steps.network``, becomes the wrapper, compiled on top when the model compiles. A network
    that is an ``nn.ModuleDict`` (custom steps call its parts) gets one wrapper per part that trains.
    Called at the start of every ``fit``/``evaluate``/``predict``; does nothing in a single process.
    """
    steps = model._steps
    device = steps.device
    if not is_distributed() or getattr(steps, "_distributed_for", None) == (id(model.network), device):
        return
    if is_fsdp(model.network):
        return  # sharded in place by strategy='fsdp' (trainwell.engine.sharded): it reduces its own gradients
    options = getattr(model, "_compile_options", None)

    def wrapped(module: nn.Module) -> nn.Module:
        if not any(parameter.requires_grad for parameter in module.parameters()):
            return module  # DistributedDataParallel refuses modules with nothing to train
        ddp = wrap(module, device)
        return ddp if options is None else CompiledNetwork(ddp, options)

    network = model.network
    if isinstance(network, nn.ModuleDict):
        steps.networks = {name: wrapped(part) for name, part in network.items()}
    else:
        steps.network = wrapped(network)
    steps._distributed_for = (id(network), device)
