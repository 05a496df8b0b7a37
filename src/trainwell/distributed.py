"""Several processes, one training run: torchrun and DistributedDataParallel without code changes.

A script started by ``torchrun --nproc_per_node=N`` (or ``--nnodes=M``) finds ``RANK``, ``WORLD_SIZE`` and
``LOCAL_RANK`` in its environment. trainwell then joins the process group (gloo on the CPU, NCCL on
CUDA), wraps the network in ``DistributedDataParallel``, shards the data, and reduces the loss and
metric sums so that every rank logs the same global values. Without torchrun every helper here answers
as a single process would (rank 0 of 1) and costs nothing.

Values crossing processes are tensors only (never pickled objects): nested structures are split into
tensor leaves that every rank lays out the same way.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

__all__ = [
    "all_gather_structure",
    "all_reduce_sum",
    "any_rank",
    "barrier",
    "broadcast_tensor",
    "distribute",
    "gather_epoch_metric",
    "interleave",
    "is_distributed",
    "is_main_process",
    "launched_by_torchrun",
    "local_rank",
    "rank",
    "reduce_sums",
    "setup",
    "world_size",
    "wrap",
]

_TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
_MAX_DIMS = 8  # tensors gathered between ranks may have at most this many dimensions
# A gloo group for small host-side agreements (an interruption, a finite check) when the default group is
# NCCL: asking NCCL would put a flag on the GPU and wait for it.
_host_group: Any = None


# -- who am I -------------------------------------------------------------------------------------------
def launched_by_torchrun() -> bool:
    """Whether this process was started by ``torchrun`` (its rendezvous variables are set).

    >>> import os; launched_by_torchrun() == all(v in os.environ for v in ('RANK', 'WORLD_SIZE', 'LOCAL_RANK'))
    True
    """
    return all(variable in os.environ for variable in _TORCHRUN_VARIABLES[:3])


def is_distributed() -> bool:
    """Whether a process group of more than one process is running (trainwell then shards and reduces).

    >>> is_distributed()
    False
    """
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's global rank: from the process group, else from torchrun's ``RANK``, else 0.

    >>> rank()
    0
    """
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return int(os.environ.get("RANK", "0")) if launched_by_torchrun() else 0


def world_size() -> int:
    """How many processes train together (1 without torchrun).

    >>> world_size()
    1
    """
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return int(os.environ.get("WORLD_SIZE", "1")) if launched_by_torchrun() else 1


def local_rank() -> int:
    """This process's rank on its machine (torchrun's ``LOCAL_RANK``): the GPU it uses.

    >>> local_rank()
    0
    """
    return int(os.environ.get("LOCAL_RANK", "0")) if launched_by_torchrun() else 0


def is_main_process() -> bool:
    """Whether this is rank 0: the process that prints, writes logs and writes checkpoints.

    >>> is_main_process()
    True
    """
    return rank() == 0


def barrier() -> None:
    """Waits until every rank gets here (does nothing in a single process).

    >>> barrier()
    """
    if is_distributed():
        dist.barrier(**_device_ids())


# -- joining ----------------------------------------------------------------------------------------------
def setup(device: Any = None, network: nn.Module | None = None, *, timeout: timedelta | None = None) -> Any:
    """Joins torchrun's process group if this process was launched by torchrun; returns the device to use.

    The backend is NCCL when ``device`` names CUDA, gloo otherwise. ``'cuda'`` without an index becomes
    this process's GPU, ``cuda:LOCAL_RANK`` (and is made the current device). A group the script already
    initialized itself is used as it is. Without torchrun, nothing happens and ``device`` is returned.

    Args:
        device: the device the model was asked to use (a name, a ``torch.device``, a list, 'all' or None).
        network: without ``device``, the backend follows where this network's parameters are.
        timeout: how long a collective may wait for the other ranks (torch's default when None).

    >>> setup('cpu')
    'cpu'
    """
    if not launched_by_torchrun() or not dist.is_available():
        return device
    if isinstance(device, (list, tuple)) or device == "all":
        raise ValueError(
            f"`device={device!r}` asks for single-process DataParallel, but this process was started by torchrun, "
            "which already runs one process per GPU. Pass device='cuda' (each process takes cuda:LOCAL_RANK)."
        )
    resolved = None if device is None else torch.device(device)
    if resolved is not None and resolved.type == "cuda" and resolved.index is None:
        resolved = torch.device("cuda", local_rank())
    if resolved is not None and resolved.type == "cuda":
        torch.cuda.set_device(resolved)
    where = resolved
    if where is None and network is not None:
        where = next((parameter.device for parameter in network.parameters()), None)
    if not dist.is_initialized():
        backend = "nccl" if where is not None and where.type == "cuda" else "gloo"
        options: dict[str, Any] = {"backend": backend}
        if timeout is not None:
            options["timeout"] = timeout
        if backend == "nccl" and where is not None:
            options["device_id"] = where  # binds the communicator to this GPU at once
        dist.init_process_group(**options)
    return resolved if resolved is not None else device


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
    from trainwell.compilation import CompiledNetwork  # only a distributed run needs it

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


def _device_ids() -> dict[str, Any]:
    # NCCL's barrier needs to know the GPU; gloo's takes no device.
    if dist.get_backend() == "nccl":
        return {"device_ids": [torch.cuda.current_device()]}
    return {}


def _communication_device() -> torch.device:
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


# -- reductions -------------------------------------------------------------------------------------------
def all_reduce_sum(tensors: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """The element-wise sums of ``tensors`` over every rank, in one collective (new tensors, same devices).

    Every rank passes tensors of the same shapes in the same order. They travel as one float64 vector:
    counts stay exact up to 2**53 and sums keep their precision.

    >>> all_reduce_sum([torch.tensor([1.0, 2.0]), torch.tensor(3)])
    [tensor([1., 2.]), tensor(3)]
    """
    if not is_distributed() or not tensors:
        return [tensor.clone() for tensor in tensors]
    device = _communication_device()
    flat = torch.cat([tensor.detach().reshape(-1).to(device, torch.float64) for tensor in tensors])
    dist.all_reduce(flat)
    reduced, start = [], 0
    for tensor in tensors:
        part = flat[start : start + tensor.numel()].reshape(tensor.shape)
        reduced.append(part.to(tensor.device, tensor.dtype))
        start += tensor.numel()
    return reduced


def reduce_sums(
    sums: Sequence[torch.Tensor] | None, count: int, numel: int
) -> tuple[list[torch.Tensor] | None, int, int]:
    """A phase's running sums, sample count and target count, added over every rank (one collective).

    What the metric tracker reports at the end of a phase under torchrun: every rank then logs the
    global averages. A single process gets its own values back.

    >>> reduce_sums([torch.tensor(6.0)], 3, 3)
    ([tensor(6.)], 3, 3)
    """
    if not is_distributed():
        return (None if sums is None else list(sums)), count, numel
    local = list(sums or [])
    reduced = all_reduce_sum([*local, torch.tensor([float(count), float(numel)], dtype=torch.float64)])
    totals = reduced.pop()
    return (reduced if sums is not None else None), int(totals[0]), int(totals[1])


def any_rank(flag: bool) -> bool:
    """Whether ``flag`` is true on at least one rank: how ranks agree to stop or to save (host-side).

    >>> any_rank(True), any_rank(False)
    (True, False)
    """
    if not is_distributed():
        return flag
    value = torch.tensor([1.0 if flag else 0.0])
    dist.all_reduce(value, op=dist.ReduceOp.MAX, group=_host_side_group())
    return bool(value.item() > 0)


def _host_side_group() -> Any:
    global _host_group
    if dist.get_backend() != "nccl":
        return None  # the default (gloo) group already works on host tensors
    if _host_group is None:
        _host_group = dist.new_group(backend="gloo")
    return _host_group


def broadcast_tensor(tensor: torch.Tensor, source: int = 0) -> torch.Tensor:
    """Rank ``source``'s ``tensor`` on every rank (same shape and dtype everywhere; returns a new tensor).

    Used so that every rank shuffles its data with the same permutation even if its generators differ.

    >>> broadcast_tensor(torch.arange(3))
    tensor([0, 1, 2])
    """
    if not is_distributed():
        return tensor
    moved = tensor.to(_communication_device(), copy=True)
    dist.broadcast(moved, src=source)
    return moved.to(tensor.device)


# -- gathering --------------------------------------------------------------------------------------------
def _all_gather_tensor(tensor: torch.Tensor) -> list[torch.Tensor]:
    """Every rank's ``tensor``; shapes may differ between ranks (dtypes and dimensions may not)."""
    if tensor.dim() > _MAX_DIMS:
        raise ValueError(f"Tensors gathered between ranks may have at most {_MAX_DIMS} dimensions; got {tensor.dim()}.")
    device = _communication_device()
    count = dist.get_world_size()
    shape = torch.full((_MAX_DIMS + 1,), -1, dtype=torch.int64, device=device)
    shape[0] = tensor.dim()
    if tensor.dim():
        shape[1 : tensor.dim() + 1] = torch.tensor(tensor.shape, dtype=torch.int64)
    shapes = [torch.empty_like(shape) for _ in range(count)]
    dist.all_gather(shapes, shape)
    sizes = [[int(size) for size in row[1 : int(row[0]) + 1].tolist()] for row in shapes]
    numels = [int(torch.Size(size).numel()) for size in sizes]
    flat = torch.zeros(max(numels), dtype=tensor.dtype, device=device)
    flat[: tensor.numel()] = tensor.detach().reshape(-1).to(device)
    gathered = [torch.empty_like(flat) for _ in range(count)]
    dist.all_gather(gathered, flat)
    return [part[:numel].reshape(size).to(tensor.device) for part, numel, size in zip(gathered, numels, sizes)]


def _split(obj: Any) -> tuple[list[torch.Tensor], Callable[[list[torch.Tensor]], Any]]:
    """Tensor leaves of a nested structure (python numbers become 0-d tensors) and its rebuilder."""
    if isinstance(obj, torch.Tensor):
        return [obj], lambda leaves: leaves[0]
    if isinstance(obj, bool):
        return [torch.tensor(obj)], lambda leaves: bool(leaves[0].item())
    if isinstance(obj, int):
        return [torch.tensor(obj, dtype=torch.int64)], lambda leaves: int(leaves[0].item())
    if isinstance(obj, float):
        return [torch.tensor(obj, dtype=torch.float64)], lambda leaves: float(leaves[0].item())
    if obj is None or isinstance(obj, str):
        return [], lambda leaves: obj
    if isinstance(obj, (list, tuple, Mapping)):
        keys = list(obj.keys()) if isinstance(obj, Mapping) else list(range(len(obj)))
        parts = [_split(obj[key]) for key in keys]
        leaves: list[torch.Tensor] = []
        bounds = []
        for part_leaves, rebuild in parts:
            bounds.append((len(leaves), len(leaves) + len(part_leaves), rebuild))
            leaves.extend(part_leaves)

        def build(flat: list[torch.Tensor]) -> Any:
            items = [rebuild(flat[start:end]) for start, end, rebuild in bounds]
            if isinstance(obj, Mapping):
                return dict(zip(keys, items))
            return list(items) if isinstance(obj, list) else tuple(items)

        return leaves, build
    raise TypeError(
        f"Only tensors, numbers, strings, None and lists/tuples/dicts of them can be gathered between ranks. "
        f"Received an element of type {type(obj).__name__}."
    )


def all_gather_structure(obj: Any) -> list[Any]:
    """Every rank's ``obj``, in rank order: nested lists/tuples/dicts of tensors and numbers.

    Every rank must pass the same structure (the same keys and list lengths); tensor shapes may differ.
    Strings and None are taken from this rank's own structure. Nothing is pickled.

    >>> all_gather_structure({'count': 3, 'sums': [torch.tensor(1.5)]})
    [{'count': 3, 'sums': [tensor(1.5000)]}]
    """
    if not is_distributed():
        return [obj]
    leaves, rebuild = _split(obj)
    lengths = all_reduce_sum([torch.tensor([len(leaves), -len(leaves)])])[0]
    count = dist.get_world_size()
    if int(lengths[0]) != count * len(leaves) or int(lengths[1]) != -count * len(leaves):
        raise RuntimeError(
            f"The ranks gather structures of different layouts (this rank has {len(leaves)} tensors): every rank "
            "must reach this point with the same kind of data. Check that each rank received some data."
        )
    per_leaf = [_all_gather_tensor(leaf) for leaf in leaves]
    return [rebuild([gathered[index] for gathered in per_leaf]) for index in range(count)]


def interleave(parts: Sequence[Any]) -> Any:
    """Reassembles the outputs of strided shards: rank r held samples r, r + W, r + 2W... of the data.

    Works through tuples, lists and dicts; each part's tensors have the rank's samples first.

    >>> interleave([torch.tensor([0, 2, 4]), torch.tensor([1, 3])])
    tensor([0, 1, 2, 3, 4])
    """
    first = parts[0]
    if isinstance(first, torch.Tensor):
        total = sum(len(part) for part in parts)
        result = first.new_empty((total, *first.shape[1:]))
        for index, part in enumerate(parts):
            result[index :: len(parts)] = part
        return result
    if isinstance(first, (tuple, list)):
        items = [interleave([part[index] for part in parts]) for index in range(len(first))]
        return list(items) if isinstance(first, list) else tuple(items)
    if isinstance(first, Mapping):
        return {key: interleave([part[key] for part in parts]) for key in first}
    raise TypeError(f"Cannot reassemble outputs of type {type(first).__name__} from several ranks.")


def gather_epoch_metric(metric: Any) -> None:
    """Merges every rank's accumulators into ``metric`` on every rank, so its ``compute()`` is global.

    trainwell's own epoch metrics say how their states combine (``merge_states``: sums by default).
    torchmetrics objects synchronize themselves inside ``compute()`` when a process group exists, so
    they are left alone here.

    >>> from trainwell.metrics import MSE
    >>> metric = MSE(); metric.update(torch.tensor([1.0]), torch.tensor([0.0])); gather_epoch_metric(metric)
    >>> metric.compute()
    tensor(1.)
    """
    merge = getattr(metric, "merge_states", None)
    if not is_distributed() or merge is None or getattr(metric, "syncs_itself", False):
        return
    states = all_gather_structure(dict(sorted(metric.state_dict().items())))
    metric.load_state_dict(merge(states))
