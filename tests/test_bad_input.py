"""Bad input at the public boundary gets a clear error, every time: a TypeError or ValueError naming the argument.

Hypothesis generates mistakes across Model, fit*, evaluate*, predict*, Experiment and callback constructors
(wrong types, values, shapes, lengths, dtypes, names, devices, directories); each must raise TypeError or
ValueError (or a subclass) whose message names the argument the user got wrong. A few of them, seen in
the wild, are pinned with their messages at the end.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import trainwell
from trainwell import Model

Case = tuple[Callable[[], Any], str]  # the call that must fail, and the argument its message must name
FEATURES, CLASSES = 4, 3
VALID_OPTIMIZERS = {"adadelta", "adagrad", "adam", "adamw", "sparseadam", "adamax", "asgd", "lbfgs", "nadam",
                    "radam", "rmsprop", "rprop", "sgd"}  # fmt: skip


def _network() -> nn.Module:
    return nn.Linear(FEATURES, CLASSES)


def _model(**kwargs: Any) -> Model:
    return Model(_network(), "sgd", "cross_entropy", **kwargs)


def _x(n: int = 8, features: int = FEATURES) -> torch.Tensor:
    return torch.randn(n, features)


def _y(n: int = 8) -> torch.Tensor:
    return torch.randint(0, CLASSES, (n,))


# -- values that are wrong almost anywhere --------------------------------------------------------------------
junk = st.one_of(
    st.integers(-5, 5), st.floats(-3, 3, allow_nan=False), st.text(max_size=6), st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2), st.just(object()),
)  # fmt: skip
not_positive_int = st.one_of(st.integers(-10, 0), st.floats(0.1, 5.5).filter(lambda v: v != int(v)),
                             st.text(max_size=3), st.just(None), st.just(True))  # fmt: skip
unknown_name = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=10).map(lambda s: s + "zq")


def _model_cases() -> st.SearchStrategy[Case]:
    network = junk.map(lambda bad: (lambda: Model(bad, "sgd", "cross_entropy"), "network"))
    optimizer = st.one_of(
        unknown_name.filter(lambda s: s.lower() not in VALID_OPTIMIZERS),
        st.integers(),
        st.lists(st.integers(), min_size=1, max_size=2),
        st.just(object()),
        st.dictionaries(st.sampled_from(["lr", "momentum"]), st.floats(0, 1), min_size=1),  # no 'optim'
        st.builds(lambda key: {"optim": "sgd", "lr": 0.1, key + "zq": 1}, st.text("abc", max_size=3)),
        st.floats(-5, -0.01).map(lambda lr: {"optim": "sgd", "lr": lr}),
    ).map(lambda bad: (lambda: Model(_network(), bad, "cross_entropy"), "optimizer"))
    loss = st.one_of(unknown_name, st.integers(), st.lists(st.integers(), max_size=2), st.just(object())).map(
        lambda bad: (lambda: Model(_network(), "sgd", bad), "loss_function")
    )
    metric_items = st.one_of(unknown_name, st.integers(), st.just(object()), st.floats(allow_nan=False))
    batch_metrics = st.one_of(st.integers(), st.lists(metric_items, min_size=1, max_size=3)).map(
        lambda bad: (lambda: _model(batch_metrics=bad), "batch_metrics")
    )
    epoch_metrics = st.one_of(st.integers(), st.lists(metric_items, min_size=1, max_size=3)).map(
        lambda bad: (lambda: _model(epoch_metrics=bad), "epoch_metrics")
    )
    bad_devices = st.one_of(
        st.sampled_from(["gpu", "tpu", "cuda:x", "cpu:zz", "", "cuda", "cuda:0", "cuda:3"]),
        unknown_name, st.integers(-3, 8), st.just(object()),
    )  # fmt: skip
    devices = bad_devices.filter(lambda d: not (torch.cuda.is_available() and str(d).startswith("cuda"))).map(
        lambda bad: (lambda: _model(device=bad), "device")
    )
    return st.one_of(network, optimizer, loss, batch_metrics, epoch_metrics, devices)


def _fit_cases() -> st.SearchStrategy[Case]:
    def fit(**overrides: Any) -> Callable[[], Any]:
        def call() -> Any:
            arguments = {"x": _x(), "y": _y(), "epochs": 1, "verbose": False, **overrides}
            return _model().fit(**arguments)

        return call

    numeric = [
        not_positive_int.map(lambda bad, name=name: (fit(**{name: bad}), name))
        for name in ("batch_size", "epochs", "initial_epoch", "batches_per_step")
    ]
    steps = st.one_of(st.integers(-5, 0), st.text(max_size=2)).map(
        lambda bad: (fit(steps_per_epoch=bad), "steps_per_epoch")
    )
    features = st.integers(1, 9).filter(lambda f: f != FEATURES).map(lambda f: (fit(x=_x(8, f)), "x"))
    lengths = st.integers(1, 12).filter(lambda n: n != 8).map(lambda n: (fit(y=_y(n)), "y"))
    labels = st.sampled_from([-1, CLASSES, CLASSES + 5, 100]).map(lambda label: (fit(y=torch.full((8,), label)), "y"))
    dtypes = st.sampled_from([torch.int64, torch.int32, torch.bool, torch.uint8]).map(
        lambda dtype: (fit(x=torch.ones(8, FEATURES, dtype=dtype)), "x")
    )
    strings = st.just((fit(x=np.array([["a"] * FEATURES] * 8)), "x"))
    objects = junk.map(lambda bad: (fit(x=bad), "x"))
    validation = st.one_of(junk, st.lists(st.just(_x()), min_size=3, max_size=3)).map(
        lambda bad: (fit(validation_data=bad), "validation_data")
    )
    callbacks = st.one_of(st.integers(), st.lists(junk, min_size=1, max_size=2)).map(
        lambda bad: (fit(callbacks=bad), "callbacks")
    )
    return st.one_of(*numeric, steps, features, lengths, labels, dtypes, strings, objects, validation, callbacks)


def _other_entry_cases() -> st.SearchStrategy[Case]:
    evaluate_x = (
        st.integers(1, 9)
        .filter(lambda f: f != FEATURES)
        .map(lambda f: (lambda: _model().evaluate(_x(8, f), _y(), verbose=False), "x"))
    )
    evaluate_batch = not_positive_int.map(
        lambda bad: (lambda: _model().evaluate(_x(), _y(), batch_size=bad, verbose=False), "batch_size")
    )
    predict_x = st.one_of(junk, st.integers(1, 9).filter(lambda f: f != FEATURES).map(lambda f: _x(8, f))).map(
        lambda bad: (lambda: _model().predict(bad, verbose=False), "x")
    )
    generator = junk.filter(lambda bad: not isinstance(bad, (str, list, dict))).map(
        lambda bad: (lambda: _model().fit_generator(bad, epochs=1, verbose=False), "train_generator")
    )
    batches = st.lists(st.one_of(junk, st.just(_x())), min_size=1, max_size=3).map(
        lambda bad: (lambda: _model().fit_generator(bad, epochs=1, verbose=False), "train_generator")
    )
    dataset = junk.filter(lambda bad: not isinstance(bad, (list, dict, str))).map(
        lambda bad: (lambda: _model().fit_dataset(bad, epochs=1, verbose=False), "train_dataset")
    )
    loader_features = (
        st.integers(1, 9)
        .filter(lambda f: f != FEATURES)
        .map(
            lambda f: (
                lambda: _model().fit_generator(
                    DataLoader(TensorDataset(_x(8, f), _y()), batch_size=4), epochs=1, verbose=False
                ),
                "train_generator",
            )
        )
    )
    return st.one_of(evaluate_x, evaluate_batch, predict_x, generator, batches, dataset, loader_features)


def _experiment_cases(root: Path) -> st.SearchStrategy[Case]:
    from trainwell import Experiment

    def in_a_file(_: Any) -> Case:
        path = Path(tempfile.mkstemp(dir=root)[1])
        path.write_text("precious")
        return (lambda: Experiment(path, _network(), task="classif"), "directory")

    files = st.just(None).map(in_a_file)
    directories = st.one_of(st.integers(), st.just(object()), st.lists(st.integers(), max_size=2)).map(
        lambda bad: (lambda: Experiment(bad, _network(), task="classif"), "directory")
    )
    tasks = unknown_name.map(lambda bad: (lambda: Experiment(root / "run", _network(), task=bad), "task"))
    modes = unknown_name.map(
        lambda bad: (lambda: Experiment(root / "run", _network(), task="classif", monitor_mode=bad), "monitor_mode")
    )
    return st.one_of(files, directories, tasks, modes)


def _callback_cases() -> st.SearchStrategy[Case]:
    def case(name: str, argument: str, bad: st.SearchStrategy[Any], **fixed: Any) -> st.SearchStrategy[Case]:
        return bad.map(lambda value: (lambda: getattr(trainwell, name)(**{**fixed, argument: value}), argument))

    negative = st.one_of(st.integers(-9, -1), st.text(min_size=1, max_size=3), st.just(object()))
    return st.one_of(
        case("EarlyStopping", "patience", negative),
        case("EarlyStopping", "mode", unknown_name),
        case("ModelCheckpoint", "filename", st.one_of(st.integers(), st.just(object()))),
        case("ModelCheckpoint", "mode", unknown_name, filename="w.safetensors"),
        case("ModelCheckpoint", "period", st.integers(-5, 0), filename="w.safetensors"),
        case("CSVLogger", "filename", st.one_of(st.integers(), st.just(object()))),
        case("ReduceLROnPlateau", "factor", st.floats(1.0, 10.0)),
        case("ReduceLROnPlateau", "patience", negative),
        case("StepLR", "step_size", st.one_of(st.integers(-5, 0), st.text(max_size=2))),
        case("TerminateOnNaN", "check_every_n_steps", st.integers(-5, 0)),
    )


ROOT = Path(tempfile.mkdtemp(prefix="trainwell-bad-input-"))
ALL_CASES = st.one_of(_model_cases(), _fit_cases(), _other_entry_cases(), _experiment_cases(ROOT), _callback_cases())


@settings(max_examples=1000, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=ALL_CASES)
def test_every_bad_input_gets_a_type_or_value_error_naming_the_argument(case: Case) -> None:
    call, argument = case
    with pytest.raises((TypeError, ValueError)) as raised:
        call()
    message = str(raised.value)
    assert argument in message, f"{type(raised.value).__name__} does not name `{argument}`: {message}"


# -- pinned: the mistakes seen in the wild ------------------------------------------------------------------------
def test_a_network_that_cannot_take_the_input_names_the_data_and_its_shape():
    with pytest.raises(ValueError, match=r"`x`.*\(8, 9\)") as raised:
        _model().fit(_x(8, 9), _y(), epochs=1, verbose=False)
    assert "mat1 and mat2" in str(raised.value.__cause__)  # torch's own message is kept as the cause


def test_integer_features_are_refused_with_the_fix():
    with pytest.raises(TypeError, match=r"`x`.*int64.*float"):
        _model().fit(torch.ones(8, FEATURES, dtype=torch.int64), _y(), epochs=1, verbose=False)


@pytest.mark.skipif(torch.cuda.is_available(), reason="the machine has CUDA")
def test_cuda_on_a_machine_without_it():
    with pytest.raises(ValueError, match=r"`device`.*'cuda'.*no CUDA"):
        _model(device="cuda")


def test_an_experiment_directory_that_is_a_file_is_refused_and_left_alone(tmp_path):
    from trainwell import Experiment

    path = tmp_path / "run"
    path.write_text("precious")
    with pytest.raises(ValueError, match=r"`directory`.*is a file"):
        Experiment(path, _network(), task="classif")
    assert path.read_text() == "precious"


def test_the_layer_that_failed_is_named():
    network = nn.Sequential(nn.Linear(FEATURES, 8), nn.ReLU(), nn.Linear(16, CLASSES))  # 8 out, 16 in: broken
    model = Model(network, "sgd", "cross_entropy")
    with pytest.raises(
        ValueError, match=r"`x`, a tensor of shape \(8, 4\).*failed in layer '2': Linear\(in_features=16"
    ):
        model.fit(_x(), _y(), epochs=1, verbose=False)


def test_a_later_batch_error_is_the_networks_own():
    # Only the first batch of a phase is translated: later, the data's form is known to fit.
    class FailsLater(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear, self.calls = nn.Linear(FEATURES, CLASSES), 0

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.calls += 1
            if self.calls == 2:
                raise RuntimeError("the network's own failure")
            return self.linear(x)

    model = Model(FailsLater(), "sgd", "cross_entropy", sanity_check=False)
    with pytest.raises(RuntimeError, match="the network's own failure"):
        model.fit(_x(), _y(), batch_size=4, epochs=1, verbose=False)
