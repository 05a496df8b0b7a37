"""Who this process is in a torchrun job: joining the process group, rank, world size, barriers.

A script started by ``torchrun --nproc_per_node=N`` (or ``--nnodes=M``) finds ``RANK``, ``WORLD_SIZE`` and
``LOCAL_RANK`` in its environment. trainwell then joins the process group (gloo on the CPU, NCCL on
CUDA); :mod:`trainwell.engine.parallel` wraps the network in ``DistributedDataParallel``,
:mod:`trainwell.data` shards the data, and :mod:`trainwell.distributed.collectives` reduces the loss and
metric sums so that every rank logs the same global values. Without torchrun every helper here answers
as a single process would (rank 0 of 1) and costs nothing.
"""

from __future__ import annotations

import atexit
import os
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

__all__ = [
    "barrier",
    "communication_device",
    "is_distributed",
    "is_main_process",
    "launched_by_torchrun",
    "local_rank",
    "rank",
    "setup",
    "world_size",
]


# -- who am I -------------------------------------------------------------------------------------------
def launched_by_torchrun() -> bool:
    """Whether this process was started by ``torchrun`` (its rendezvous variables are set).

    >>> import os; launched_by_torchrun() == all(v in os.environ for v in ('RANK', 'WORLD_SIZE', 'LOCAL_RANK'))
    True
    """
    # Looked up on every evaluate/predict call (source lengths, sharding): three plain tests, the first of
    # which fails at once outside torchrun.
    environ = os.environ
    return "RANK" in environ and "WORLD_SIZE" in environ and "LOCAL_RANK" in environ


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
        # The group trainwell made is trainwell's to close. Left to the interpreter's shutdown, gloo's
        # threads can be torn down unjoined: "terminate called without an active exception", SIGABRT, and
        # torchrun then stops the other ranks (seen on CI, and in tests/integration/test_distributed.py).
        atexit.register(_close_own_group)
    return resolved if resolved is not None else device


def _close_own_group() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _device_ids() -> dict[str, Any]:
    # NCCL's barrier needs to know the GPU; gloo's takes no device.
    if dist.get_backend() == "nccl":
        return {"device_ids": [torch.cuda.current_device()]}
    return {}


def communication_device() -> torch.device:
    """Where tensors go to cross processes: the current GPU under NCCL, the CPU under gloo."""
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
