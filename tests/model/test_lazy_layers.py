"""Lazy layers in a Model: no dimension computed by hand, the named optimizer built after the first batch."""

import io

import pytest
import torch
from sklearn.datasets import load_digits
from torch import nn

from trainwell import Experiment, Model, summary


def _digits():
    digits = load_digits()
    x = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16  # (1797, 1, 8, 8)
    y = torch.tensor(digits.target)
    return x[:1400], y[:1400], x[1400:], y[1400:]


def _lazy_cnn():
    return nn.Sequential(
        nn.LazyConv2d(8, 3),
        nn.ReLU(),
        nn.LazyConv2d(16, 3),
        nn.ReLU(),
        nn.Flatten(),
        nn.LazyLinear(32),
        nn.ReLU(),
        nn.LazyLinear(10),
    )


def test_a_lazy_cnn_learns_the_digits_without_any_dimension():
    x, y, x_val, y_val = _digits()
    torch.manual_seed(0)
    model = Model(_lazy_cnn(), {"optim": "adam", "lr": 3e-3}, "cross_entropy", batch_metrics=["accuracy"])
    assert model.optimizer is None  # waiting for shapes
    history = model.fit(x, y, validation_data=(x_val, y_val), epochs=5, batch_size=64, verbose=False)
    assert history[-1]["val_acc"] > 85  # chance is 10
    optimized = {id(p) for group in model.optimizer.param_groups for p in group["params"]}
    assert optimized == {id(p) for p in model.network.parameters()} and type(model.optimizer).__name__ == "Adam"
    # The materialized network, counted by hand: conv 1*8*9+8, conv 8*16*9+16, linear 256*32+32, 32*10+10.
    result = summary(model.network, x[:2], file=io.StringIO())
    assert [row.params for row in result.rows[1:]] == [80, 0, 1168, 0, 0, 8224, 0, 330]
    assert result.total_params == result.trainable_params == 80 + 1168 + 8224 + 330
    assert [row.output_shape for row in result.rows[1:]][::2] == [[2, 8, 6, 6], [2, 16, 4, 4], [2, 256], [2, 32]]


def test_an_eager_state_optimizer_by_name_works_too():
    x, y, _, _ = _digits()
    torch.manual_seed(0)
    model = Model(_lazy_cnn(), {"optim": "adagrad", "lr": 0.05}, "cross_entropy", batch_metrics=["accuracy"])
    history = model.fit(x[:640], y[:640], epochs=2, batch_size=64, verbose=False)
    assert history[-1]["acc"] > 60


def test_an_optimizer_instance_over_lazy_parameters_is_refused_with_the_fix():
    network = _lazy_cnn()
    with pytest.raises(ValueError, match=r"built over lazy parameters.*optimizer='adam'.*materialize"):
        Model(network, torch.optim.SGD(network.parameters(), lr=0.1), "cross_entropy")


def test_optimizer_state_before_the_first_batch(tmp_path):
    x, y, _, _ = _digits()
    model = Model(_lazy_cnn(), "adam", "cross_entropy")
    with pytest.raises(RuntimeError, match=r"cannot save its state yet.*model.materialize\(sample_x\)"):
        model.save_optimizer_state(tmp_path / "o.safetensors")
    model.materialize(x[:2]).save_optimizer_state(tmp_path / "o.safetensors")
    model.fit(x[:64], y[:64], epochs=1, verbose=False)
    model.save_weights(tmp_path / "w.safetensors")
    model.save_optimizer_state(tmp_path / "o.safetensors")
    # A fresh lazy model takes the saved shapes from the weights; its optimizer is built then.
    other = Model(_lazy_cnn(), "adam", "cross_entropy")
    other.load_weights(tmp_path / "w.safetensors")
    other.load_optimizer_state(tmp_path / "o.safetensors")
    assert other.optimizer.state_dict()["state"][0]["step"] == model.optimizer.state_dict()["state"][0]["step"]


def test_a_one_shot_generator_needs_an_explicit_materialize():
    x, y, _, _ = _digits()
    batches = ((x[i : i + 32], y[i : i + 32]) for i in range(0, 320, 32))
    model = Model(_lazy_cnn(), "adam", "cross_entropy")
    with pytest.raises(RuntimeError, match=r"one-shot iterator.*model.materialize\(sample_x\)"):
        model.fit_generator(batches, steps_per_epoch=10, epochs=1, verbose=False)
    model.materialize(x[:1]).fit_generator(batches, steps_per_epoch=10, epochs=1, verbose=False)


def test_an_experiment_with_lazy_layers_resumes_exactly(tmp_path):
    x, y, x_val, y_val = _digits()
    x, y = x[:256], y[:256]

    def run(directory, epochs):
        torch.manual_seed(0)
        experiment = Experiment(directory, _lazy_cnn(), optimizer="adam", task="classif")
        experiment.train_data(x, y, validation_data=(x_val, y_val), epochs=epochs, batch_size=32, verbose=False)
        return experiment

    straight = run(tmp_path / "straight", 3)
    run(tmp_path / "resumed", 2)
    resumed = run(tmp_path / "resumed", 3)  # a fresh process would see a fresh lazy network, as here
    for name, tensor in straight.model.network.state_dict().items():
        assert torch.equal(tensor, resumed.model.network.state_dict()[name]), name
    # Continuing in the same process, with the network already materialized, is the same run too.
    resumed.train_data(x, y, validation_data=(x_val, y_val), epochs=4, batch_size=32, verbose=False)
