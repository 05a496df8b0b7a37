from __future__ import annotations

import pytest
import torch
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score, root_mean_squared_error

from tests.metrics.helpers import N, batches, update_all
from trainwell.metrics import MAE, MSE, R2, RMSE

CASES = [
    (MSE, mean_squared_error),
    (MAE, mean_absolute_error),
    (RMSE, root_mean_squared_error),
    (R2, r2_score),
]


def regression_data(seed: int, outputs: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    shape = (N,) if outputs is None else (N, outputs)
    # a large offset checks that R² does not lose precision to cancellation
    y_true = 1000.0 + 3.0 * torch.randn(shape, generator=generator)
    y_pred = y_true + torch.randn(shape, generator=generator) * torch.linspace(0.5, 2.0, shape[-1])
    return y_pred, y_true


@pytest.mark.parametrize(("metric_class", "sklearn_fn"), CASES)
@pytest.mark.parametrize("outputs", [None, 1, 3])
def test_matches_sklearn_over_uneven_batches(metric_class, sklearn_fn, outputs) -> None:
    y_pred, y_true = regression_data(seed=8, outputs=outputs)
    metric = metric_class()
    update_all(metric, y_pred, y_true)
    expected = sklearn_fn(y_true.double().numpy(), y_pred.double().numpy())
    assert metric.compute().item() == pytest.approx(expected, rel=1e-5, abs=1e-5)


def test_column_predictions_against_flat_targets() -> None:
    y_pred, y_true = regression_data(seed=9, outputs=None)
    metric = MSE()
    update_all(metric, y_pred[:, None], y_true)
    assert metric.compute().item() == pytest.approx(mean_squared_error(y_true, y_pred), rel=1e-5)


def test_r2_constant_targets_follow_sklearn() -> None:
    y_true = torch.ones(6, 2)
    y_pred = torch.ones(6, 2)
    y_pred[:, 1] = 2.0  # first output exact (R² 1), second wrong (R² 0)
    metric = R2()
    for pred, true in batches(y_pred, y_true, sizes=(4, 2)):
        metric.update(pred, true)
    assert metric.compute().item() == pytest.approx(r2_score(y_true.numpy(), y_pred.numpy()))


def test_names_and_direction() -> None:
    assert [cls().names for cls, _ in CASES] == [("mse",), ("mae",), ("rmse",), ("r2",)]
    assert [cls().higher_is_better for cls, _ in CASES] == [False, False, False, True]
    assert MSE(name="val_error").names == ("val_error",)


@pytest.mark.parametrize("metric_class", [MSE, R2])
def test_state_dict_round_trip_mid_epoch(metric_class) -> None:
    y_pred, y_true = regression_data(seed=10, outputs=2)
    reference = metric_class()
    update_all(reference, y_pred, y_true)
    parts = list(batches(y_pred, y_true))
    first = metric_class()
    for pred, true in parts[:3]:
        first.update(pred, true)
    resumed = metric_class()
    resumed.load_state_dict(first.state_dict())
    for pred, true in parts[3:]:
        resumed.update(pred, true)
    assert torch.equal(resumed.compute(), reference.compute())
    resumed.reset()
    assert resumed.compute().item() == 0.0


def test_shape_mismatch_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"MSE expects predictions and targets of the same shape\. Received"):
        MSE().update(torch.zeros(4, 2), torch.zeros(4))
