"""Any logged value drives checkpoints and the end-of-training restore, in the direction its metric declares."""

import warnings

import pytest
import torch
import torchmetrics
from safetensors.torch import load_file
from sklearn.metrics import mean_absolute_error, r2_score
from torch import nn

from trainwell import Experiment, Model
from trainwell.callbacks.best_model_restore import BestModelRestore
from trainwell.callbacks.checkpoint import ModelCheckpoint
from trainwell.callbacks.control import EarlyStopping
from trainwell.callbacks.monitor import Monitor, metric_direction
from trainwell.metrics import SKLearnMetrics, TorchMetricsEpochMetric
from trainwell.metrics.base import direction_of


def _data(seed=0):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(96, 6, generator=generator)
    y = (x[:, 0] + 0.8 * torch.randn(96, generator=generator) > 0).long()  # noisy: the metrics wander
    return x, y


def _classifier(**metrics):
    torch.manual_seed(0)
    return Model(nn.Linear(6, 2), {"optim": "sgd", "lr": 0.5}, "cross_entropy", **metrics)


def _equal(weights, other):
    return sorted(weights) == sorted(other) and all(torch.equal(weights[name], other[name]) for name in weights)


def _fit(model, callbacks, epochs=6):
    x, y = _data()
    val_x, val_y = _data(1)
    return model.fit(
        x, y, validation_data=(val_x, val_y), batch_size=16, epochs=epochs, verbose=False, callbacks=callbacks
    )


def _first_best(history, key, mode):
    values = [epoch[key] for epoch in history]
    assert len(set(values)) > 1, "the test needs a value that changes across epochs"
    best = max(values) if mode == "max" else min(values)
    return values.index(best) + 1


def test_a_renamed_torchmetrics_score_is_maximized_by_checkpoint_and_restore(tmp_path):
    # 'quality' says nothing about its direction: the torchmetrics object's higher_is_better does.
    model = _classifier(epoch_metrics=[("quality", torchmetrics.classification.MulticlassAccuracy(num_classes=2))])
    every = ModelCheckpoint(tmp_path / "w_{epoch}.safetensors")
    best = ModelCheckpoint(tmp_path / "best.safetensors", monitor="val_quality", save_best_only=True)
    restore = BestModelRestore(monitor="val_quality")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the direction is known: nothing to warn about
        history = _fit(model, [every, best, restore])
    assert best.monitor.mode == restore.monitor.mode == "max"
    best_epoch = _first_best(history, "val_quality", "max")
    assert restore.monitor.best_epoch == best.monitor.best_epoch == best_epoch
    kept = load_file(str(tmp_path / f"w_{best_epoch}.safetensors"))
    assert _equal(load_file(str(tmp_path / "best.safetensors")), kept)
    assert _equal(model.get_weight_copies(), kept)  # the end-of-training restore loaded the best epoch


def test_an_error_metric_under_any_name_is_minimized():
    # A renamed mean absolute error (a batch metric) drives early stopping's restore the other way.
    torch.manual_seed(0)
    model = Model(
        nn.Linear(6, 1),
        {"optim": "sgd", "lr": 0.3},
        "mse",
        batch_metrics=[("spread", torchmetrics.MeanAbsoluteError())],
    )
    x, labels = _data()
    y = labels.float().unsqueeze(1) + 0.1 * x[:, :1]
    stopper = EarlyStopping(monitor="val_spread", patience=100, restore_best_weights=True)
    history = model.fit(
        x, y, validation_data=(x[:48], y[:48]), batch_size=16, epochs=6, verbose=False, callbacks=[stopper]
    )
    assert stopper.monitor.mode == "min"
    assert stopper.monitor.best_epoch == _first_best(history, "val_spread", "min")


def test_our_own_metrics_keep_their_direction_when_renamed():
    model = _classifier(batch_metrics=[("hits", "acc"), ("miss", "l1")], epoch_metrics=[("agreement", "f1")])
    for key, mode in [("val_hits", "max"), ("miss", "min"), ("val_agreement", "max"), ("loss", "min")]:
        monitor = Monitor(key, "auto")
        monitor.set_model(model)
        assert monitor.mode == mode, key


def test_a_function_can_declare_its_direction():
    def closeness(y_pred, y_true):
        return -(y_pred.argmax(1) - y_true).abs().float().mean()

    closeness.higher_is_better = True
    model = _classifier(batch_metrics=[closeness])
    restore = BestModelRestore(monitor="val_closeness")
    history = _fit(model, [restore])
    assert restore.monitor.best_epoch == _first_best(history, "val_closeness", "max")


def test_an_unknown_direction_warns_before_training_and_says_how_to_choose(tmp_path):
    def wiggle(y_pred, y_true):
        return y_pred.mean()

    model = _classifier(batch_metrics=[wiggle])
    started = []

    class Marker(ModelCheckpoint):
        def on_train_begin(self, logs):
            started.append(True)

    restore = BestModelRestore(monitor="val_wiggle")
    with pytest.warns(
        UserWarning, match=r"BestModelRestore cannot tell.*'val_wiggle'.*mode='max' or mode='min'"
    ) as seen:
        model.fit(
            *_data(), validation_data=_data(1), epochs=1, verbose=False, callbacks=[restore, Marker(tmp_path / "x")]
        )
    assert len(seen) == 1 and restore.monitor.mode == "min"  # Poutyne's default, warned once
    # An explicit mode is always obeyed, silently.
    explicit = BestModelRestore(monitor="val_wiggle", mode="max")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _fit(model, [explicit], epochs=2)
    assert explicit.monitor.mode == "max"


def test_explicit_mode_wins_over_the_metric():
    model = _classifier(batch_metrics=["acc"])
    monitor = Monitor("val_acc", "min")
    monitor.set_model(model)
    assert monitor.mode == "min"


def test_directions_from_names_and_sklearn_conventions():
    assert [metric_direction(name) for name in ("val_loss", "loss_g", "val_mape", "val_mean_squared_error")] == [
        "min"
    ] * 4
    assert [metric_direction(name) for name in ("val_acc", "test_top5", "roc_auc", "val_r2_score")] == ["max"] * 4
    assert metric_direction("val_cross_entropy") == "min"  # a loss used as a metric
    assert metric_direction("lr") is None
    metric = SKLearnMetrics([r2_score, mean_absolute_error, len])
    assert [direction_of(metric, name) for name in metric.names] == [True, False, None]
    assert SKLearnMetrics(len, higher_is_better=True).higher_is_better == (True,)
    with pytest.raises(TypeError, match=r"`higher_is_better` must be a bool, None, or a list of 2"):
        SKLearnMetrics([len, len], higher_is_better=[True])


def test_a_metric_collection_gives_each_member_its_direction():
    collection = torchmetrics.MetricCollection(
        {"acc": torchmetrics.classification.MulticlassAccuracy(num_classes=3), "mse": torchmetrics.MeanSquaredError()}
    )
    metric = TorchMetricsEpochMetric(collection)
    assert [direction_of(metric, name) for name in metric.names] == [True, False]


def test_experiment_best_epoch_follows_the_metric(tmp_path):
    network = nn.Linear(6, 2)
    torch.manual_seed(0)
    experiment = Experiment(
        tmp_path / "run",
        network,
        optimizer={"optim": "sgd", "lr": 0.5},
        loss_function="cross_entropy",
        epoch_metrics=[("quality", torchmetrics.classification.MulticlassAccuracy(num_classes=2))],
        monitor_metric="val_quality",
    )
    x, y = _data()
    history = experiment.train_data(x, y, validation_data=_data(1), epochs=5, batch_size=16, verbose=False)
    best = _first_best(history, "val_quality", "max")
    assert int(experiment.get_best_epoch_stats()["epoch"].iloc[0]) == best
    # As in Poutyne, loading a checkpoint returns its epoch's log.tsv row.
    assert int(experiment.load_checkpoint("best", verbose=False)["epoch"].iloc[0]) == best
