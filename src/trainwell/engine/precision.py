"""Mixed precision for the steps: an autocast context around forward and loss, a gradient scaler for fp16.

``Model(..., precision='bf16')`` runs forward and loss under ``torch.autocast`` in bfloat16 (no scaler is
needed: bf16 has fp32's range). ``precision='16'`` uses float16 with ``torch.amp.GradScaler``: the loss is
scaled before backward, the gradients are unscaled before clipping and the optimizer, and a step whose
gradients overflowed is skipped, as torch does. Skipped steps are counted on the device and reported
once per epoch as ``skipped_steps``. The scaler's state joins the training state, so a resumed run scales
exactly as the uninterrupted one would.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch

from trainwell.engine import optimizer_calls

__all__ = ["PRECISIONS", "MixedPrecision", "normalize_precision"]

# Accepted spellings -> canonical name (Lightning's '16-mixed' / 'bf16-mixed' included).
PRECISIONS = {
    "32": "32",
    "32-true": "32",
    "fp32": "32",
    "float32": "32",
    "bf16": "bf16",
    "bf16-mixed": "bf16",
    "bfloat16": "bf16",
    "16": "16",
    "16-mixed": "16",
    "fp16": "16",
    "float16": "16",
}


def normalize_precision(precision: Any) -> str:
    """The canonical name ('32', 'bf16' or '16') of a ``precision`` argument.

    >>> normalize_precision(16), normalize_precision('bf16-mixed'), normalize_precision('32')
    ('16', 'bf16', '32')
    """
    key = str(precision).lower() if isinstance(precision, (str, int)) and not isinstance(precision, bool) else None
    if key is None or key not in PRECISIONS:
        raise ValueError(
            f"`precision` must be '32', 'bf16' or '16' (fp16 with a gradient scaler). Received: precision="
            f"{precision!r}. Use 'bf16' on CPUs and recent GPUs, '16' on older GPUs."
        )
    return PRECISIONS[key]


class MixedPrecision:
    """The autocast context and gradient scaler of one precision setting.

    Args:
        name: '32', 'bf16' or '16' (any spelling :func:`normalize_precision` accepts).

    >>> precision = MixedPrecision('bf16'); precision.bind(torch.device('cpu'))
    >>> with precision.autocast():
    ...     (torch.ones(2, 2) @ torch.ones(2, 2)).dtype
    torch.bfloat16
    """

    def __init__(self, name: Any = "32") -> None:
        self.name = normalize_precision(name)
        self.device_type = "cpu"
        self.scaler: torch.amp.GradScaler | None = None
        self._skipped: torch.Tensor | None = None
        self._pending_scaler_state: dict[str, Any] | None = None

    @property
    def dtype(self) -> torch.dtype | None:
        """The autocast dtype, or None at full precision."""
        return {"32": None, "bf16": torch.bfloat16, "16": torch.float16}[self.name]

    def bind(self, device: torch.device | None) -> None:
        """Prepares autocast and the scaler for the device the steps run on."""
        device_type = device.type if device is not None else "cpu"
        if self.name == "16" and (self.scaler is None or device_type != self.device_type):
            self.scaler = torch.amp.GradScaler(device_type)
            if self._pending_scaler_state is not None:
                self.scaler.load_state_dict(self._pending_scaler_state)
                self._pending_scaler_state = None
        self.device_type = device_type

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """A context running forward and loss in the reduced dtype (a no-op at full precision)."""
        dtype = self.dtype
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device_type, dtype=dtype)

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        """Steps ``optimizer`` (through the scaler, which skips it when the gradients overflowed)."""
        if self.scaler is None:
            optimizer_calls.step(optimizer)
        else:
            self.scaler.step(optimizer)

    def update(self) -> None:
        """Updates the scale after a training step; counts the step as skipped when the scale dropped."""
        scaler = self.scaler
        if scaler is None:
            return
        before = getattr(scaler, "_scale", None)
        before = before.clone() if isinstance(before, torch.Tensor) else None
        scaler.update()
        after = getattr(scaler, "_scale", None)
        if before is not None and isinstance(after, torch.Tensor):
            # The scale only drops when the step found inf/NaN gradients (and was skipped): counted on the
            # device, read once per epoch.
            dropped = (after < before).to(torch.int64).reshape(())
            self._skipped = dropped if self._skipped is None else self._skipped + dropped

    def epoch_logs(self) -> dict[str, int]:
        """``{'skipped_steps': n}`` for the steps skipped since the last call (fp16 only; one host read)."""
        if self.name != "16":
            return {}
        skipped = 0 if self._skipped is None else int(self._skipped)
        self._skipped = None
        return {"skipped_steps": skipped}

    def state_dict(self) -> dict[str, Any] | None:
        """The scaler's state (None without a scaler)."""
        if self.scaler is not None:
            return dict(self.scaler.state_dict())
        return self._pending_scaler_state

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        """Restores :meth:`state_dict` (kept until the scaler exists when it does not yet)."""
        if state is None or self.name != "16":
            return
        if self.scaler is None:
            self._pending_scaler_state = dict(state)
        else:
            self.scaler.load_state_dict(state)
