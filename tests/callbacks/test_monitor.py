import math

import pytest

from trainwell.callbacks.monitor import Monitor, infer_mode


def test_min_mode_tracks_the_smallest_value_and_its_epoch():
    monitor = Monitor("val_loss", "min")
    assert [monitor.update({"epoch": e, "val_loss": v}) for e, v in [(1, 1.0), (2, 0.5), (3, 0.7)]] == [
        True,
        True,
        False,
    ]
    assert (monitor.best, monitor.best_epoch) == (0.5, 2)


def test_min_delta_requires_a_clear_improvement():
    monitor = Monitor("val_acc", "max", min_delta=1.0)
    monitor.update({"epoch": 1, "val_acc": 90.0})
    assert not monitor.update({"epoch": 2, "val_acc": 90.5})
    assert monitor.update({"epoch": 3, "val_acc": 91.5})


def test_nan_is_never_an_improvement():
    monitor = Monitor("loss")
    assert not monitor.update({"loss": math.nan})
    assert monitor.best == math.inf


def test_auto_mode_follows_the_metric_name():
    assert Monitor("val_acc", "auto").mode == "max"
    assert Monitor("val_loss", "auto").mode == "min"
    assert infer_mode("test_fscore_macro") == "max"
    assert infer_mode("val_rmse") == "min"


def test_state_round_trips_through_json_friendly_values():
    monitor = Monitor("val_loss")
    assert monitor.state_dict() == {"best": "inf", "best_epoch": None}
    monitor.update({"epoch": 4, "val_loss": 0.25})
    restored = Monitor("val_loss")
    restored.load_state_dict(monitor.state_dict())
    assert (restored.best, restored.best_epoch) == (0.25, 4)


def test_a_missing_key_lists_what_is_available():
    monitor = Monitor("val_acc", owner="EarlyStopping")
    with pytest.raises(ValueError, match=r"EarlyStopping monitors 'val_acc'.*\['acc', 'loss'\].*validation data"):
        monitor.update({"epoch": 1, "loss": 1.0, "acc": 50.0})


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match=r"`mode` must be 'min', 'max' or 'auto'. Received: mode='maximum'"):
        Monitor("val_acc", "maximum")
    with pytest.raises(ValueError, match="`min_delta` must be a number >= 0"):
        Monitor("val_acc", min_delta=-1)


def test_the_validation_hint_only_appears_without_validation_values():
    monitor = Monitor("val_f1")
    with pytest.raises(ValueError, match=r"Available keys: \['loss', 'val_loss'\]\.$"):
        monitor.update({"epoch": 1, "loss": 1.0, "val_loss": 1.0})
