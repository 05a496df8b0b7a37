"""What ``Model`` does with weights, optimizer state and devices, kept apart from the training API."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from typing_extensions import Self

from trainwell.engine.sharded import (
    full_optimizer_state,
    full_state_dict,
    is_fsdp,
    load_full_optimizer_state,
    load_full_state_dict,
)
from trainwell.model import lazy_layers
from trainwell.storage.files import PathOrFile, load_state, load_tensors, save_state, save_tensors

__all__ = ["WeightsAndDevices"]


class WeightsAndDevices:
    """Saving, loading and moving a model's weights and optimizer state (mixed into ``Model``)."""

    network: nn.Module
    optimizer: torch.optim.Optimizer | None
    device: torch.device | None
    batch_metrics: list[Any]
    _epoch_metrics: list[Any]
    _steps: Any
    _data_device: Any

    # -- weights and optimizer state ----------------------------------------------------------------------
    def save_weights(self, f: PathOrFile) -> None:
        """Saves the network's weights as safetensors (atomically when ``f`` is a path)."""
        save_tensors(f, self._whole_weights())

    def load_weights(self, f: PathOrFile, strict: bool = True) -> None:
        """Loads weights from safetensors, or from a torch file read with ``weights_only=True``."""
        self.set_weights(load_tensors(f), strict=strict)

    def get_weights(self) -> dict[str, torch.Tensor]:
        """The network's state dict (references to the live tensors; whole copies under ``strategy='fsdp'``)."""
        return self._whole_weights() if is_fsdp(self.network) else self.network.state_dict()

    def get_weight_copies(self) -> dict[str, torch.Tensor]:
        """Copies of the network's weights on the CPU, unaffected by further training."""
        weights = self._whole_weights() if is_fsdp(self.network) else self.network.state_dict()
        return {name: tensor.detach().to("cpu", copy=True) for name, tensor in weights.items()}

    def _whole_weights(self) -> dict[str, torch.Tensor]:
        # Under FSDP every rank holds slices: they are gathered whole (every rank must call this).
        return full_state_dict(self.network) if is_fsdp(self.network) else dict(self.network.state_dict())

    def set_weights(self, weights: dict[str, torch.Tensor], strict: bool = True) -> None:
        """Loads a state dict into the network (lazy layers take the saved shapes; a pending optimizer is built)."""
        if is_fsdp(self.network):
            load_full_state_dict(self.network, weights, strict=strict)  # each rank keeps its slices
        else:
            self.network.load_state_dict(weights, strict=strict)
        lazy_layers.ensure_optimizer(self)

    def save_optimizer_state(self, f: PathOrFile) -> None:
        """Saves the optimizer's state without pickle (safetensors + JSON metadata)."""
        lazy_layers.require_optimizer(self, "save its state")
        if self.optimizer is None:
            raise RuntimeError("This Model has no optimizer whose state could be saved.")
        save_state(f, full_optimizer_state(self.optimizer) if is_fsdp(self.network) else self.optimizer.state_dict())

    def load_optimizer_state(self, f: PathOrFile) -> None:
        """Loads an optimizer state saved by :meth:`save_optimizer_state` (or a weights-only torch file)."""
        lazy_layers.require_optimizer(self, "load a state")
        if self.optimizer is None:
            raise RuntimeError("This Model has no optimizer to load a state into.")
        state = load_state(f)
        if is_fsdp(self.network):
            load_full_optimizer_state(self.optimizer, state)
        else:
            self.optimizer.load_state_dict(state)
        self._move_optimizer_state()

    # -- devices ------------------------------------------------------------------------------------------
    def to(self, device: Any) -> Self:
        """Moves the network, the optimizer state and the metrics to ``device``; returns the model."""
        if isinstance(device, (list, tuple)) or device == "all":
            return self._to_data_parallel(device)
        try:
            resolved = torch.device(device)
        except (TypeError, RuntimeError) as error:
            raise ValueError(
                f"`device` must be a device name ('cpu', 'cuda', 'cuda:1'), a torch.device, a list of devices "
                f"or 'all'. Received: device={device!r}."
            ) from error
        if resolved.type == "cuda":
            _check_cuda_device(device, resolved)
        self.device = resolved
        self.network.to(resolved)
        self._move_optimizer_state()
        for metric in [*self.batch_metrics, *self._epoch_metrics]:
            metric.to(resolved)
        return self

    def _to_data_parallel(self, devices: Any) -> Self:
        if not torch.cuda.is_available():
            raise ValueError(f"`device={devices!r}` needs CUDA devices, and none is available here.")
        ids = list(range(torch.cuda.device_count())) if devices == "all" else [torch.device(d).index for d in devices]
        self.to(torch.device("cuda", ids[0]))
        self._steps.network = nn.DataParallel(self.network, device_ids=ids)
        return self

    def cuda(self, device: Any = None) -> Self:
        """Moves everything to a CUDA device (the current one by default)."""
        return self.to(
            "cuda" if device is None else torch.device("cuda", device) if isinstance(device, int) else device
        )

    def cpu(self) -> Self:
        """Moves everything to the CPU."""
        return self.to("cpu")

    def _move_optimizer_state(self) -> None:
        if self.optimizer is None:
            return
        for parameter, state in self.optimizer.state.items():
            if isinstance(parameter, torch.Tensor):
                for key, value in state.items():
                    # 'step' counters stay where torch put them (on the CPU for most optimizers).
                    if isinstance(value, torch.Tensor) and key != "step":
                        state[key] = value.to(parameter.device)

    def _pin_memory(self) -> bool:
        device = self._data_device()
        return device is not None and device.type == "cuda"


def _check_cuda_device(device: Any, resolved: torch.device) -> None:
    """A CUDA device that this machine has, or an error naming ``device`` (torch's would be an assertion)."""
    if not torch.cuda.is_available():
        raise ValueError(
            f"`device` is {device!r}, but this machine has no CUDA device (torch.cuda.is_available() is False). "
            "Pass device='cpu', or install a CUDA build of torch on a machine with an NVIDIA GPU."
        )
    count = torch.cuda.device_count()
    if resolved.index is not None and resolved.index >= count:
        raise ValueError(
            f"`device` is {device!r}, but this machine has {count} CUDA device(s): 'cuda:0' to 'cuda:{count - 1}'."
        )
