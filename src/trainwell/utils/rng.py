"""Every random generator's state as checkpointable values, and back.

Python's ``random``, NumPy's global generator, torch's CPU generator and every CUDA device's. The states
are stored as tensors and plain numbers (never pickled), so a resumed run draws exactly the same numbers
as an uninterrupted one.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

__all__ = ["capture_rng", "restore_rng"]


def capture_rng(generators: Sequence[torch.Generator] = ()) -> dict[str, Any]:
    """The states of all random generators, as tensors and numbers.

    Args:
        generators: torch generators of the user's own (a DataLoader's ``generator``...) to capture too.

    >>> state = capture_rng(); a = torch.rand(1); restore_rng(state); bool(torch.equal(a, torch.rand(1)))
    True
    """
    version, internal, gauss = random.getstate()
    kind, keys, position, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": {"version": version, "state": torch.tensor(internal, dtype=torch.int64), "gauss": gauss},
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "position": int(position),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = list(torch.cuda.get_rng_state_all())
    if generators:
        state["generators"] = [generator.get_state() for generator in generators]
    return state


def restore_rng(state: dict[str, Any], generators: Sequence[torch.Generator] = ()) -> None:
    """Puts every generator back in the state :func:`capture_rng` returned (``generators``: the same own ones)."""
    python = state["python"]
    random.setstate((python["version"], tuple(int(v) for v in python["state"].tolist()), python["gauss"]))
    numpy = state["numpy"]
    np.random.set_state(
        (
            numpy["kind"],
            numpy["keys"].numpy().astype(np.uint32),
            numpy["position"],
            numpy["has_gauss"],
            numpy["cached_gaussian"],
        )
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    for generator, saved in zip(generators, state.get("generators", ())):
        generator.set_state(saved)
