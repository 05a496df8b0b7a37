"""Gradient diagnostics: per-layer gradient statistics per epoch (GradientTracker) and per batch (Poutyne's tracker).

The per-step gradient-norm loggers live in :mod:`trainwell.callbacks.gradients_norms` and share the
reading machinery defined here.

Both kinds read the gradients once they are final: a function registered in the model's
``before_optimizer_step`` hooks runs after gradient accumulation (``batches_per_step``) has averaged
them and just before ``optimizer.step()``, so there is one reading per optimizer step, of the
gradient the optimizer applies. If gradient clipping is also used, the callback listed first runs
first: put a logger before ``ClipNorm`` to see the norms before clipping.

Everything is computed and accumulated on the gradients' device with multi-tensor (``_foreach``)
kernels; the host reads the results once per epoch (or once every ``flush_every`` steps), never once
per parameter or per step.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch

from trainwell.callbacks.base import Callback
from trainwell.callbacks.tensorboard import resolve_writer

__all__ = ["GradientReader", "GradientTracker", "TensorBoardGradientTracker", "WeightsGradientsStatsTracker", "is_bias"]

STATISTICS = ("mean", "std", "min", "max", "abs_min", "abs_max", "norm")


def is_bias(name: str) -> bool:
    """Whether a parameter is a bias: its own name (after the last dot) starts with 'bias'.

    >>> is_bias('fc.bias'), is_bias('lstm.bias_ih_l0'), is_bias('bias_net.weight')
    (True, True, False)
    """
    return name.rsplit(".", 1)[-1].startswith("bias")


def _check_flag(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise TypeError(f"`{name}` must be True or False. Received: {name}={value!r}.")


class WeightsGradientsStatsTracker:
    """Running per-layer statistics of gradients over batches (Poutyne's tracker), kept on the device.

    Each :meth:`batch_statistic_upgrade` adds one batch: the mean of ``|g|`` per layer (whose running
    mean and variance across batches follow Welford's algorithm), and the extremes of ``g`` and ``|g|``.
    :meth:`get_stats` reads them in one transfer and starts over.

    Args:
        number_layers: how many layers each batch gives (in the same order every time).

    >>> tracker = WeightsGradientsStatsTracker(number_layers=1)
    >>> class Parameter:
    ...     grad = torch.tensor([0.5, -1.5])
    >>> tracker.batch_statistic_upgrade([('w', Parameter())])
    >>> tracker.get_stats(['w'])['w']['mean'], tracker.count
    (1.0, 1)
    """

    def __init__(self, number_layers: int) -> None:
        if isinstance(number_layers, bool) or not isinstance(number_layers, int) or number_layers < 0:
            raise ValueError(f"`number_layers` must be an int >= 0. Received: number_layers={number_layers!r}.")
        self.number_layers = number_layers
        self.reset()

    def reset(self) -> None:
        """Forgets every batch."""
        self.count = 1  # Poutyne's convention: the number of the next batch
        self._sums: dict[str, torch.Tensor] | None = None

    def batch_statistic_upgrade(self, named_parameters: Any) -> None:
        """Adds one batch: ``named_parameters`` yields ``(name, parameter)`` pairs whose ``.grad`` is set."""
        with torch.no_grad():
            gradients = [parameter.grad.detach().float() for _, parameter in named_parameters]
            if len(gradients) != self.number_layers:
                raise ValueError(
                    f"WeightsGradientsStatsTracker tracks {self.number_layers} layers; this batch gave "
                    f"{len(gradients)} gradients."
                )
            if not gradients:
                return
            absolute = [gradient.abs() for gradient in gradients]
            step = {
                "abs_mean": torch.stack([values.mean() for values in absolute]),
                "min": torch.stack([gradient.min() for gradient in gradients]),
                "abs_min": torch.stack([values.min() for values in absolute]),
                "max": torch.stack([gradient.max() for gradient in gradients]),
                "abs_max": torch.stack([values.max() for values in absolute]),
            }
            if self._sums is None:
                zeros = torch.zeros_like(step["abs_mean"])
                self._sums = {"mean": zeros.clone(), "m2": zeros.clone(), **{k: v.clone() for k, v in step.items()}}
            sums = self._sums
            delta = step["abs_mean"] - sums["mean"]  # Welford's update of the mean and squared deviations
            sums["mean"].add_(delta / self.count)
            sums["m2"].add_(delta * (step["abs_mean"] - sums["mean"]))
            for name in ("min", "abs_min"):
                torch.minimum(sums[name], step[name], out=sums[name])
            for name in ("max", "abs_max"):
                torch.maximum(sums[name], step[name], out=sums[name])
        self.count += 1

    def get_stats(self, layer_names: list[str]) -> dict[str, dict[str, float]]:
        """The statistics of each layer since the last reset (one transfer), then a reset.

        Returns:
            ``{layer: {'mean', 'mean_std_dev_up', 'mean_std_dev_down', 'min', 'abs_min', 'max', 'abs_max'}}``:
            the mean of ``|g|`` over the batches, plus and minus its standard deviation across batches (n - 1;
            0 for one batch), and the extremes.
        """
        if self._sums is None:
            self.reset()
            return {}
        sums, batches = self._sums, self.count - 1
        std = (sums["m2"] / (batches - 1)).clamp_min(0).sqrt() if batches > 1 else torch.zeros_like(sums["m2"])
        table = torch.stack(
            [
                sums["mean"],
                sums["mean"] + std,
                sums["mean"] - std,
                sums["min"],
                sums["abs_min"],
                sums["max"],
                sums["abs_max"],
            ]
        ).tolist()
        names = ("mean", "mean_std_dev_up", "mean_std_dev_down", "min", "abs_min", "max", "abs_max")
        stats = {
            layer: {name: table[row][index] for row, name in enumerate(names)}
            for index, layer in enumerate(layer_names)
        }
        self.reset()
        return stats


class GradientReader(Callback):
    """Selects the parameters to watch and runs :meth:`_read_gradients` before every optimizer step."""

    def __init__(self, keep_bias: bool) -> None:
        _check_flag("keep_bias", keep_bias)
        self.keep_bias = keep_bias
        self.layer_names: list[str] = []
        self._parameters: list[torch.nn.Parameter] = []
        self._masks: dict[tuple[int, ...], tuple[torch.Tensor, torch.Tensor]] = {}

    def on_train_begin(self, logs: Mapping[str, Any]) -> None:
        """Chooses the watched parameters and registers the gradient reader for this run."""
        named = [
            (name, parameter)
            for name, parameter in self.model.network.named_parameters()
            if self._keep_layer(parameter, name) and parameter.numel() > 0
        ]
        self.layer_names = [name for name, _ in named]
        self._parameters = [parameter for _, parameter in named]
        self._masks = {}
        hooks = self._hooks()
        if self._read_gradients not in hooks:
            hooks.append(self._read_gradients)

    def on_train_end(self, logs: Mapping[str, Any]) -> None:
        """Unregisters the gradient reader."""
        hooks = self._hooks()
        if self._read_gradients in hooks:
            hooks.remove(self._read_gradients)

    def _keep_layer(self, parameter: Any, name: str) -> bool:
        """Whether a parameter is watched: it is trained, and it is no bias unless ``keep_bias``."""
        return bool(parameter.requires_grad) and (self.keep_bias or not is_bias(name))

    def _hooks(self) -> list[Any]:
        steps = getattr(self.model, "_steps", None)
        hooks = getattr(steps, "before_optimizer_step", None)
        if hooks is None:
            raise RuntimeError(
                f"{type(self).__name__} needs a trainwell Model (its steps' `before_optimizer_step` hooks). "
                f"Received a model of type {type(self.model).__name__}."
            )
        return hooks

    def _gradients(self, dense: bool) -> tuple[list[torch.Tensor], tuple[int, ...]]:
        """The present gradients and the positions they hold.

        A sparse gradient becomes its stored values (enough for a norm) or, with ``dense``, a dense
        tensor (statistics such as the mean or the minimum count the implicit zeros).
        """
        gradients, positions = [], []
        for position, parameter in enumerate(self._parameters):
            gradient = parameter.grad
            if gradient is None:
                continue
            if gradient.is_sparse:
                gradient = gradient.to_dense() if dense else gradient.coalesce().values()
            gradients.append(gradient.detach())
            positions.append(position)
        return gradients, tuple(positions)

    def _scatter(self, values: list[torch.Tensor], positions: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
        """One float32 vector over all watched layers (0 where no gradient), and the mask of present ones."""
        device = values[0].device
        stacked = torch.stack([value.to(device=device, dtype=torch.float32) for value in values])
        if len(positions) == len(self._parameters):
            return stacked, self._mask(positions, device)[1]
        index, mask = self._mask(positions, device)
        full = torch.zeros(len(self._parameters), device=device)
        return full.index_copy(0, index, stacked), mask

    def _mask(self, positions: tuple[int, ...], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        # Cached per pattern: the usual pattern (every layer has a gradient) costs one copy per run.
        if positions not in self._masks:
            mask = torch.zeros(len(self._parameters), dtype=torch.bool)
            mask[list(positions)] = True
            self._masks[positions] = (torch.tensor(positions, device=device), mask.to(device))
        return self._masks[positions]

    def _read_gradients(self) -> None:
        raise NotImplementedError


class GradientTracker(GradientReader):
    """Accumulates per-layer gradient statistics over each epoch; subclasses decide where they go.

    At every optimizer step, for each watched parameter with gradient ``g``, it records the mean of
    ``|g|``, the L2 norm of ``g``, the smallest and largest element of ``g`` and of ``|g|``. At the end
    of the epoch :meth:`_on_gradient_statistics` receives, per layer (parameter name):

    - ``mean``: the average over the epoch's steps of the mean ``|g|``, and ``std`` the standard
      deviation (n - 1) of that per-step mean across steps (0 with one step);
    - ``min``, ``max``, ``abs_min``, ``abs_max``: the extremes of ``g`` and ``|g|`` over the epoch;
    - ``norm``: the average over the steps of the L2 norm of ``g``.

    A layer that received no gradient during the epoch is left out. ``last_statistics`` keeps the
    latest epoch's values.

    Args:
        keep_bias: also watch biases (parameters whose own name starts with 'bias'), as in Poutyne.

    >>> import torch
    >>> from trainwell import Model
    >>> class Print(GradientTracker):
    ...     def _on_gradient_statistics(self, epoch, statistics):
    ...         print(epoch, sorted(statistics), sorted(statistics['weight']))
    >>> _ = Model(torch.nn.Linear(2, 1), 'sgd', 'mse').fit(torch.ones(4, 2), torch.ones(4, 1), epochs=1,
    ...                                                    verbose=False, callbacks=[Print()])
    1 ['weight'] ['abs_max', 'abs_min', 'max', 'mean', 'min', 'norm', 'std']
    """

    def __init__(self, keep_bias: bool = False) -> None:
        super().__init__(keep_bias)
        self.last_statistics: dict[str, dict[str, float]] = {}
        self._sums: dict[str, torch.Tensor] | None = None
        self._numels: torch.Tensor | None = None

    def on_train_begin(self, logs: Mapping[str, Any]) -> None:  # noqa: D102
        super().on_train_begin(logs)
        self._numels = None

    def on_epoch_begin(self, epoch_number: int, logs: Mapping[str, Any]) -> None:  # noqa: D102
        self._sums = None

    def _read_gradients(self) -> None:
        gradients, positions = self._gradients(dense=True)
        if not gradients:
            return
        with torch.no_grad():
            # p-norms give the |g| statistics without a copy: L1 is the sum, L-inf the max, L-(-inf) the min.
            step = {
                "abs_sum": torch._foreach_norm(gradients, 1),
                "norm": torch._foreach_norm(gradients, 2),
                "abs_max": torch._foreach_norm(gradients, math.inf),
                "abs_min": torch._foreach_norm(gradients, -math.inf),
                "max": torch._foreach_max(gradients),
                "min": torch._foreach_neg(torch._foreach_max(torch._foreach_neg(gradients))),
            }
            vectors = {name: self._scatter(list(values), positions) for name, values in step.items()}
            mask = vectors["norm"][1]
            step_vectors = {name: vector for name, (vector, _) in vectors.items()}
            if self._numels is None:
                self._numels = torch.tensor(
                    [p.numel() for p in self._parameters], dtype=torch.float32, device=mask.device
                )
            step_vectors["abs_mean"] = step_vectors.pop("abs_sum") / self._numels
            self._accumulate(step_vectors, mask)

    def _accumulate(self, step: dict[str, torch.Tensor], mask: torch.Tensor) -> None:
        if self._sums is None:
            zeros = torch.zeros_like(step["norm"])
            self._sums = {
                "count": zeros.clone(),
                "mean": zeros.clone(),
                "m2": zeros.clone(),
                "norm": zeros.clone(),
                "min": torch.full_like(zeros, math.inf),
                "abs_min": torch.full_like(zeros, math.inf),
                "max": torch.full_like(zeros, -math.inf),
                "abs_max": torch.full_like(zeros, -math.inf),
            }
        sums = self._sums
        # Welford's update of the mean and squared deviations of the per-step mean |g|, per layer.
        sums["count"].add_(mask.to(sums["count"].dtype))
        delta = torch.where(mask, step["abs_mean"] - sums["mean"], 0.0)
        sums["mean"].add_(delta / sums["count"].clamp_min(1))
        sums["m2"].add_(delta * (step["abs_mean"] - sums["mean"]))
        sums["norm"].add_(torch.where(mask, step["norm"], 0.0))
        extremes = {"min": torch.minimum, "abs_min": torch.minimum, "max": torch.maximum, "abs_max": torch.maximum}
        for name, pick in extremes.items():
            sums[name].copy_(torch.where(mask, pick(sums[name], step[name]), sums[name]))

    def epoch_statistics(self) -> dict[str, dict[str, float]]:
        """The statistics accumulated since the epoch began, per layer (one device-to-host transfer)."""
        if self._sums is None:
            return {}
        sums = self._sums
        count = sums["count"]
        std = torch.where(count > 1, (sums["m2"] / (count - 1).clamp_min(1)).clamp_min(0).sqrt(), 0.0)
        table = torch.stack(
            [count, sums["mean"], std, sums["min"], sums["max"], sums["abs_min"], sums["abs_max"], sums["norm"] / count]
        ).tolist()
        statistics = {}
        for index, name in enumerate(self.layer_names):
            if table[0][index] > 0:
                statistics[name] = {stat: table[row][index] for row, stat in enumerate(STATISTICS, 1)}
        return statistics

    def on_epoch_end(self, epoch_number: int, logs: Mapping[str, Any]) -> None:  # noqa: D102
        if self._sums is None:
            return
        self.last_statistics = self.epoch_statistics()
        self._on_gradient_statistics(epoch_number, self.last_statistics)

    def _on_gradient_statistics(self, epoch: int, statistics: dict[str, dict[str, float]]) -> None:
        """Receives one epoch's statistics: ``{layer: {'mean', 'std', 'min', 'max', 'abs_min', ...}}``."""


class TensorBoardGradientTracker(GradientTracker):
    """Writes per-layer gradient statistics to TensorBoard at the end of every epoch.

    The charts are Poutyne's: ``gradient_distributions/<layer>`` with the series ``mean``,
    ``mean_std_dev_up`` and ``mean_std_dev_down`` (mean of ``|g|`` plus and minus its standard
    deviation across steps), and ``other_gradient_stats/<layer>`` with ``min`` and ``max``; plus
    ``gradient_norm_mean/<layer>``, the average L2 norm. See :class:`GradientTracker`.

    Args:
        writer: a ``torch.utils.tensorboard.SummaryWriter``, or a log directory.
        keep_bias: also watch biases.
    """

    def __init__(self, writer: Any, keep_bias: bool = False) -> None:
        super().__init__(keep_bias)
        self.writer, self._owns_writer = resolve_writer(writer, type(self).__name__)

    def _on_gradient_statistics(self, epoch: int, statistics: dict[str, dict[str, float]]) -> None:
        for layer, values in statistics.items():
            mean, std = values["mean"], values["std"]
            # One add_scalars per series, as Poutyne writes them (the event files are the same as with one call).
            series = {"mean": mean, "mean_std_dev_up": mean + std, "mean_std_dev_down": mean - std}
            for name, value in series.items():
                self.writer.add_scalars(f"gradient_distributions/{layer}", {name: value}, epoch)
            for name in ("min", "max"):
                self.writer.add_scalars(f"other_gradient_stats/{layer}", {name: values[name]}, epoch)
            self.writer.add_scalar(f"gradient_norm_mean/{layer}", values["norm"], epoch)
        self.writer.flush()

    def on_train_end(self, logs: Mapping[str, Any]) -> None:  # noqa: D102
        super().on_train_end(logs)
        if self._owns_writer:
            self.writer.close()
