"""Pickle-free, atomic storage of weights and training state.

Everything is written as one safetensors file: tensors as tensors, and every other value of a nested
state (optimizer hyper-parameters, counters, names) as JSON in the file's metadata. Loading never
unpickles: safetensors parses a JSON header and raw buffers, and plain torch files are read only with
``torch.load(..., weights_only=True)``.

A file is written under a temporary name in the same directory, flushed and fsync'd, then renamed over
the target, so a crash leaves either the old file or the new one, never a torn one.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import IO, Any, Union

import torch

from trainwell.utils.files import atomic_write

__all__ = [
    "atomic_write",
    "decode_state",
    "encode_state",
    "load_state",
    "load_tensors",
    "save_state",
    "save_tensors",
]

PathOrFile = Union[str, "os.PathLike[str]", IO[bytes]]
_STATE_KEY = "trainwell_state"


def encode_state(state: Any) -> tuple[Any, dict[str, torch.Tensor]]:
    """Splits a nested state into a JSON-able skeleton and a flat dict of tensors.

    Tuples and dicts with non-string keys (the optimizer's integer parameter ids) are tagged so that
    :func:`decode_state` rebuilds them exactly.

    >>> skeleton, tensors = encode_state({'step': 3, 'w': torch.ones(1), 'betas': (0.9, 0.99)})
    >>> decode_state(skeleton, tensors)
    {'step': 3, 'w': tensor([1.]), 'betas': (0.9, 0.99)}
    """
    tensors: dict[str, torch.Tensor] = {}

    def encode(value: Any) -> Any:
        if isinstance(value, torch.Tensor):
            key = f"t{len(tensors)}"
            # clone: safetensors refuses tensors sharing memory, and the caller keeps training.
            tensors[key] = value.detach().to("cpu", copy=True).contiguous()
            return {"__tensor__": key}
        if isinstance(value, tuple):
            return {"__tuple__": [encode(item) for item in value]}
        if isinstance(value, list):
            return [encode(item) for item in value]
        if isinstance(value, dict):
            if all(isinstance(key, str) and not key.startswith("__") for key in value):
                return {key: encode(item) for key, item in value.items()}
            return {"__items__": [[encode(key), encode(item)] for key, item in value.items()]}
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        raise TypeError(
            f"Cannot store a value of type {type(value).__name__} in a trainwell checkpoint: only tensors, "
            "numbers, strings, None and lists/tuples/dicts of them are stored (nothing is pickled)."
        )

    return encode(state), tensors


def decode_state(skeleton: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Inverse of :func:`encode_state`."""
    if isinstance(skeleton, list):
        return [decode_state(item, tensors) for item in skeleton]
    if isinstance(skeleton, dict):
        if "__tensor__" in skeleton:
            return tensors[skeleton["__tensor__"]]
        if "__tuple__" in skeleton:
            return tuple(decode_state(item, tensors) for item in skeleton["__tuple__"])
        if "__items__" in skeleton:
            return {decode_state(key, tensors): decode_state(value, tensors) for key, value in skeleton["__items__"]}
        return {key: decode_state(value, tensors) for key, value in skeleton.items()}
    return skeleton


def save_state(target: PathOrFile, state: Any) -> None:
    """Saves a nested state (tensors and plain values) as one safetensors file, atomically for paths."""
    from safetensors.torch import save

    skeleton, tensors = encode_state(state)
    _write(target, save(tensors, metadata={_STATE_KEY: json.dumps(skeleton)}))


def save_tensors(target: PathOrFile, tensors: dict[str, torch.Tensor]) -> None:
    """Saves a flat dict of tensors as a plain safetensors file (any safetensors reader can open it)."""
    from safetensors.torch import save

    # Copies on the CPU: safetensors refuses tensors that share memory (tied weights).
    data = save({name: tensor.detach().to("cpu", copy=True).contiguous() for name, tensor in tensors.items()})
    _write(target, data)


def _write(target: PathOrFile, data: bytes) -> None:
    if isinstance(target, (str, os.PathLike)):
        atomic_write(target, data)
    else:
        target.write(data)


def load_state(source: PathOrFile) -> Any:
    """Loads a state written by :func:`save_state` (or a plain weights-only torch file)."""
    data = _read(source)
    if not _is_safetensors(data):
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    from safetensors.torch import load

    tensors = load(data)
    metadata = _metadata(data)
    if metadata is None or _STATE_KEY not in metadata:
        return tensors  # a plain safetensors file: a flat dict of tensors
    return decode_state(json.loads(metadata[_STATE_KEY]), tensors)


def load_tensors(source: PathOrFile) -> dict[str, torch.Tensor]:
    """Loads a flat dict of tensors from safetensors, or from a torch file with ``weights_only=True``."""
    state = load_state(source)
    if not isinstance(state, dict) or not all(isinstance(value, torch.Tensor) for value in state.values()):
        raise ValueError("The file does not hold a flat dict of tensors (a state dict of weights).")
    return state


def _read(source: PathOrFile) -> bytes:
    if isinstance(source, (str, os.PathLike)):
        return Path(source).read_bytes()
    return source.read()


def _is_safetensors(data: bytes) -> bool:
    # safetensors: an 8-byte little-endian header length followed by a JSON object.
    if len(data) < 10:
        return False
    header_length = int.from_bytes(data[:8], "little")
    return 0 < header_length <= len(data) - 8 and data[8:9] == b"{"


def _metadata(data: bytes) -> dict[str, str] | None:
    header_length = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + header_length])
    metadata = header.get("__metadata__")
    return metadata if isinstance(metadata, dict) else None
