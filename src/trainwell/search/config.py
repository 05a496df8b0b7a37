"""A search from a plain config dict (what a YAML/JSON file or the command line gives): ``search_from_config``.

The config holds :class:`~trainwell.search.search.Search`'s arguments, with two conversions a text
file needs: ``build`` may be an import path ``'package.module:function'``, and a space entry may be
a mapping ``{'low': ..., 'high': ..., 'step': ..., 'log': ...}`` for a :class:`~trainwell.search.space.Range`.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from trainwell.search.search import Search
from trainwell.search.space import Range

__all__ = ["search_from_config"]

_RANGE_KEYS = {"low", "high", "step", "log"}


def search_from_config(config: Mapping[str, Any]) -> Search:
    """Builds a :class:`Search` from ``{'directory', 'build', 'space', ...}`` (``Search``'s arguments).

    Args:
        config: ``directory``, ``build`` (a callable or ``'module:function'``), ``space`` (lists, or
            ``{'low', 'high', 'step', 'log'}`` mappings for ranges), and any keyword argument of ``Search``.

    Raises:
        TypeError, ValueError: a missing or bad entry, named in the message.

    >>> import tempfile
    >>> search = search_from_config({'directory': tempfile.mkdtemp(), 'build': 'builtins:print',
    ...     'objective': 'val_loss', 'space': {'lr': {'low': 1e-4, 'high': 1e-1, 'log': True}}, 'n_trials': 3})
    >>> search.space.entries['lr']
    Range(low=0.0001, high=0.1, step=None, log=True)
    """
    if not isinstance(config, Mapping):
        raise TypeError(
            f"`config` must be a dict of Search's arguments. Received: config of type {type(config).__name__}."
        )
    missing = [key for key in ("directory", "build", "space") if key not in config]
    if missing:
        raise ValueError(f"`config` lacks {missing}: a search needs a directory, a build function and a space.")
    options = dict(config)
    directory, build, space = options.pop("directory"), options.pop("build"), options.pop("space")
    if isinstance(build, str):
        build = _import(build)
    if isinstance(space, Mapping):
        space = {name: _entry(name, entry) for name, entry in space.items()}
    return Search(directory, build, space, **options)


def _import(path: str) -> Any:
    module_name, _, attribute = path.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"`build` must be 'package.module:function'. Received: build={path!r}.")
    try:
        return getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as error:
        raise ValueError(f"`build`={path!r} cannot be imported: {error}.") from error


def _entry(name: str, entry: Any) -> Any:
    if not isinstance(entry, Mapping):
        return entry
    unknown = set(entry) - _RANGE_KEYS
    if unknown or not {"low", "high"} <= set(entry):
        raise ValueError(
            f"`space[{name!r}]` as a mapping describes a range: {{'low', 'high'}} and optionally 'step', 'log'. "
            f"Received: {dict(entry)!r}."
        )
    return Range(entry["low"], entry["high"], step=entry.get("step"), log=bool(entry.get("log", False)))
