"""Bad input fails before the first trial, naming the argument; space entries are asked of Optuna as declared."""

from __future__ import annotations

import random

import optuna
import pytest
import torch
from torch import nn

from trainwell import Hyperparameter, LogRange, Model, Range, Search
from trainwell.search.config import search_from_config
from trainwell.search.space import Space


def build(params):
    return Model(nn.Linear(3, 2), {"optim": "sgd", "lr": params["lr"]}, "cross_entropy", batch_metrics=["accuracy"])


@pytest.mark.parametrize(
    ("space", "error", "match"),
    [
        ({"lr": "0.1"}, TypeError, r"`space\['lr'\]` must be a list of choices.*Received: space\['lr'\]='0.1'"),
        ({"lr": []}, ValueError, r"`space\['lr'\]` is an empty list"),
        ({"lr": 0.1}, TypeError, r"`space\['lr'\]` must be a list.*\[0.1\]"),
        ({"act": [nn.ReLU]}, TypeError, r"`space\['act'\]` holds .*ReLU.*must be None, bool, int, float or str"),
        ({"lr": Range(1.0, 0.1)}, ValueError, r"`space\['lr'\]`: `low` must be <= `high`. Received: low=1.0, high=0.1"),
        ({"lr": LogRange(0.0, 0.1)}, ValueError, r"`space\['lr'\]`: a log range needs `low` > 0"),
        ({"depth": range(3, 1)}, ValueError, r"`space\['depth'\]` is range\(3, 1\), which holds no value"),
        ({}, ValueError, r"`space` is empty"),
        ([0.1, 0.01], TypeError, r"`space` must be a dict"),
        ({1: [0.1]}, TypeError, r"names in `space` must be strings. Received the key 1"),
    ],
)
def test_a_malformed_space_fails_naming_the_entry(tmp_path, space, error, match):
    with pytest.raises(error, match=match):
        Search(tmp_path, build, space, objective="val_acc", n_trials=2)
    assert not (tmp_path / "study.db").exists()  # nothing was created


def test_other_bad_arguments_fail_before_the_first_trial(tmp_path):
    space = {"lr": [0.1, 0.01]}
    with pytest.raises(ValueError, match=r"`sampler` must be one of \['grid', 'random', 'tpe'\].*sampler='bayes'"):
        Search(tmp_path, build, space, objective="val_acc", sampler="bayes", n_trials=2)
    with pytest.raises(ValueError, match=r"sampler='grid' needs finitely many values, but `space\['lr'\]`"):
        Search(tmp_path, build, {"lr": LogRange(1e-3, 1e-1)}, objective="val_acc", sampler="grid")
    with pytest.raises(ValueError, match=r"Hyperparameter names|empty"):
        Search(tmp_path, build, Hyperparameter({}), objective="val_acc", sampler="grid")
    with pytest.raises(ValueError, match=r"`n_trials` is needed with sampler='tpe'"):
        Search(tmp_path, build, space, objective="val_acc")
    with pytest.raises(ValueError, match=r"`n_trials` must be a positive int or None. Received: n_trials=0"):
        Search(tmp_path, build, space, objective="val_acc", n_trials=0)
    with pytest.raises(ValueError, match=r"`pruner` must be 'median', 'hyperband'.*pruner='early'"):
        Search(tmp_path, build, space, objective="val_acc", n_trials=2, pruner="early")
    with pytest.raises(ValueError, match=r"`direction` must be 'max', 'min'.*direction='up'"):
        Search(tmp_path, build, space, objective="val_acc", n_trials=2, direction="up")
    with pytest.raises(TypeError, match=r"`build` must be a function"):
        Search(tmp_path, "build", space, objective="val_acc", n_trials=2)
    with pytest.raises(TypeError, match=r"`storage` must be None.*Received: storage of type int"):
        Search(tmp_path, build, space, objective="val_acc", n_trials=2, storage=3)
    # The direction: from the metric's name, else from the model's metrics (a probe model), else an error.
    with pytest.raises(ValueError, match=r"Cannot tell whether a larger or a smaller 'val_thing'.*direction='max'"):
        Search(tmp_path, build, space, objective="val_thing", n_trials=2)
    assert Search(tmp_path, build, space, objective="val_acc", n_trials=2).direction == "maximize"
    assert Search(tmp_path, build, space, objective="val_loss", n_trials=2).direction == "minimize"
    assert not (tmp_path / "study.db").exists()


def test_an_objective_the_first_epoch_does_not_log_fails_listing_the_logged_keys(tmp_path):
    x, y = torch.randn(16, 3), torch.randint(2, (16,))
    search = Search(tmp_path, build, {"lr": [0.1]}, objective="val_accuracy", sampler="grid", direction="max")
    with pytest.raises(ValueError, match=r"`objective`='val_accuracy' is not logged: the epoch logged \['acc', 'loss', "
                       r"'val_acc', 'val_loss'\]"):  # fmt: skip
        search.train_data(x, y, validation_data=(x, y), epochs=1, batch_size=8)
    assert search.study.trials[0].state == optuna.trial.TrialState.FAIL


def test_build_must_return_a_model(tmp_path):
    search = Search(tmp_path, lambda params: nn.Linear(3, 2), {"lr": [0.1]}, objective="val_acc", sampler="grid")
    with pytest.raises(TypeError, match=r"`build` must return a trainwell Model or Experiment. It returned Linear"):
        search.train_data(torch.randn(8, 3), torch.randint(2, (8,)), epochs=1)


def test_entries_are_asked_of_optuna_as_declared_and_drawn_within_bounds():
    space = Space({"lr": LogRange(1e-4, 1e-1), "dropout": Range(0.0, 0.5, step=0.1), "width": range(8, 33, 8),
                   "act": ["relu", "tanh"], "depth": Range(1, 3)})  # fmt: skip
    study = optuna.create_study()
    params = space.suggest(study.ask())
    distributions = study.trials[0].distributions
    assert distributions["lr"] == optuna.distributions.FloatDistribution(1e-4, 1e-1, log=True)
    assert distributions["dropout"] == optuna.distributions.FloatDistribution(0.0, 0.5, step=0.1)
    assert distributions["width"] == optuna.distributions.IntDistribution(8, 32, step=8)
    assert distributions["act"] == optuna.distributions.CategoricalDistribution(["relu", "tanh"])
    assert distributions["depth"] == optuna.distributions.IntDistribution(1, 3)
    assert set(params) == {"lr", "dropout", "width", "act", "depth"}
    draws = [space.draw(random.Random(seed)) for seed in range(200)]
    assert all(1e-4 <= d["lr"] <= 1e-1 and d["width"] in (8, 16, 24, 32) and d["depth"] in (1, 2, 3) for d in draws)
    assert min(d["lr"] for d in draws) < 1e-3  # drawn on a log scale: a tenth of the draws below 1e-3
    assert draws == [space.draw(random.Random(seed)) for seed in range(200)]
    grid = Space({"width": range(8, 33, 8), "act": ["relu", "tanh"], "dropout": Range(0.0, 0.5, step=0.25)}).grid()
    assert len(grid) == 4 * 2 * 3 and grid.get_experiments()[1] == {"width": 8, "act": "relu", "dropout": 0.25}


def test_a_search_from_a_config_dict(tmp_path):
    search = search_from_config(
        {"directory": str(tmp_path), "build": "tests.search.test_search_input:build", "objective": "val_acc",
         "space": {"lr": {"low": 1e-3, "high": 1e-1, "log": True}, "width": [4, 8]}, "sampler": "random",
         "n_trials": 2})  # fmt: skip
    assert search.build is build and search.n_trials == 2 and search.space.entries["lr"] == LogRange(1e-3, 1e-1)
    with pytest.raises(ValueError, match=r"`space\['lr'\]` as a mapping describes a range"):
        search_from_config({"directory": str(tmp_path), "build": build, "space": {"lr": {"min": 1}}})
    with pytest.raises(ValueError, match=r"`config` lacks \['space'\]"):
        search_from_config({"directory": str(tmp_path), "build": build})
