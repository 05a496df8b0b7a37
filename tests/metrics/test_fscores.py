from __future__ import annotations

import warnings

import pytest
import torch
from sklearn.metrics import fbeta_score, precision_score, recall_score

from tests.metrics.helpers import N, batches, update_all
from tests.sync_guard import SyncGuard
from trainwell.metrics import F1, BinaryF1, BinaryPrecision, BinaryRecall, FBeta, Precision, Recall

SKLEARN = {"fscore": fbeta_score, "precision": precision_score, "recall": recall_score}


def sklearn_value(metric: str, y_true, y_pred, beta: float, **kwargs) -> float:
    extra = {"beta": beta} if metric == "fscore" else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(SKLEARN[metric](y_true, y_pred, zero_division=0, **extra, **kwargs))


def multiclass_data(seed: int, num_classes: int = 6, ignore: bool = False):
    generator = torch.Generator().manual_seed(seed)
    y_pred = torch.randn(N, num_classes, generator=generator)
    # class 5 never appears in the targets: macro averaging must still count it
    y_true = torch.randint(0, num_classes - 1, (N,), generator=generator)
    if ignore:
        y_true[torch.randperm(N, generator=generator)[:40]] = -100
    return y_pred, y_true


@pytest.mark.parametrize("metric", ["fscore", "precision", "recall"])
@pytest.mark.parametrize("average", ["macro", "micro", 2, 5])
@pytest.mark.parametrize("beta", [1.0, 0.5, 2.0])
@pytest.mark.parametrize("ignore", [False, True])
def test_multiclass_matches_sklearn_over_every_class(metric: str, average, beta: float, ignore: bool) -> None:
    y_pred, y_true = multiclass_data(seed=3, ignore=ignore)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # beta has no effect on precision and recall: FBeta says so
        fbeta = FBeta(metric=metric, average=average, beta=beta)
    update_all(fbeta, y_pred, y_true)
    keep = y_true != -100
    true, pred = y_true[keep].numpy(), y_pred[keep].argmax(1).numpy()
    labels = [average] if isinstance(average, int) else list(range(6))
    expected = sklearn_value(
        metric, true, pred, beta, labels=labels, average="micro" if average == "micro" else "macro"
    )
    value = fbeta.compute()
    assert isinstance(value, float)
    assert value == pytest.approx(expected, abs=1e-6)


def test_macro_counts_every_class_of_the_predictions() -> None:
    # 10 classes of scores, only classes 0-2 occur: the 7 others score 0 in the mean (Poutyne's rule)
    y_true = torch.tensor([0, 1, 2, 2, 1, 0, 1])
    y_pred = torch.full((7, 10), -5.0)
    y_pred[torch.arange(7), torch.tensor([0, 2, 2, 1, 1, 0, 0])] = 5.0
    metric = F1()
    metric.update(y_pred, y_true)
    seen = sklearn_value("fscore", y_true.numpy(), y_pred.argmax(1).numpy(), 1.0, average="macro")
    assert metric.compute() == pytest.approx(seen * 3 / 10, abs=1e-6)


@pytest.mark.parametrize("shape", ["logits", "column", "two_scores"])
@pytest.mark.parametrize("pos_label", [1, 0])
def test_binary_matches_sklearn(shape: str, pos_label: int) -> None:
    generator = torch.Generator().manual_seed(4)
    logits = torch.randn(N, generator=generator)
    y_true = torch.randint(0, 2, (N,), generator=generator)
    y_pred = {"logits": logits, "column": logits[:, None], "two_scores": torch.stack([-logits, logits], dim=1)}[shape]
    pred = (logits > 0).long().numpy()
    for metric_name in ("fscore", "precision", "recall"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            metric = FBeta(metric=metric_name, average="binary", pos_label=pos_label, beta=2.0)
        update_all(metric, y_pred, y_true.float())
        expected = sklearn_value(metric_name, y_true.numpy(), pred, 2.0, average="binary", pos_label=pos_label)
        assert metric.compute() == pytest.approx(expected, abs=1e-6)


def test_binary_threshold_and_one_score_per_target_in_macro() -> None:
    probabilities = torch.tensor([0.9, 0.4, 0.6, 0.2])
    metric = FBeta(metric="recall", average="binary", threshold=0.5)
    metric.update(probabilities, torch.tensor([1, 1, 1, 0]))
    assert metric.compute() == pytest.approx(2 / 3)
    macro = Recall(threshold=0.5)  # one score per target: two classes, whatever the average
    macro.update(probabilities, torch.tensor([1, 1, 1, 0]))
    assert macro.compute() == pytest.approx((1.0 + 2 / 3) / 2)


def test_segmentation_shapes_and_ignore_index() -> None:
    generator = torch.Generator().manual_seed(5)
    y_pred = torch.randn(N, 4, 6, 5, generator=generator)  # (N, C, H, W)
    y_true = torch.randint(0, 4, (N, 6, 5), generator=generator)
    y_true[:, 0] = 255
    metric = F1(ignore_index=255)
    update_all(metric, y_pred, y_true)
    keep = y_true != 255
    expected = sklearn_value("fscore", y_true[keep], y_pred.argmax(1)[keep], 1.0, average="macro")
    assert metric.compute() == pytest.approx(expected, abs=1e-6)


def test_a_mask_leaves_targets_out_like_ignore_index() -> None:
    y_pred, y_true = multiclass_data(seed=8)
    mask = torch.ones(N)
    mask[::3] = 0
    ignored = y_true.clone()
    ignored[::3] = -100
    masked, reference = FBeta(), FBeta()
    for pred, true, weight in batches(y_pred, y_true, mask):
        with SyncGuard():
            masked.update(pred, (true, weight))
    update_all(reference, y_pred, ignored)
    assert masked.compute() == reference.compute()


def test_all_three_values_names_and_poutyne_sums() -> None:
    y_pred, y_true = multiclass_data(seed=6)
    metric = FBeta()
    assert metric.names == ("fscore_macro", "precision_macro", "recall_macro")
    assert metric.__name__ == ["fscore_macro", "precision_macro", "recall_macro"]
    assert metric._true_positive_sum is None
    update_all(metric, y_pred, y_true)
    values = metric.compute()
    pred = y_pred.argmax(1)
    expected = [sklearn_value(name, y_true, pred, 1.0, average="macro", labels=list(range(6))) for name in SKLEARN]
    assert values == pytest.approx(expected, abs=1e-6)
    assert metric._pred_sum.tolist() == torch.bincount(pred, minlength=6).float().tolist()
    assert metric._true_sum.tolist() == torch.bincount(y_true, minlength=6).float().tolist()
    assert metric._true_positive_sum.tolist() == torch.bincount(y_true[pred == y_true], minlength=6).float().tolist()
    assert metric._total_sum.tolist() == [float(N)] * 6


def test_forward_gives_the_batch_scores_on_the_device_and_adds_the_batch() -> None:
    y_pred, y_true = multiclass_data(seed=9)
    metric, reference = FBeta(), FBeta()
    for pred, true in batches(y_pred, y_true):
        with SyncGuard():
            batch_values = metric(pred, true)
        alone = FBeta()
        alone.update(pred, true)
        assert all(isinstance(value, torch.Tensor) and value.shape == () for value in batch_values)
        assert [value.item() for value in batch_values] == alone.compute()
        reference.update(pred, true)
    assert metric.compute() == reference.compute()
    single = F1()
    value = single(y_pred, y_true)
    assert value.shape == () and value.item() == single.compute()


def test_state_dict_round_trip_mid_epoch_reset_and_merge() -> None:
    y_pred, y_true = multiclass_data(seed=7, ignore=True)
    reference = FBeta(average="macro")
    update_all(reference, y_pred, y_true)

    first = FBeta(average="macro")
    parts = list(batches(y_pred, y_true))
    for pred, true in parts[:2]:
        first.update(pred, true)
    resumed = FBeta(average="macro")  # a fresh object, as after a restart: its buffer is not created yet
    resumed.load_state_dict(first.state_dict())
    for pred, true in parts[2:]:
        resumed.update(pred, true)
    assert resumed.compute() == reference.compute()

    resumed.reset()
    for pred, true in parts:
        resumed.update(pred, true)
    assert resumed.compute() == reference.compute()

    second = FBeta(average="macro")  # two processes' shares, merged as the loop does under torchrun
    for pred, true in parts[2:]:
        second.update(pred, true)
    merged = FBeta(average="macro")
    merged.load_state_tensors(merged.merge_states([first.state_tensors(), second.state_tensors()]))
    assert merged.compute() == reference.compute()


def test_compute_before_any_batch() -> None:
    with pytest.raises(RuntimeError, match=r"FBeta.compute\(\) was called before any batch"):
        F1().compute()
    assert F1().compute_on_device().item() == 0.0
    assert FBeta().compute_on_device().tolist() == [0.0, 0.0, 0.0]


def test_make_deterministic_sets_the_debug_mode_during_updates() -> None:
    seen = []
    metric = FBeta(make_deterministic=True)
    original = metric._classes

    def spy(*args):
        seen.append(torch.get_deterministic_debug_mode())
        return original(*args)

    metric._classes = spy
    before = torch.get_deterministic_debug_mode()
    metric.update(torch.randn(4, 3), torch.tensor([0, 1, 2, 0]))
    assert seen == [2] and torch.get_deterministic_debug_mode() == before
    assert FBeta(make_deterministic=True).deterministic_debug_mode == "error"
    assert FBeta(make_deterministic=False).deterministic_debug_mode == "default"
    assert FBeta().deterministic_debug_mode is None


def test_default_names_follow_poutyne() -> None:
    assert F1().names == ("fscore_macro",) and F1().__name__ == "fscore_macro"
    assert F1("micro").names == ("fscore_micro",)
    assert Precision().names == ("precision_macro",)
    assert Recall(3).names == ("recall_3",)
    assert FBeta(metric="fscore", average="binary").names == ("fscore_binary_1",)
    assert FBeta(average="binary", pos_label=0).names[0] == "fscore_binary_0"
    assert F1(names="my_f1").names == ("my_f1",)
    assert (BinaryF1().names, BinaryPrecision().names, BinaryRecall().names) == (
        ("bin_fscore",),
        ("bin_precision",),
        ("bin_recall",),
    )
    assert BinaryF1(names="f").names == ("f",)
    assert F1().higher_is_better is True
    binary, label = FBeta(average="binary"), FBeta(metric="recall", average=2)
    assert (binary._metric, binary._average, binary._label) == (None, "binary", 1)
    assert (label._metric, label._average, label._label) == ("recall", None, 2)


def test_errors() -> None:
    with pytest.raises(ValueError, match=r"`metric` must be 'fscore', 'precision', 'recall' or None"):
        FBeta(metric="f1")
    with pytest.raises(ValueError, match=r"`average` must be 'macro', 'micro', 'binary' or an int label"):
        FBeta(average="weighted")
    with pytest.raises(ValueError, match=r"`beta` must be a positive number. Received: beta=0.0"):
        FBeta(beta=0.0)
    with pytest.raises(ValueError, match=r"`beta` cannot be given to F1"):
        F1(beta=2.0)
    with pytest.raises(ValueError, match=r"`beta` cannot be given to BinaryF1"):
        BinaryF1(beta=1.0)
    with pytest.warns(UserWarning, match=r"`beta` has no effect on precision"):
        FBeta(metric="precision", beta=2.0)
    with pytest.raises(ValueError, match=r"`pos_label` must be 0 or 1 with average='binary'"):
        FBeta(average="binary", pos_label=2)
    with pytest.raises(ValueError, match=r"`names` must give one name per reported value \(3"):
        FBeta(names="f")
    metric = F1()
    metric.update(torch.randn(4, 3), torch.tensor([0, 1, 2, 0]))
    with pytest.raises(ValueError, match=r"updated with 3 classes and now receives 5"):
        metric.update(torch.randn(4, 5), torch.tensor([0, 1, 2, 0]))
    with pytest.raises(ValueError, match=r"expects scores of shape \(N, C, \.\.\.\)"):
        metric.update(torch.randn(5), torch.tensor([0, 1, 2, 0]))
    with pytest.raises(ValueError, match=r"average='binary'\) expects logits of shape"):
        FBeta(average="binary").update(torch.randn(4, 3), torch.tensor([0, 1, 1, 0]))
    out_of_range = F1(average=7)
    out_of_range.update(torch.randn(4, 3), torch.tensor([0, 1, 2, 0]))
    with pytest.raises(ValueError, match=r"`average` selects label 7, but the predictions have 3 classes"):
        out_of_range.compute()
