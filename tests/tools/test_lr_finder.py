import math

import matplotlib.image
import numpy as np
import pytest
import torch
from torch import nn

from trainwell import Model
from trainwell.tools.lr_finder import LRFinderResult, find_lr


def _regression(seed=0):
    torch.manual_seed(seed)
    x = torch.randn(512, 10) * 3
    return x, x @ torch.randn(10, 1)


def _network():
    return nn.Sequential(nn.Linear(10, 16), nn.BatchNorm1d(16), nn.Tanh(), nn.Linear(16, 1))


def _tensors(state):
    """Every tensor of a nested state dict, flattened with its path, as exact copies."""
    if isinstance(state, torch.Tensor):
        return {"": state.detach().clone()}
    items = state.items() if isinstance(state, dict) else enumerate(state) if isinstance(state, (list, tuple)) else []
    return {f"{key}/{path}": value for key, item in items for path, value in _tensors(item).items()}


def _same(before, after):
    assert before.keys() == after.keys()
    for key in before:
        assert before[key].dtype == after[key].dtype and torch.equal(before[key], after[key]), key


def test_rates_grow_exponentially_and_divergence_stops_the_test():
    x, y = _regression()
    model = Model(nn.Linear(10, 1), "sgd", "mse")
    result = find_lr(model, x, y, start_lr=1e-5, end_lr=10.0, num_steps=100, batch_size=32)
    assert result.lrs[0] == pytest.approx(1e-5)
    ratios = np.diff(np.log(result.lrs))
    assert np.allclose(ratios, math.log(1e6) / 99)  # the whole range over num_steps batches
    # SGD on this quadratic is unstable above lr = 2 / (2 * 9): the loss blows up well before lr = 10.
    assert result.diverged and 20 < len(result.lrs) < 100 and result.lrs[-1] > 0.1
    assert len(result.losses) == len(result.smoothed_losses) == len(result.lrs)
    assert result.smoothed_losses[-1] > 4 * min(result.smoothed_losses)


def test_the_suggestion_trains_well_and_the_minimum_does_not():
    for seed in (0, 1, 2):
        x, y = _regression(seed)
        model = Model(nn.Linear(10, 1), "sgd", "mse")
        result = find_lr(model, x, y, start_lr=1e-5, end_lr=1.0, num_steps=100)
        assert result.suggestion == pytest.approx(result.lr_at_min_loss / 10)
        losses = {}
        for rate in (result.suggestion, 1e-4, result.lr_at_min_loss * 3):
            torch.manual_seed(seed)
            trained = Model(nn.Linear(10, 1), {"optim": "sgd", "lr": rate}, "mse")
            losses[rate] = trained.fit(x, y, epochs=3, batch_size=32, verbose=False)[-1]["loss"]
        first, small, large = losses.values()
        assert first < 0.05 * small  # far better than a timid rate...
        assert not first > large  # ...and not the rate where the loss blows up
        assert not math.isfinite(large) or large > 100 * first


def test_weights_buffers_and_optimizer_state_are_restored_bit_for_bit():
    x, y = _regression()
    torch.manual_seed(0)
    model = Model(_network(), {"optim": "adam", "lr": 1e-3}, "mse")
    model.fit(x, y, epochs=1, batch_size=64, verbose=False)  # a non-empty Adam state to restore
    model.network.eval()
    weights, optimizer = _tensors(model.network.state_dict()), _tensors(model.optimizer.state_dict())
    groups = [{k: v for k, v in group.items() if k != "params"} for group in model.optimizer.param_groups]
    counters = model.state.state_dict()
    result = find_lr(model, x, y, num_steps=30)
    assert len(result.lrs) == 30 and result.lrs[-1] > 1  # the test did train, up to large rates
    _same(weights, _tensors(model.network.state_dict()))  # batch-norm statistics included
    _same(optimizer, _tensors(model.optimizer.state_dict()))  # exp_avg, exp_avg_sq, step
    assert [{k: v for k, v in group.items() if k != "params"} for group in model.optimizer.param_groups] == groups
    assert model.state.state_dict() == counters
    assert not model.network.training and not model.stop_training
    optimized = [parameter for group in model.optimizer.param_groups for parameter in group["params"]]
    assert all(a is b for a, b in zip(optimized, model.network.parameters(), strict=True))


def test_training_after_the_test_is_the_same_as_without_it():
    x, y = _regression()
    histories = []
    for run_finder in (False, True):
        torch.manual_seed(0)
        model = Model(_network(), "adam", "mse")
        if run_finder:
            find_lr(model, x, y, num_steps=40)
        histories.append([entry["loss"] for entry in model.fit(x, y, epochs=2, batch_size=32, verbose=False)])
    assert histories[0] == histories[1]  # weights, optimizer state and the shuffles' random draws


def test_a_generator_of_batches_and_a_fresh_optimizer_state():
    x, y = _regression()
    batches = [(x[i : i + 16], y[i : i + 16]) for i in range(0, 128, 16)]  # 8 batches, restarted as needed
    torch.manual_seed(0)
    model = Model(_network(), "adam", "mse")
    result = find_lr(model, batches, num_steps=20, end_lr=1e-2)
    assert len(result.lrs) == 20 and not result.diverged
    assert model.optimizer.state_dict()["state"] == {}  # Adam had no state before: none after


def test_the_plot(tmp_path):
    x, y = _regression()
    result = find_lr(Model(nn.Linear(10, 1), "sgd", "mse"), x, y, start_lr=1e-5, end_lr=1.0)
    path = tmp_path / "lr.png"
    figure = result.plot(path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert matplotlib.image.imread(path).ndim == 3
    lines = {line.get_label(): line for line in figure.axes[0].get_lines()}
    assert list(lines["loss"].get_xdata()) == result.lrs and list(lines["loss"].get_ydata()) == result.losses
    assert list(lines["smoothed loss"].get_ydata()) == result.smoothed_losses
    assert lines[f"suggestion {result.suggestion:.2e}"].get_xdata()[0] == result.suggestion
    assert figure.axes[0].get_xscale() == "log"


def test_no_suggestion_when_the_loss_never_went_down():
    rising = LRFinderResult([10.0**k for k in range(-5, 5)], [1.0, *range(2, 11)], [1.0, *range(2, 11)], True)
    assert rising.suggestion is None and rising.lr_at_min_loss == 1e-5
    assert LRFinderResult([], [], [], False).suggestion is None


def test_errors_name_the_argument_and_the_fix():
    x, y = _regression()
    model = Model(nn.Linear(10, 1), "sgd", "mse")
    with pytest.raises(TypeError, match=r"`model` must be a trainwell Model. Received: model of type Linear"):
        find_lr(nn.Linear(10, 1), x, y)
    with pytest.raises(RuntimeError, match=r"no optimizer: pass `optimizer` to Model"):
        find_lr(Model(nn.Linear(10, 1), None, "mse"), x, y)
    with pytest.raises(TypeError, match=r"`y` is required with in-memory `data`.*type Tensor and y=None"):
        find_lr(model, x)
    with pytest.raises(ValueError, match=r"`end_lr` must be larger than `start_lr`.*start_lr=0.1, end_lr=0.01"):
        find_lr(model, x, y, start_lr=0.1, end_lr=0.01)
    with pytest.raises(ValueError, match=r"`start_lr` must be a positive number. Received: start_lr=0"):
        find_lr(model, x, y, start_lr=0)
    with pytest.raises(ValueError, match=r"`num_steps` must be an int of at least 2. Received: num_steps=1"):
        find_lr(model, x, y, num_steps=1)
    with pytest.raises(ValueError, match=r"`smooth` must be a number in \[0, 1\).*smooth=1"):
        find_lr(model, x, y, smooth=1)
    with pytest.raises(ValueError, match=r"`diverge_factor` must be larger than 1.*diverge_factor=0.5"):
        find_lr(model, x, y, diverge_factor=0.5)
    with pytest.raises(ValueError, match=r"`batch_size` must be a positive int"):
        find_lr(model, x, y, batch_size=0)
    lazy = Model(nn.LazyLinear(1), "sgd", "mse")
    with pytest.raises(RuntimeError, match=r"lazy layers.*materialize\(model.network, sample_x\)"):
        find_lr(lazy, x, y)
