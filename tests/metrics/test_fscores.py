from __future__ import annotations

import warnings

import pytest
import torch
from sklearn.metrics import fbeta_score, precision_score, recall_score

from tests.metrics.helpers import N, batches, update_all
from trainwell.metrics import F1, FBeta, Precision, Recall

SKLEARN = {"fscore": fbeta_score, "precision": precision_score, "recall": recall_score}


def sklearn_value(metric: str, y_true, y_pred, beta: float, **kwargs) -> float:
    extra = {"beta": beta} if metric == "fscore" else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(SKLEARN[metric](y_true, y_pred, zero_division=0, **extra, **kwargs))


def multiclass_data(seed: int, num_classes: int = 6, ignore: bool = False):
    generator = torch.Generator().manual_seed(seed)
    y_pred = torch.randn(N, num_classes, generator=generator)
    # class 5 never appears in the targets: macro averaging must still count it when predicted
    y_true = torch.randint(0, num_classes - 1, (N,), generator=generator)
    if ignore:
        y_true[torch.randperm(N, generator=generator)[:40]] = -100
    return y_pred, y_true


@pytest.mark.parametrize("metric", ["fscore", "precision", "recall"])
@pytest.mark.parametrize("average", ["macro", "micro", 2, 5])
@pytest.mark.parametrize("beta", [1.0, 0.5, 2.0])
@pytest.mark.parametrize("ignore", [False, True])
def test_multiclass_matches_sklearn(metric: str, average, beta: float, ignore: bool) -> None:
    y_pred, y_true = multiclass_data(seed=3, ignore=ignore)
    fbeta = FBeta(metric=metric, average=average, beta=beta)
    update_all(fbeta, y_pred, y_true)
    keep = y_true != -100
    true, pred = y_true[keep].numpy(), y_pred[keep].argmax(1).numpy()
    if isinstance(average, int):
        expected = sklearn_value(metric, true, pred, beta, labels=[average], average="macro")
    else:
        expected = sklearn_value(metric, true, pred, beta, average=average)
    assert fbeta.compute().item() == pytest.approx(expected, abs=1e-6)


def test_macro_excludes_labels_absent_from_targets_and_predictions() -> None:
    # 10 classes of scores, but only classes 0-2 ever occur: sklearn averages over those 3 only
    y_true = torch.tensor([0, 1, 2, 2, 1, 0, 1])
    y_pred = torch.full((7, 10), -5.0)
    y_pred[torch.arange(7), torch.tensor([0, 2, 2, 1, 1, 0, 0])] = 5.0
    metric = F1()
    metric.update(y_pred, y_true)
    expected = sklearn_value("fscore", y_true.numpy(), y_pred.argmax(1).numpy(), 1.0, average="macro")
    assert metric.compute().item() == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("shape", ["logits", "column", "two_scores"])
@pytest.mark.parametrize("pos_label", [1, 0])
def test_binary_matches_sklearn(shape: str, pos_label: int) -> None:
    generator = torch.Generator().manual_seed(4)
    logits = torch.randn(N, generator=generator)
    y_true = torch.randint(0, 2, (N,), generator=generator)
    y_pred = {
        "logits": logits,
        "column": logits[:, None],
        "two_scores": torch.stack([-logits, logits], dim=1),
    }[shape]
    pred = (logits > 0).long().numpy()
    for metric_name in ("fscore", "precision", "recall"):
        metric = FBeta(metric=metric_name, average="binary", pos_label=pos_label, beta=2.0)
        update_all(metric, y_pred, y_true.float())
        expected = sklearn_value(metric_name, y_true.numpy(), pred, 2.0, average="binary", pos_label=pos_label)
        assert metric.compute().item() == pytest.approx(expected, abs=1e-6)


def test_binary_threshold() -> None:
    probabilities = torch.tensor([0.9, 0.4, 0.6, 0.2])
    metric = FBeta(metric="recall", average="binary", threshold=0.5)
    metric.update(probabilities, torch.tensor([1, 1, 1, 0]))
    assert metric.compute().item() == pytest.approx(2 / 3)


def test_segmentation_shapes_and_ignore_index() -> None:
    generator = torch.Generator().manual_seed(5)
    y_pred = torch.randn(N, 4, 6, 5, generator=generator)  # (N, C, H, W)
    y_true = torch.randint(0, 4, (N, 6, 5), generator=generator)
    y_true[:, 0] = 255
    metric = F1(ignore_index=255)
    update_all(metric, y_pred, y_true)
    keep = y_true != 255
    expected = sklearn_value("fscore", y_true[keep], y_pred.argmax(1)[keep], 1.0, average="macro")
    assert metric.compute().item() == pytest.approx(expected, abs=1e-6)


def test_all_three_values_and_names() -> None:
    y_pred, y_true = multiclass_data(seed=6)
    metric = FBeta()
    assert metric.names == ("fscore_macro", "precision_macro", "recall_macro")
    update_all(metric, y_pred, y_true)
    values = metric.compute()
    pred = y_pred.argmax(1)
    expected = [sklearn_value(name, y_true, pred, 1.0, average="macro") for name in SKLEARN]
    assert values.tolist() == pytest.approx(expected, abs=1e-6)


def test_default_names_follow_poutyne() -> None:
    assert F1().names == ("fscore_macro",)
    assert F1("micro").names == ("fscore_micro",)
    assert Precision().names == ("precision_macro",)
    assert Recall(3).names == ("recall_3",)
    assert FBeta(metric="fscore", average="binary").names == ("fscore_binary_1",)
    assert FBeta(average="binary", pos_label=0).names[0] == "fscore_binary_0"
    assert F1(names="my_f1").names == ("my_f1",)
    assert F1().higher_is_better is True


def test_reset_and_state_dict_round_trip_mid_epoch() -> None:
    y_pred, y_true = multiclass_data(seed=7, ignore=True)
    reference = FBeta(average="macro")
    update_all(reference, y_pred, y_true)

    first = FBeta(average="macro")
    parts = list(batches(y_pred, y_true))
    for pred, true in parts[:2]:
        first.update(pred, true)
    saved = first.state_dict()
    resumed = FBeta(average="macro")  # a fresh object, as after a restart
    resumed.load_state_dict(saved)
    for pred, true in parts[2:]:
        resumed.update(pred, true)
    assert torch.equal(resumed.compute(), reference.compute())

    resumed.reset()
    for pred, true in parts:
        resumed.update(pred, true)
    assert torch.equal(resumed.compute(), reference.compute())


def test_compute_before_update_is_zero() -> None:
    assert F1().compute().item() == 0.0
    assert FBeta().compute().tolist() == [0.0, 0.0, 0.0]


def test_errors() -> None:
    with pytest.raises(ValueError, match=r"`metric` must be 'fscore', 'precision', 'recall' or None"):
        FBeta(metric="f1")
    with pytest.raises(ValueError, match=r"`average` must be 'macro', 'micro', 'binary' or an int label"):
        FBeta(average="weighted")
    with pytest.raises(ValueError, match=r"`pos_label` must be 0 or 1 with average='binary'"):
        FBeta(average="binary", pos_label=2)
    with pytest.raises(ValueError, match=r"`names` must give one name per reported value \(3"):
        FBeta(names="f")
    metric = F1()
    metric.update(torch.randn(4, 3), torch.tensor([0, 1, 2, 0]))
    with pytest.raises(ValueError, match=r"updated with 3 classes and now receives 5"):
        metric.update(torch.randn(4, 5), torch.tensor([0, 1, 2, 0]))
    with pytest.raises(ValueError, match=r"expects scores of shape \(N, C, \.\.\.\)"):
        metric.update(torch.randn(4), torch.tensor([0, 1, 2, 0]))
    with pytest.raises(ValueError, match=r"average='binary'\) expects logits of shape"):
        FBeta(average="binary").update(torch.randn(4, 3), torch.tensor([0, 1, 1, 0]))
    out_of_range = F1(average=7)
    out_of_range.update(torch.randn(4, 3), torch.tensor([0, 1, 2, 0]))
    with pytest.raises(ValueError, match=r"`average` selects label 7, but the predictions have 3 classes"):
        out_of_range.compute()
