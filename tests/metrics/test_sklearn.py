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
    assert list(metric.compute().values()) == pytest.approx(expected, rel=1e-6)


def test_compute_gives_each_function_its_own_value_by_name() -> None:
    y_pred, y_true = data()
    metric = SKLearnMetrics(mean_absolute_error, names="mae_sk")
    update_all(metric, y_pred, y_true)
    assert metric.names == ("mae_sk",) and metric.__name__ == ["mae_sk"]
    # the very value scikit-learn gives on the whole epoch (same arrays, same order)
    assert metric.compute() == {"mae_sk": mean_absolute_error(y_true.numpy(), y_pred.numpy())}


def test_forward_gives_the_batch_values_and_keeps_the_batch() -> None:
    y_pred, y_true = data()
    metric = SKLearnMetrics([roc_auc_score, mean_absolute_error])
    for pred, true in batches(y_pred, y_true):
        assert metric(pred, true) == {
            "roc_auc_score": roc_auc_score(true.numpy(), pred.numpy()),
            "mean_absolute_error": mean_absolute_error(true.numpy(), pred.numpy()),
        }
    assert metric.compute()["roc_auc_score"] == roc_auc_score(y_true.numpy(), y_pred.numpy())


def test_to_moves_the_kept_batches() -> None:
    metric = SKLearnMetrics(r2_score)
    metric.update(torch.ones(2), torch.ones(2))
    assert metric.to(torch.float64) is metric
    assert metric.state_tensors()["y_true"].dtype == torch.float64


def test_sample_weight_pairs() -> None:
    y_pred, y_true = data()
    weights = torch.rand(N, generator=torch.Generator().manual_seed(0))
    metric = SKLearnMetrics(r2_score)
    for pred, true, weight in batches(y_pred, y_true, weights):
        metric.update(pred, (true, weight))
    assert metric.compute()["r2_score"] == pytest.approx(r2_score(y_true, y_pred, sample_weight=weights), rel=1e-6)


def test_state_dict_round_trip_mid_epoch_and_reset() -> None:
    y_pred, y_true = data()
    reference = SKLearnMetrics(roc_auc_score)
    update_all(reference, y_pred, y_true)
    parts = list(batches(y_pred, y_true))
    first = SKLearnMetrics(roc_auc_score)
    for pred, true in parts[:2]:
        first.update(pred, true)
    saved = first.state_tensors()
    assert set(saved) == {"y_pred", "y_true"} and saved["y_true"].shape == (101,)
    resumed = SKLearnMetrics(roc_auc_score)
    resumed.load_state_tensors(saved)
    for pred, true in parts[2:]:
        resumed.update(pred, true)
    assert resumed.compute() == reference.compute()
    resumed.reset()
    assert resumed.state_tensors() == {}
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
        SKLearnMetrics(r2_score).load_state_tensors({"bogus": torch.zeros(1)})


def test_module_state_dict_holds_the_kept_samples() -> None:
    y_pred, y_true = data()
    metric = SKLearnMetrics(r2_score)
    metric.update(y_pred[:10], (y_true[:10], torch.ones(10)))
    state = metric.state_dict()
    assert set(state) == {"y_pred", "y_true", "sample_weight"}
    fresh = SKLearnMetrics(r2_score)
    fresh.load_state_dict(state)
    assert fresh.compute() == metric.compute()
