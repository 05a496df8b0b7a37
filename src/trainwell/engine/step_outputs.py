"""What a custom step returns: logged scalars, metric inputs, the batch size, and the phase's outputs.

A custom step returns a dict. :func:`split_step_output` splits it: scalars are logged (averaged over the
epoch weighted by batch size, like the built-in loss), ``y_pred`` and ``y_true`` feed the model's
metrics, and everything is kept for the phase's epoch-end function as :class:`StepOutputs`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import torch

from trainwell.data.batches import batch_size_of

__all__ = ["StepOutputs", "split_step_output"]


class StepOutputs:
    """What the steps of one phase returned, for its epoch-end function.

    ``outputs['d_loss']`` stacks that key's per-step values (scalars become a 1-D tensor; tensors are
    concatenated along their first dimension); ``outputs.sizes`` are the steps' batch sizes and
    ``outputs.size`` their sum.

    >>> outputs = StepOutputs([{'hits': torch.tensor(3.)}, {'hits': torch.tensor(1.)}], [4, 2])
    >>> outputs['hits'].sum() / outputs.size, len(outputs)
    (tensor(0.6667), 2)
    """

    def __init__(self, steps: list[dict[str, Any]], sizes: list[int]) -> None:
        self.steps = steps
        self.sizes = sizes

    @property
    def size(self) -> int:
        """The number of examples the phase processed."""
        return sum(self.sizes)

    def __len__(self) -> int:
        return len(self.steps)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.steps)

    def keys(self) -> list[str]:
        """The keys the steps returned."""
        return list(self.steps[0]) if self.steps else []

    def __getitem__(self, key: str) -> Any:
        if not self.steps or key not in self.steps[0]:
            raise KeyError(f"The steps returned no value named {key!r}; they returned {self.keys()}.")
        values = [step[key] for step in self.steps]
        first = values[0]
        if isinstance(first, torch.Tensor):
            return torch.stack(values) if first.dim() == 0 else torch.cat(values)
        if isinstance(first, (int, float)):
            return torch.tensor(values)
        return values


def split_step_output(output: Any, batch: Any) -> tuple[dict[str, torch.Tensor], Any, Any, int, dict[str, Any]]:
    """Splits what a custom step returned into logged scalars, metric inputs, batch size and raw outputs.

    Returns:
        ``(logged, y_pred, y_true, size, kept)``: the scalars to log (detached 0-d tensors), the
        ``y_pred``/``y_true`` for the model's metrics (or None), the batch size (``size`` key, else the
        first dimension of the batch's first tensor), and every returned value, detached.

    >>> logged, y_pred, _, size, _ = split_step_output({'loss': torch.tensor(2.0), 'size': 5}, None)
    >>> logged, y_pred, size
    ({'loss': tensor(2.)}, None, 5)
    """
    if output is None:
        output = {}
    if not isinstance(output, Mapping):
        raise TypeError(
            "A custom step must return a dict of values to log, such as {'loss': loss}, or None. "
            f"Received a {type(output).__name__}."
        )
    kept: dict[str, Any] = {}
    logged: dict[str, torch.Tensor] = {}
    for key, value in output.items():
        if isinstance(value, torch.Tensor):
            value = value.detach()
            if value.dim() == 0 and key not in ("y_pred", "y_true", "size"):
                logged[key] = value
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and key != "size":
            logged[key] = torch.tensor(float(value))
        kept[key] = value
    size = output.get("size")
    size = int(size) if size is not None else batch_size_of(batch)
    return logged, kept.get("y_pred"), kept.get("y_true"), size, kept
