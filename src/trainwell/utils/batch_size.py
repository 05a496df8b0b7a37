"""``get_batch_size``: how many samples a batch holds, found in its inputs and targets as Poutyne does."""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from trainwell.utils.warning_settings import check_warning_setting

__all__ = ["get_batch_size"]


def _is_array(value: Any) -> bool:
    return isinstance(value, (torch.Tensor, np.ndarray))


def _array_length(value: Any) -> int | None:
    return len(value) if _is_array(value) and value.ndim > 0 else None


def get_batch_size(*values: Any) -> int:
    """The batch size of a batch's values (``x``, ``y``...), tried in four passes over all of them.

    1. a value that is a tensor or a NumPy array: its length;
    2. a list or tuple whose first element is one: that element's length;
    3. a dict with an integer under ``'batch_size'``: that integer;
    4. a dict whose first value is a tensor or an array: that value's length.

    The first pass that succeeds for some value decides. When none does, the size is 1 and a warning
    says so; ``warning_settings['batch_size'] = 'ignore'`` silences it.

    >>> get_batch_size(torch.zeros(8, 3), torch.zeros(8))
    8
    >>> get_batch_size({'batch_size': 5, 'tokens': [1, 2]}, None)
    5
    """
    for value in values:
        if (length := _array_length(value)) is not None:
            return length
    for value in values:
        if isinstance(value, (list, tuple)) and value and (length := _array_length(value[0])) is not None:
            return length
    for value in values:
        if isinstance(value, Mapping):
            size = value.get("batch_size")
            if isinstance(size, numbers.Integral) and not isinstance(size, bool):
                return int(size)
    for value in values:
        if isinstance(value, Mapping) and value and (length := _array_length(next(iter(value.values())))) is not None:
            return length
    if check_warning_setting("batch_size"):
        warnings.warn(
            "The batch size could not be found, so this batch counts as 1 sample in the averages. Give a tensor "
            "or an array (or a list, tuple or dict starting with one, or a dict with an int 'batch_size'). To "
            "silence this: from trainwell import warning_settings; warning_settings['batch_size'] = 'ignore'.",
            stacklevel=2,
        )
    return 1
