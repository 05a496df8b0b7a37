"""Values crossing torchrun processes: sums, agreements, broadcasts and gathers of tensors.

Values crossing processes are tensors only (never pickled objects): nested structures are split into
tensor leaves that every rank lays out the same way. In a single process every function returns what
it was given.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
import torch.distributed as dist

from trainwell.distributed.process import communication_device, is_distributed

__all__ = [
    "all_gather_structure",
    "all_reduce_sum",
    "any_rank",
    "broadcast_tensor",
    "gather_epoch_metric",
    "interleave",
    "reduce_sums",
]

_MAX_DIMS = 8  # tensors gathered between ranks may have at most this many dimensions
# A gloo group for small host-side agreements (an interruption, a finite check) when the default group is
# NCCL: asking NCCL would put a flag on the GPU and wait for it.
_host_group: Any = None


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
    device = communication_device()
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
    moved = tensor.to(communication_device(), copy=True)
    dist.broadcast(moved, src=source)
    return moved.to(tensor.device)


# -- gathering --------------------------------------------------------------------------------------------
def _all_gather_tensor(tensor: torch.Tensor) -> list[torch.Tensor]:
    """Every rank's ``tensor``; shapes may differ between ranks (dtypes and dimensions may not)."""
    if tensor.dim() > _MAX_DIMS:
        raise ValueError(f"Tensors gathered between ranks may have at most {_MAX_DIMS} dimensions; got {tensor.dim()}.")
    device = communication_device()
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
