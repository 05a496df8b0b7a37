"""A real detector of host-device synchronizations, usable on the CPU.

On CUDA, ``.item()``, ``float(t)``, ``bool(t)``, ``.tolist()`` and data-dependent shapes force the host
to wait for the device. Every one of them goes through a handful of ATen operators; this dispatch mode
records (or forbids) those operators, so a CPU test can prove that a code path would not sync on a GPU.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

# Operators that read a device value back to the host, or whose output shape depends on the data.
SYNC_OPS = {
    "aten::_local_scalar_dense",  # .item(), float(), int(), bool(), tolist()
    "aten::nonzero",  # boolean-mask indexing, torch.where(cond)
    "aten::masked_select",
    "aten::unique",
    "aten::_unique2",
    "aten::bincount",  # sizes its output from the data's max on CUDA
    "aten::repeat_interleave",
}

# Indexing with a boolean mask computes nonzero() below the dispatcher: detect it from the arguments.
MASK_INDEX_OPS = {"aten::index", "aten::index_put", "aten::index_put_", "aten::_index_put_impl_"}


def _has_bool_index(args: Any) -> bool:
    indices = args[1] if len(args) > 1 else ()
    return any(isinstance(index, torch.Tensor) and index.dtype == torch.bool for index in indices or ())


class SyncGuard(TorchDispatchMode):
    """Records syncing operators; with ``strict=True`` raises at the first one."""

    def __init__(self, strict: bool = True) -> None:
        super().__init__()
        self.strict = strict
        self.calls: list[str] = []

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        name = func._schema.name
        if name in SYNC_OPS or (name in MASK_INDEX_OPS and _has_bool_index(args)):
            self.calls.append(name)
            if self.strict:
                raise AssertionError(f"host-device sync through {name}")
        return func(*args, **(kwargs or {}))
