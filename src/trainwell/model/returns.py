"""The Poutyne return formats of ``evaluate*``, ``*_on_batch`` and ``predict*``."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from trainwell.data.batches import concatenate
from trainwell.utils.tensors import torch_to_numpy

__all__ = ["format_evaluation", "format_outputs"]


def format_outputs(parts: list[Any], *, concatenate_returns: bool, convert_to_numpy: bool) -> Any:
    """Per-batch outputs -> one concatenated structure (or the list of batches), as NumPy or tensors.

    >>> format_outputs([torch.zeros(2), torch.ones(1)], concatenate_returns=True, convert_to_numpy=True)
    array([0., 0., 1.], dtype=float32)
    """
    if not parts:
        return [] if not concatenate_returns else np.empty(0)
    if concatenate_returns:
        # Usually one output tensor per batch: nothing to convert, one cat.
        plain = all(type(part) is torch.Tensor for part in parts)
        merged = concatenate(parts if plain else [_as_tensors(part) for part in parts])
        return torch_to_numpy(merged) if convert_to_numpy else merged
    return [torch_to_numpy(part) if convert_to_numpy else part for part in parts]


def _as_tensors(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(obj)
    if isinstance(obj, (tuple, list)):
        return (
            type(obj)(_as_tensors(item) for item in obj)
            if isinstance(obj, list)
            else tuple(_as_tensors(item) for item in obj)
        )
    if isinstance(obj, dict):
        return {key: _as_tensors(value) for key, value in obj.items()}
    return obj


def format_evaluation(
    logs: dict[str, Any],
    metric_names: list[str],
    *,
    return_dict_format: bool,
    prefix: str,
    elapsed: float | None,
    extras: tuple[Any, ...] = (),
) -> Any:
    """Builds ``loss`` (+ metrics) (+ predictions) (+ ground truths), or the dict form, as Poutyne does.

    One metric gives a float, several a NumPy array (batch metrics first); with
    ``return_dict_format`` the logs come as ``{'time', prefix + 'loss', prefix + metric...}``.

    >>> format_evaluation({'loss': 0.5, 'acc': 90.0}, ['acc'], return_dict_format=False, prefix='', elapsed=None)
    (0.5, 90.0)
    """
    if return_dict_format:
        head: dict[str, Any] = {} if elapsed is None else {"time": elapsed}
        head.update({f"{prefix}{key}": value for key, value in logs.items()})
        returned: tuple[Any, ...] = (head,)
    else:
        returned = (logs["loss"],)
        if len(metric_names) == 1:
            returned += (logs[metric_names[0]],)
        elif metric_names:
            returned += (np.array([logs[name] for name in metric_names]),)
    returned += extras
    return returned[0] if len(returned) == 1 else returned
