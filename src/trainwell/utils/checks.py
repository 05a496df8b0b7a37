"""Input checks made once, at the public boundary, with errors that say how to fix the call."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

__all__ = ["check_positive_int", "check_targets"]


def check_positive_int(value: Any, argument: str, allow_none: bool = False) -> None:
    """Raises unless ``value`` is a positive int (or None when allowed).

    >>> check_positive_int(0, 'batch_size')
    Traceback (most recent call last):
    ...
    ValueError: `batch_size` must be a positive int. Received: batch_size=0 (type int).
    """
    if value is None and allow_none:
        return
    if not isinstance(value, int) or isinstance(value, bool):
        none = " or None" if allow_none else ""
        raise TypeError(
            f"`{argument}` must be a positive int{none}. Received: {argument}={value!r} (type {type(value).__name__})."
        )
    if value <= 0:
        raise ValueError(f"`{argument}` must be a positive int. Received: {argument}={value} (type int).")


_CLASS_INDEX_LOSSES = (nn.CrossEntropyLoss, nn.NLLLoss)
_FLOAT_TARGET_LOSSES = (nn.BCEWithLogitsLoss, nn.BCELoss)


def check_callable(value: Any, argument: str) -> Any:
    """Returns ``value`` when it is None or callable; raises a TypeError naming ``argument`` otherwise.

    >>> check_callable(print, 'train_step') is print
    True
    """
    if value is not None and not callable(value):
        raise TypeError(
            f"`{argument}` must be a function (or None). Received: {argument} of type {type(value).__name__}."
        )
    return value


def check_targets(loss_function: Any, y_pred: Any, y_true: Any) -> None:
    """Checks targets against the loss before they reach the device.

    On CUDA, an out-of-range class index triggers a device-side assert that kills the whole CUDA
    context; a clear error here costs one min/max on the host. Only torch's classification losses are
    checked; any other loss is trusted.

    Args:
        loss_function: the loss module about to receive the targets.
        y_pred: the network's output for the batch.
        y_true: the batch's targets, ideally still on the host.

    >>> check_targets(nn.CrossEntropyLoss(), torch.zeros(2, 3), torch.tensor([0, 3]))
    Traceback (most recent call last):
    ...
    ValueError: Class labels in `y` must lie in [0, 2] for a network with 3 outputs. Received labels from 0 to 3. ...
    """
    if not isinstance(y_true, torch.Tensor) or not isinstance(y_pred, torch.Tensor):
        return
    if isinstance(loss_function, _FLOAT_TARGET_LOSSES) and not y_true.is_floating_point():
        raise TypeError(
            f"{type(loss_function).__name__} needs float targets. Received `y` of dtype {y_true.dtype}. "
            "Convert the targets with y.float()."
        )
    if not isinstance(loss_function, _CLASS_INDEX_LOSSES) or y_pred.dim() < 1:
        return
    if y_true.is_floating_point():
        if y_true.shape[1:] == y_pred.shape[1:]:
            return  # class probabilities, which cross-entropy accepts
        raise TypeError(
            f"{type(loss_function).__name__} needs integer class indices as targets. Received `y` of "
            f"dtype {y_true.dtype} for predictions of {y_pred.shape[1] if y_pred.dim() > 1 else 1} classes. "
            "Convert the labels with y.long(), or give class probabilities with "
            "the predictions' shape."
        )
    num_classes = y_pred.shape[1] if y_pred.dim() > 1 else y_pred.shape[0]
    if y_true.numel() == 0:
        return
    low, high = (int(bound) for bound in torch.aminmax(y_true))
    if low < 0:
        # Only now pay for a mask: ignored targets (-100 by default) are allowed anywhere.
        valid = y_true[y_true != loss_function.ignore_index]
        if valid.numel() == 0:
            return
        low, high = int(valid.min()), int(valid.max())
    if low < 0 or high >= num_classes:
        raise ValueError(
            f"Class labels in `y` must lie in [0, {num_classes - 1}] for a network with {num_classes} "
            f"outputs. Received labels from {low} to {high}. Check the labels (they must start at 0) or "
            "the size of the network's last layer."
        )
