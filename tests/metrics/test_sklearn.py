from __future__ import annotations

import pytest
import torch
from sklearn.metrics import mean_absolute_error, r2_score, roc_auc_score

from tests.metrics.helpers import N, batches, update_all
from trainwell.metrics import SKLearnMetrics


def data(seed: int = 11) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    y_true = torch.randint(0, 2, (N,), generator=generator).float()
    return y_true + torch.randn(N, generator=generator), y_true


def test_several_functions_with_kwargs() -> None:
    y_pred, y_true = data()
    metric = SKLearnMetrics([roc_auc_score, r2_score], kwargs=[{"max_fpr": 0.5}, None])
    assert metric.names == ("roc_auc_score", "r2_score")
    update_all(metric, y_pred, y_true)
    expected = [roc_auc_score(y_true, y_pred, max_fpr=0.5), r2_score(y_true, y_pred)]
    assert metric.compute().tolist() == pytest.approx(expected, rel=1e-6)


def test_single_function_gives_a_scalar_and_custom_name() -> None:
    y_pred, y_true = data()
    metric = SKLearnMetrics(mean_absolute_error, names="mae_sk")
    update_all(metric, y_pred, y_true)
    value = metric.compute()
    assert metric.names == ("mae_sk",) and value.shape == ()
    assert value.item() == pytest.approx(mean_absolute_error(y_true, y_pred), rel=1e-6)


def test_sample_weight_pairs() -> None:
    y_pred, y_true = data()
    weights = torch.rand(N, generator=torch.Generator().manual_seed(0))
    metric = SKLearnMetrics(r2_score)
    for pred, true, weight in batches(y_pred, y_true, weights):
        metric.update(pred, (true, weight))
    assert metric.compute().item() == pytest.approx(r2_score(y_true, y_pred, sample_weight=weights), rel=1e-6)


def test_state_dict_round_trip_mid_epoch_and_reset() -> None:
    y_pred, y_true = data()
    reference = SKLearnMetrics(roc_auc_score)
    update_all(reference, y_pred, y_true)
    parts = list(batches(y_pred, y_true))
    first = SKLearnMetrics(roc_auc_score)
    for pred, true in parts[:2]:
        first.update(pred, true)
    saved = first.state_dict()
    assert set(saved) == {"y_pred", "y_true"} and saved["y_true"].shape == (101,)
    resumed = SKLearnMetrics(roc_auc_score)
    resumed.load_state_dict(saved)
    for pred, true in parts[2:]:
        resumed.update(pred, true)
    assert torch.equal(resumed.compute(), reference.compute())
    resumed.reset()
    assert resumed.state_dict() == {}
    with pytest.raises(RuntimeError, match=r"compute\(\) was called before any update\(\)"):
        resumed.compute()


def test_errors() -> None:
    with pytest.raises(TypeError, match=r"`funcs` must be a function f\(y_true, y_pred\)"):
        SKLearnMetrics([])
    with pytest.raises(TypeError, match=r"`kwargs` must be a dict or a list of 2 dicts"):
        SKLearnMetrics([r2_score, roc_auc_score], kwargs=[{}])
    with pytest.raises(ValueError, match=r"`names` must give one name per function \(2\)"):
        SKLearnMetrics([r2_score, roc_auc_score], names="a")
    with pytest.raises(KeyError, match=r"Unexpected keys \['bogus'\]"):
        SKLearnMetrics(r2_score).load_state_dict({"bogus": torch.zeros(1)})
