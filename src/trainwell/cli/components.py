"""The config's components built: the network, the data's splits, and the Experiment call each split needs.

The data's class path names a function or a class returning the splits in one of three shapes: a mapping
``{'train': ..., 'valid': ..., 'test': ...}`` (only ``train`` required), a tuple ``(train, valid[, test])``,
or an object with ``train`` / ``valid`` / ``test`` attributes. Each split is in any form an Experiment
trains on: ``(x, y)`` arrays or tensors (``train_data``), a ``Dataset`` (``train_dataset``), or an
iterable of batches such as a DataLoader (``train``).
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from jsonargparse import Namespace
from torch import nn
from torch.utils.data import Dataset

from trainwell.callbacks.base import Callback
from trainwell.cli.config import import_object
from trainwell.cli.errors import ConfigError

__all__ = ["SPLITS", "Split", "build_component", "build_lr_schedulers", "build_network", "load_splits"]

SPLITS = ("train", "valid", "test")


@dataclass
class Split:
    """One split of the data and the form it came in: ``'data'`` ((x, y)), ``'dataset'`` or ``'batches'``."""

    form: str
    value: Any

    @property
    def arguments(self) -> tuple[Any, ...]:
        """What the Experiment's method of this form takes first: ``(x, y)``, ``(dataset,)`` or ``(batches,)``."""
        return tuple(self.value) if self.form == "data" else (self.value,)


def build_component(spec: Namespace, key: str) -> Any:
    """Calls the class or function of ``spec`` (``class_path``, ``init_args``) and returns what it gives."""
    target = import_object(spec["class_path"], key)
    init_args = spec.get("init_args")
    if init_args is not None and not isinstance(init_args, (Namespace, Mapping)):
        raise ConfigError(f"`{key}.init_args` must be a mapping of arguments. Received: {init_args!r}.")
    arguments = init_args.as_dict() if isinstance(init_args, Namespace) else dict(init_args or {})
    try:
        return target(**arguments)
    except TypeError as error:
        # Raised by the call itself (missing arguments) or by the user's code: say where, keep the cause.
        raise ConfigError(
            f"`{key}`: calling {spec['class_path']}(**init_args) with init_args={arguments!r} raised TypeError: {error}"
        ) from error


def build_lr_schedulers(specs: list[Any]) -> list[Callback]:
    """The ``lr_schedulers`` of the config: each a ``class_path`` and ``init_args``, giving a Callback."""
    schedulers = []
    for index, spec in enumerate(specs):
        key = f"lr_schedulers[{index}]"
        if not isinstance(spec, Mapping) or not isinstance(spec.get("class_path"), str):
            raise ConfigError(
                f"`{key}` must be a mapping with `class_path` (and `init_args`), such as "
                f"{{class_path: trainwell.StepLR, init_args: {{step_size: 10}}}}. Received: {spec!r}."
            )
        unknown = sorted(set(spec) - {"class_path", "init_args"})
        if unknown:
            raise ConfigError(f"`{key}` takes `class_path` and `init_args`. Received the keys {unknown} too.")
        try:
            scheduler = build_component(Namespace(class_path=spec["class_path"], init_args=spec.get("init_args")), key)
        except ValueError as error:
            raise ConfigError(f"`{key}` ({spec['class_path']}): {error}") from error
        if not isinstance(scheduler, Callback):
            raise ConfigError(
                f"`{key}.class_path` must give a trainwell scheduler callback (trainwell.StepLR...). Received: "
                f"{spec['class_path']} gave a {type(scheduler).__name__}."
            )
        schedulers.append(scheduler)
    return schedulers


def build_network(spec: Namespace) -> nn.Module:
    """The network the config describes; a ConfigError when the class path gives no ``nn.Module``."""
    network = build_component(spec, "network")
    if not isinstance(network, nn.Module):
        raise ConfigError(
            f"`network.class_path` must give a torch.nn.Module. Received: {spec['class_path']} returned a "
            f"{type(network).__name__}."
        )
    return network


def _form(value: Any, key: str) -> Split:
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(_is_array(item) for item in value):
        return Split("data", value)
    if isinstance(value, Dataset) and not isinstance(value, torch.utils.data.IterableDataset):
        return Split("dataset", value)
    if isinstance(value, Iterable) and not isinstance(value, (str, bytes, Mapping)):
        return Split("batches", value)
    raise ConfigError(
        f"The data's {key!r} split must be (x, y) arrays or tensors, a Dataset, or an iterable of batches such "
        f"as a DataLoader. Received: a {type(value).__name__}."
    )


def _is_array(value: Any) -> bool:
    if isinstance(value, (torch.Tensor, np.ndarray)):
        return True
    if isinstance(value, (tuple, list, Mapping)):  # several inputs: a tuple or dict of arrays
        items = value.values() if isinstance(value, Mapping) else value
        return bool(items) and all(_is_array(item) for item in items)
    return False


def _named_splits(data: Any, path: str) -> dict[str, Any]:
    if isinstance(data, Mapping):
        unknown = sorted(set(data) - set(SPLITS))
        if unknown:
            raise ConfigError(
                f"The data ({path}) returned a mapping with unknown splits {unknown}; the splits are "
                f"{list(SPLITS)} (only 'train' required)."
            )
        return dict(data)
    if isinstance(data, tuple) and 1 <= len(data) <= 3 and not all(_is_array(item) for item in data):
        return dict(zip(SPLITS, data))
    # Attributes holding data, not methods (an nn.Module has a train() method, which is no split).
    attributes = {name: getattr(data, name) for name in SPLITS if hasattr(data, name)}
    attributes = {name: value for name, value in attributes.items() if not inspect.ismethod(value)}
    if attributes:
        return attributes
    raise ConfigError(
        f"`data.class_path` must give the splits: a mapping {{'train': ..., 'valid': ..., 'test': ...}}, a tuple "
        f"(train, valid[, test]) or an object with train/valid/test attributes. Received: {path} returned a "
        f"{type(data).__name__}."
    )


def load_splits(spec: Namespace) -> dict[str, Split]:
    """The data the config describes, as its splits (those given and not None)."""
    path = spec["class_path"]
    splits = _named_splits(build_component(spec, "data"), path)
    if splits.get("train") is None:
        raise ConfigError(f"The data ({path}) has no 'train' split: the splits are {list(SPLITS)}.")
    return {name: _form(value, name) for name, value in splits.items() if value is not None}
