import pytest
import torch
from torch import nn

from trainwell import Model
from trainwell.search.grid import Hyperparameter


def test_the_tinydl_readme_order():
    space = Hyperparameter({"batchsize": [128, 256], "lr": [2e-3, 2e-4]})
    assert list(space.get_experiments()) == [
        {"batchsize": 128, "lr": 0.002},
        {"batchsize": 128, "lr": 0.0002},
        {"batchsize": 256, "lr": 0.002},
        {"batchsize": 256, "lr": 0.0002},
    ]


def test_re_iterable_sized_and_indexable():
    space = Hyperparameter({"a": [1, 2, 3], "b": ["x", "y"], "c": (True, False)})
    experiments = space.get_experiments()
    first, second = list(experiments), list(experiments)
    assert first == second == list(space.get_experiments()) == list(space)
    assert len(first) == len(experiments) == len(space) == 12
    assert len({tuple(e.values()) for e in first}) == 12  # all distinct
    assert [experiments[i] for i in range(12)] == first
    assert experiments[-1] == {"a": 3, "b": "y", "c": False}
    with pytest.raises(IndexError, match=r"index=12 for 12 experiment"):
        experiments[12]


def test_experiments_are_fresh_dicts_and_the_input_is_copied():
    values = [1, 2]
    space = Hyperparameter({"a": values})
    values.append(3)
    for experiment in space.get_experiments():
        experiment["a"] = "changed"
    assert list(space) == [{"a": 1}, {"a": 2}]


def test_errors_name_the_key_and_the_fix():
    with pytest.raises(ValueError, match=r"`grid\['lr'\]` is an empty list.*Give at least one value"):
        Hyperparameter({"batchsize": [32], "lr": []})
    with pytest.raises(TypeError, match=r"`grid\['lr'\]` must be a list.*Received: grid\['lr'\]=0.1 \(type float\)"):
        Hyperparameter({"lr": 0.1})
    with pytest.raises(TypeError, match=r"`grid\['optim'\]` must be a list.*\{'optim': \['adam'\]\}"):
        Hyperparameter({"optim": "adam"})
    with pytest.raises(TypeError, match=r"`grid` must be a dict.*type list"):
        Hyperparameter([("lr", [0.1])])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"names in `grid` must be strings.*key 3"):
        Hyperparameter({3: [1]})  # type: ignore[dict-item]


def test_sample_draws_distinct_reproducible_experiments():
    space = Hyperparameter({"a": list(range(10)), "b": list(range(10)), "c": list(range(10))})
    draws = space.sample(50, seed=3)
    assert draws == space.sample(50, seed=3)
    assert draws != space.sample(50, seed=4)
    assert len({tuple(d.values()) for d in draws}) == 50
    assert all(draw in list(space) for draw in draws[:5])
    assert sorted(map(str, space.sample(1000, seed=0))) == sorted(map(str, space))  # the whole grid
    with pytest.raises(ValueError, match=r"`n` is larger than the grid: it holds 1000.*n=1001"):
        space.sample(1001)
    with pytest.raises(ValueError, match=r"`n` must be a positive int. Received: n=0"):
        space.sample(0)


def test_choices_for_optuna_style_runners():
    space = Hyperparameter({"lr": [0.1, 0.01], "hidden": range(2, 5)})
    assert space.names == ["lr", "hidden"]
    assert space.choices == {"lr": (0.1, 0.01), "hidden": (2, 3, 4)}


def test_a_grid_drives_real_training_runs():
    space = Hyperparameter({"hidden": [2, 8], "lr": [0.5, 0.0]})
    x = torch.randn(64, 3)
    y = (x[:, 0] > 0).long()
    results = {}
    for experiment in space.get_experiments():
        torch.manual_seed(0)
        network = nn.Sequential(nn.Linear(3, experiment["hidden"]), nn.Tanh(), nn.Linear(experiment["hidden"], 2))
        model = Model(network, {"optim": "sgd", "lr": experiment["lr"]}, "cross_entropy")
        history = model.fit(x, y, epochs=5, batch_size=16, verbose=False)
        results[(experiment["hidden"], experiment["lr"])] = history[-1]["loss"] - history[0]["loss"]
    assert list(results) == [(2, 0.5), (2, 0.0), (8, 0.5), (8, 0.0)]
    assert results[(8, 0.5)] < 0 and results[(2, 0.5)] < 0  # a learning rate trains
    assert abs(results[(8, 0.0)]) < 1e-6  # lr=0 leaves the loss where it was
