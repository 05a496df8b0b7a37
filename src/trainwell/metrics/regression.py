"""Regression metrics computed exactly over an epoch: MSE, MAE, RMSE and R².

A mean of batch means is wrong when the last batch is smaller, and R² cannot be averaged at all, so these
metrics accumulate sums per output column on the device and divide once at the end of the epoch. Targets
of shape ``(N, k1, ...)`` are seen as ``N`` samples of ``k1 * ...`` outputs, and the result is the
uniform average over outputs, as scikit-learn's ``multioutput='uniform_average'``.
"""

from __future__ import annotations

import torch

from trainwell.metrics.base import EpochMetric, check_names

__all__ = ["MAE", "MSE", "R2", "RMSE"]


def _accumulator_dtype(device: torch.device) -> torch.dtype:
    # float64 sums stay exact over long epochs; MPS has no float64.
    return torch.float32 if device.type == "mps" else torch.float64


class _RegressionMetric(EpochMetric):
    """Accumulates per-output error sums; subclasses turn them into their value."""

    higher_is_better = False
    default_name = ""
    # Only R² needs the running mean and spread of the targets.
    tracks_targets = False

    def __init__(self, name: str | None = None) -> None:
        super().__init__()
        self.names = check_names(name or self.default_name, "name")

    def update(self, y_pred: torch.Tensor, y_true: torch.Tensor) -> None:
        """Adds one batch of predictions and targets to the sums (no host sync)."""
        if y_pred.shape != y_true.shape:
            if y_pred.numel() != y_true.numel():
                raise ValueError(
                    f"{type(self).__name__} expects predictions and targets of the same shape. "
                    f"Received: y_pred of shape {tuple(y_pred.shape)}, y_true of shape {tuple(y_true.shape)}."
                )
            # (N, 1) predictions against (N,) targets: broadcasting would compare every pair.
            y_pred = y_pred.reshape(y_true.shape)
        if y_true.shape[0] == 0:
            return
        dtype = _accumulator_dtype(y_true.device)
        targets = y_true.detach().reshape(y_true.shape[0], -1).to(dtype)
        errors = y_pred.detach().reshape(targets.shape).to(dtype) - targets
        if "count" not in self._state:
            zeros = torch.zeros(targets.shape[1], dtype=dtype, device=targets.device)
            self._state.update(
                count=torch.zeros((), dtype=dtype, device=targets.device),
                squared_error=zeros.clone(),
                absolute_error=zeros.clone(),
            )
            if self.tracks_targets:
                self._state.update(target_mean=zeros.clone(), target_m2=zeros.clone())
        state = self._state
        batch_size = targets.shape[0]
        if self.tracks_targets:
            # Chan et al.'s pairwise update merges the batch's mean and spread into the running ones,
            # avoiding the cancellation of sum(y²) - n·mean² on large targets.
            batch_mean = targets.mean(dim=0)
            batch_m2 = ((targets - batch_mean) ** 2).sum(dim=0)
            total = state["count"] + batch_size
            delta = batch_mean - state["target_mean"]
            state["target_mean"] += delta * (batch_size / total)
            state["target_m2"] += batch_m2 + delta**2 * (state["count"] * batch_size / total)
        state["count"] += batch_size
        state["squared_error"] += (errors**2).sum(dim=0)
        state["absolute_error"] += errors.abs().sum(dim=0)

    def compute(self) -> torch.Tensor:
        """Returns the epoch value as a float32 scalar tensor (0 before any update)."""
        if "count" not in self._state:
            return torch.zeros(())
        count = self._state["count"]
        value = self._per_output(count.clamp_min(1.0)).mean()
        # After reset() the sums are zero: report 0 like a fresh metric (R² alone would say 1).
        return torch.where(count > 0, value, torch.zeros_like(value)).to(torch.float32)

    def _per_output(self, count: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def merge_states(self, states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        """Adds the error sums of several processes; R²'s target means and spreads merge pairwise (Chan)."""
        merged = dict(states[0])
        for state in states[1:]:
            if self.tracks_targets:
                total = merged["count"] + state["count"]
                delta = state["target_mean"] - merged["target_mean"]
                weight = torch.where(total > 0, state["count"] / total.clamp_min(1.0), torch.zeros_like(total))
                merged["target_m2"] = merged["target_m2"] + state["target_m2"] + delta**2 * merged["count"] * weight
                merged["target_mean"] = merged["target_mean"] + delta * weight
            for key in ("count", "squared_error", "absolute_error"):
                merged[key] = merged[key] + state[key]
        return merged


class MSE(_RegressionMetric):
    """Mean squared error over the epoch, logged as ``mse``.

    >>> metric = MSE()
    >>> metric.update(torch.tensor([1.0, 2.0]), torch.tensor([0.0, 0.0]))
    >>> metric.update(torch.tensor([3.0]), torch.tensor([0.0]))
    >>> metric.compute()
    tensor(4.6667)
    """

    default_name = "mse"

    def _per_output(self, count: torch.Tensor) -> torch.Tensor:
        return self._state["squared_error"] / count


class MAE(_RegressionMetric):
    """Mean absolute error over the epoch, logged as ``mae``.

    >>> metric = MAE()
    >>> metric.update(torch.tensor([1.0, -2.0, 3.0]), torch.zeros(3))
    >>> metric.compute()
    tensor(2.)
    """

    default_name = "mae"

    def _per_output(self, count: torch.Tensor) -> torch.Tensor:
        return self._state["absolute_error"] / count


class RMSE(_RegressionMetric):
    """Root mean squared error over the epoch, logged as ``rmse``.

    With several outputs it is the mean of each output's RMSE, like scikit-learn's
    ``root_mean_squared_error``.

    >>> metric = RMSE()
    >>> metric.update(torch.tensor([3.0, -3.0]), torch.zeros(2))
    >>> metric.compute()
    tensor(3.)
    """

    default_name = "rmse"

    def _per_output(self, count: torch.Tensor) -> torch.Tensor:
        return (self._state["squared_error"] / count).sqrt()


class R2(_RegressionMetric):
    """Coefficient of determination over the epoch, logged as ``r2`` (scikit-learn's ``r2_score``).

    An output whose targets are constant scores 1 when predicted exactly and 0 otherwise, as
    scikit-learn's default ``force_finite=True``.

    >>> metric = R2()
    >>> metric.update(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 2.0]))
    >>> metric.update(torch.tensor([2.0]), torch.tensor([3.0]))
    >>> metric.compute()
    tensor(0.5000)
    """

    default_name = "r2"
    higher_is_better = True
    tracks_targets = True

    def _per_output(self, count: torch.Tensor) -> torch.Tensor:
        residual = self._state["squared_error"]
        total = self._state["target_m2"]
        ratio = residual / total.clamp_min(torch.finfo(total.dtype).tiny)
        constant = torch.where(residual == 0, torch.ones_like(residual), torch.zeros_like(residual))
        return torch.where(total > 0, 1.0 - ratio, constant)
