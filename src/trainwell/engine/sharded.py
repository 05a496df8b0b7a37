"""Fully sharded data parallelism (PyTorch's FSDP2, ``fully_shard``): a network past one device's memory.

``Model(..., strategy='fsdp')`` under torchrun shards the network's parameters, gradients and optimizer
state over the ranks: each rank holds about 1/W of them, and a unit's full parameters exist only while
its forward or backward runs. The units (the **default policy**, :class:`FSDP`):

* every submodule of a class named in ``FSDP(modules=...)`` (a transformer block, say), and
* every other submodule holding at least ``FSDP(min_params=...)`` parameters (1,000,000 by default)
  that are not already in a unit below it,
* then the network itself, which takes every parameter left.

``precision='bf16'`` becomes FSDP's ``MixedPrecisionPolicy``: parameters are gathered and computed in
bfloat16, gradients reduced in float32, outputs given back in float32 and the sharded parameters and
optimizer state stay float32. fp16 (a gradient scaler across shards) is not offered.

Checkpoints stay trainwell's pickle-free safetensors: :func:`full_state_dict` gathers every sharded
tensor whole (an all-gather per tensor, so one tensor at a time on the device; every rank calls it) and
for a checkpoint only rank 0 keeps them on the host; rank 0 writes the same files a single process
writes, and :func:`load_full_state_dict` gives each rank its own slice of them. That needs the whole
model in rank 0's host memory (and in every rank's while resuming, until it has cut its slices), and
makes every checkpoint loadable by any number of processes, with or without FSDP.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parameter import UninitializedParameter

__all__ = [
    "FSDP",
    "full_optimizer_state",
    "full_state_dict",
    "is_fsdp",
    "load_full_optimizer_state",
    "load_full_state_dict",
    "resolve_strategy",
    "shard_network",
    "units_of",
]

STRATEGIES = ("ddp", "fsdp")


@dataclass(frozen=True)
class FSDP:
    """How ``strategy='fsdp'`` cuts the network into units gathered one at a time (see the module's docstring).

    Args:
        modules: submodule classes that each become a unit (your transformer block).
        min_params: any other submodule with at least this many parameters not yet in a unit becomes one.
        reshard_after_forward: free each unit's gathered parameters after its forward (less memory, one
            more all-gather in backward), as FSDP does by default.

    >>> FSDP(modules=(nn.TransformerEncoderLayer,)).min_params
    1000000
    """

    modules: tuple[type[nn.Module], ...] = field(default=())
    min_params: int = 1_000_000
    reshard_after_forward: bool = True


def resolve_strategy(strategy: Any) -> str | FSDP:
    """``'ddp'`` or an :class:`FSDP` policy from a ``strategy`` argument (None: DDP, today's default).

    >>> resolve_strategy(None), resolve_strategy('FSDP')
    ('ddp', FSDP(modules=(), min_params=1000000, reshard_after_forward=True))
    """
    if strategy is None:
        return "ddp"
    if isinstance(strategy, FSDP):
        return strategy
    if isinstance(strategy, str) and strategy.lower() in STRATEGIES:
        return "ddp" if strategy.lower() == "ddp" else FSDP()
    raise ValueError(
        f"`strategy` must be 'ddp', 'fsdp' or a trainwell.engine.sharded.FSDP(...) policy. Received: "
        f"strategy={strategy!r} (type {type(strategy).__name__})."
    )


def is_fsdp(network: Any) -> bool:
    """Whether ``network`` was sharded by ``fully_shard``.

    >>> is_fsdp(nn.Linear(2, 2))
    False
    """
    try:
        from torch.distributed.fsdp import FSDPModule
    except ImportError:  # pragma: no cover - a torch without FSDP2
        return False
    return isinstance(network, FSDPModule)


def units_of(network: nn.Module, policy: FSDP) -> list[nn.Module]:
    """The submodules that become FSDP units under ``policy``, innermost first (the network itself last)."""
    units: list[nn.Module] = []
    taken: set[int] = set()

    def visit(module: nn.Module) -> None:
        for child in module.children():
            visit(child)
        if module is network:
            return
        free = sum(p.numel() for p in module.parameters() if id(p) not in taken)
        if isinstance(module, policy.modules) or (free and free >= policy.min_params):
            units.append(module)
            taken.update(id(p) for p in module.parameters())

    visit(network)
    return [*units, network]


def shard_network(network: nn.Module, policy: FSDP, precision: str, optimizer: Any) -> None:
    """Applies ``fully_shard`` to the units of ``network`` (in place), after checking it can be.

    Args:
        network: the module, already on its device.
        policy: which submodules become units.
        precision: '32' or 'bf16' (FSDP's mixed-precision policy); '16' is refused.
        optimizer: the ``optimizer`` argument: an instance built on the unsharded parameters is refused.
    """
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    if not (dist.is_available() and dist.is_initialized()):
        raise ValueError(
            "`strategy='fsdp'` shards the network over the processes of a process group, and there is none: start "
            "the script with torchrun (torchrun --nproc_per_node=N train.py), or leave strategy out."
        )
    if isinstance(optimizer, torch.optim.Optimizer) or (
        isinstance(optimizer, Mapping) and any(isinstance(value, torch.optim.Optimizer) for value in optimizer.values())
    ):
        raise ValueError(
            f"`optimizer` is an instance ({type(optimizer).__name__}) built on the parameters before sharding; FSDP "
            "replaces them with their shards. With strategy='fsdp', pass it by name: optimizer='adam' or "
            "{'optim': 'adam', 'lr': 1e-3}."
        )
    if isinstance(network, nn.ModuleDict):
        raise ValueError(
            "`strategy='fsdp'` needs a network with its own forward; received an nn.ModuleDict (custom steps over "
            "several parts). Use strategy='ddp' for it."
        )
    trainable = [p for p in network.parameters() if p.requires_grad]
    if not trainable or any(isinstance(p, UninitializedParameter) for p in network.parameters()):
        raise ValueError(
            f"`strategy='fsdp'` has nothing to shard in this {type(network).__name__}: it has "
            f"{'no parameter to train' if not trainable else 'lazy parameters without shapes yet'}. Give lazy "
            "layers their shapes first (model.materialize(x)), or use strategy='ddp'."
        )
    if precision == "16":
        raise ValueError(
            "`precision='16'` with strategy='fsdp': float16 needs a gradient scaler across shards, which trainwell "
            "does not offer. Use precision='bf16' (FSDP's mixed precision in bfloat16) or '32'."
        )
    from torch.distributed.device_mesh import init_device_mesh

    # The mesh follows where the network is (CPU + gloo, or this rank's GPU + NCCL), not whether the
    # machine has a GPU, which is what fully_shard's default mesh would follow.
    where = trainable[0].device.type
    mesh = init_device_mesh(where, (dist.get_world_size(),))
    options: dict[str, Any] = {"reshard_after_forward": policy.reshard_after_forward, "mesh": mesh}
    if precision == "bf16":
        options["mp_policy"] = MixedPrecisionPolicy(
            param_dtype=torch.bfloat16, reduce_dtype=torch.float32, output_dtype=torch.float32
        )
    for unit in units_of(network, policy):
        fully_shard(unit, **options)


_DROPPED = object()  # what a rank that does not keep the gathered tensors gets instead


def _full(value: Any, keep: bool) -> Any:
    from torch.distributed.tensor import DTensor

    if isinstance(value, DTensor):
        whole = value.full_tensor()  # a collective: every rank takes part, one tensor at a time
        return whole.detach().cpu() if keep else _DROPPED
    if isinstance(value, torch.Tensor):
        return value.detach() if keep else _DROPPED
    return value


def _keeps(main_only: bool) -> bool:
    return not main_only or not dist.is_initialized() or dist.get_rank() == 0


def full_state_dict(network: nn.Module, main_only: bool = False) -> dict[str, torch.Tensor]:
    """The network's state dict with every shard gathered whole (a collective under FSDP: every rank calls it).

    Args:
        network: a module, sharded or not.
        main_only: only rank 0 keeps the whole tensors (the others get an empty dict), so that a
            checkpoint costs host memory for one copy of the model, not one per rank.
    """
    keep = _keeps(main_only)
    gathered = {name: _full(tensor, keep) for name, tensor in network.state_dict().items()}
    return {name: tensor for name, tensor in gathered.items() if tensor is not _DROPPED}


def _sliced(full: torch.Tensor, like: Any) -> Any:
    """``full`` cut as ``like`` (a DTensor) is: this rank's slice, without any communication."""
    from torch.distributed.tensor import DTensor, distribute_tensor

    if not isinstance(like, DTensor):
        return full
    local = full.to(like.device, like.dtype)
    return distribute_tensor(local, like.device_mesh, like.placements, src_data_rank=None)


def load_full_state_dict(network: nn.Module, state: Mapping[str, torch.Tensor], strict: bool = True) -> Any:
    """Loads whole tensors (a checkpoint) into a sharded network: each rank keeps its own slices."""
    current = network.state_dict()
    sliced = {name: _sliced(tensor, current[name]) if name in current else tensor for name, tensor in state.items()}
    return network.load_state_dict(sliced, strict=strict)


def _parameters_by_index(optimizer: torch.optim.Optimizer) -> list[torch.Tensor]:
    # torch numbers an optimizer's parameters in the order of its groups (Optimizer.state_dict).
    return [parameter for group in optimizer.param_groups for parameter in group["params"]]


def _optimizers(optimizer: Any) -> Iterable[tuple[str | None, torch.optim.Optimizer]]:
    if isinstance(optimizer, Mapping):  # an OptimizerGroup of named optimizers
        return list(optimizer.items())
    return [(None, optimizer)]


def full_optimizer_state(optimizer: Any, main_only: bool = False) -> dict[str, Any]:
    """``optimizer.state_dict()`` with every sharded tensor gathered whole (a collective: every rank calls it).

    ``main_only``: only rank 0 keeps the gathered tensors (see :func:`full_state_dict`).
    """
    state = optimizer.state_dict()
    keep = _keeps(main_only)

    def gather(part: dict[str, Any]) -> dict[str, Any]:
        entries = {}
        for index, entry in part["state"].items():
            values = {key: _full(value, keep) for key, value in entry.items()}
            entries[index] = {key: value for key, value in values.items() if value is not _DROPPED}
        return {**part, "state": entries}

    if "state" in state:
        return gather(state)
    return {name: gather(part) for name, part in state.items()}  # several named optimizers


def load_full_optimizer_state(optimizer: Any, state: Mapping[str, Any]) -> None:
    """Loads a :func:`full_optimizer_state` into an optimizer over sharded parameters (each rank its slices)."""
    for name, part_optimizer in _optimizers(optimizer):
        part = state if name is None else state[name]
        parameters = _parameters_by_index(part_optimizer)
        entries = {}
        for index, entry in part["state"].items():
            parameter = parameters[int(index)]
            entries[index] = {
                key: _sliced(value, parameter)
                if isinstance(value, torch.Tensor) and value.shape == parameter.shape and value.dim()
                else value
                for key, value in entry.items()
            }
        part_optimizer.load_state_dict({**part, "state": entries})
