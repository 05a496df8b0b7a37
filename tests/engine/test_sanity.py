"""The sanity check before the first epoch: it catches a broken evaluation path at once and changes nothing."""

import random
import time

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

from trainwell import Callback, Model
from trainwell.data import TensorBatches
from trainwell.engine.sanity import check_sanity_option, sanity_check


def _network():
    return nn.Sequential(nn.Linear(5, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 3))


def _data(n=96, seed=0):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 5, generator=generator)
    return x, (x[:, 0] > 0).long() + (x[:, 1] > 1).long()


def _model(**options):
    torch.manual_seed(0)
    return Model(_network(), "adam", "cross_entropy", batch_metrics=["accuracy"], epoch_metrics=["f1"], **options)


def _everything(model):
    """Every value the check could disturb, cloned."""
    return {
        "state": {name: tensor.clone() for name, tensor in model.network.state_dict().items()},
        "grads": [None if p.grad is None else p.grad.clone() for p in model.network.parameters()],
        "optimizer": _optimizer_tensors(model.optimizer.state_dict()),
        "modes": [module.training for module in model.network.modules()],
        "loop": model.state.state_dict(),
        # Draws from each generator tell whether its state moved.
        "rng": (torch.rand(3), random.random(), np.random.rand()),
    }


def _optimizer_tensors(state):
    return [
        (key, name, value.clone() if isinstance(value, torch.Tensor) else value)
        for key, entry in sorted(state["state"].items())
        for name, value in sorted(entry.items())
    ] + [sorted((k, v) for k, v in group.items() if k != "params") for group in state["param_groups"]]


def _same(a, b):
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def test_the_check_leaves_every_state_untouched_bit_for_bit():
    model = _model()
    x, y = _data()
    # A model in the middle of its life: optimizer moments, running statistics and leftover gradients.
    model.fit(x, y, epochs=1, batch_size=16, verbose=False)
    for parameter in model.network.parameters():
        parameter.grad = torch.full_like(parameter, 0.5)
    model.network.train(True)
    model.network[3].eval()  # a module left in another mode than its parent stays so
    train = TensorBatches(x, y, batch_size=16, shuffle=True)
    valid = TensorBatches(*_data(32, seed=1), batch_size=16, shuffle=False)
    torch.manual_seed(5), random.seed(5), np.random.seed(5)
    expected = _everything(model)
    torch.manual_seed(5), random.seed(5), np.random.seed(5)
    with model._running():
        sanity_check(model, train, valid, 2)
    assert _same(_everything(model), expected)


def test_a_fit_with_the_check_equals_a_fit_without_it():
    x, y = _data()
    histories, weights = [], []
    for enabled in (True, False):
        model = _model(sanity_check=enabled)
        loader = DataLoader(
            TensorDataset(x, y), batch_size=16, shuffle=True, generator=torch.Generator().manual_seed(3)
        )
        torch.manual_seed(1)
        history = model.fit_generator(loader, [(x[:32], y[:32]), (x[32:48], y[32:48])], epochs=3, verbose=False)
        histories.append([{k: v for k, v in epoch.items() if k != "time"} for epoch in history])
        weights.append(model.network.state_dict())
    assert histories[0] == histories[1]
    assert _same(weights[0], weights[1])


class _Recorder(Callback):
    def __init__(self):
        self.calls = []

    def on_train_begin(self, logs):
        self.calls.append("train_begin")

    def on_train_batch_begin(self, batch_number, logs):
        self.calls.append("train_batch")

    def on_valid_batch_begin(self, batch_number, logs):
        self.calls.append("valid_batch")


def _fails_in_eval_mode(y_pred, y_true):
    if not torch.is_grad_enabled():
        raise RuntimeError("this loss was only ever tried in training")
    return F.cross_entropy(y_pred, y_true)


def test_a_loss_that_fails_only_in_evaluation_stops_fit_before_any_training_batch():
    x, y = _data(4000)
    torch.manual_seed(0)
    model = Model(_network(), "adam", _fails_in_eval_mode)
    recorder = _Recorder()
    started = time.perf_counter()
    with pytest.raises(RuntimeError, match="only ever tried in training") as raised:
        model.fit(x, y, validation_data=_data(64, seed=1), epochs=5, batch_size=8, verbose=False, callbacks=[recorder])
    assert recorder.calls == []  # not even on_train_begin
    assert time.perf_counter() - started < 5
    assert any("sanity check" in note and "sanity_check=False" in note for note in raised.value.__notes__)
    # Without the check, the same bug shows only after a whole epoch of 500 batches.
    model = Model(_network(), "adam", _fails_in_eval_mode, sanity_check=False)
    recorder = _Recorder()
    with pytest.raises(RuntimeError, match="only ever tried in training"):
        model.fit(x, y, validation_data=_data(64, seed=1), epochs=5, batch_size=8, verbose=False, callbacks=[recorder])
    assert recorder.calls.count("train_batch") == 500


def test_a_validation_set_of_the_wrong_shape_fails_before_training():
    x, y = _data()
    model = _model()
    recorder = _Recorder()
    # The first batch's error names the argument and the shape (torch's error is its cause).
    with pytest.raises(ValueError, match=r"`validation_data`, a tensor of shape \(16, 7\).*mat1 and mat2"):
        model.fit(x, y, validation_data=(torch.randn(16, 7), y[:16]), epochs=2, verbose=False, callbacks=[recorder])
    assert "train_batch" not in recorder.calls
    weights = {name: tensor.clone() for name, tensor in model.network.state_dict().items()}
    assert _same(weights, _model().network.state_dict())  # restored although the check raised


def test_a_plain_generator_is_never_read_ahead():
    x, y = _data()
    pulled = []

    def batches():
        for start in range(0, 96, 16):
            pulled.append(start)
            yield x[start : start + 16], y[start : start + 16]

    model = _model()
    recorder = _Recorder()
    model.fit_generator(batches(), steps_per_epoch=6, epochs=1, verbose=False, callbacks=[recorder])
    assert pulled == list(range(0, 96, 16))  # each batch read once, by the real epoch
    assert recorder.calls.count("train_batch") == 6


def test_a_users_iterable_is_left_alone_and_a_dataloader_is_checked():
    x, y = _data()

    class Recording:
        """A user's iterable with a length: reading it ahead would show in its calls."""

        def __init__(self):
            self.calls = []

        def __len__(self):
            self.calls.append("len")
            return 6

        def __iter__(self):
            self.calls.append("iter")
            return ((x[start : start + 16], y[start : start + 16]) for start in range(0, 96, 16))

    train, valid = Recording(), Recording()
    _model().fit_generator(train, valid, epochs=2, verbose=False)
    assert train.calls == valid.calls == ["len", "iter", "iter"]  # one len, one pass per epoch, nothing else

    wrong_shape = DataLoader(TensorDataset(torch.randn(16, 7), y[:16]), batch_size=8)
    recorder = _Recorder()
    with pytest.raises(ValueError, match=r"`valid_generator`, a tensor of shape \(8, 7\).*mat1 and mat2"):
        _model().fit_generator(
            DataLoader(TensorDataset(x, y), batch_size=8), wrong_shape, epochs=2, verbose=False, callbacks=[recorder]
        )
    assert "train_batch" not in recorder.calls  # the DataLoader was read ahead


def _gan_step(ctx, batch):
    (real,) = batch
    generator, discriminator = ctx.networks["generator"], ctx.networks["discriminator"]
    fake = generator(torch.randn(len(real), 4))
    ones = torch.ones(len(real), 1)
    d_loss = F.binary_cross_entropy_with_logits(discriminator(real), ones) + F.binary_cross_entropy_with_logits(
        discriminator(fake.detach()), torch.zeros_like(ones)
    )
    ctx.backward(d_loss)
    ctx.optimizer_step("discriminator")
    g_loss = F.binary_cross_entropy_with_logits(discriminator(fake), ones)
    ctx.backward(g_loss)
    ctx.optimizer_step("generator")
    return {"d_loss": d_loss, "g_loss": g_loss}


def _gan(sanity):
    torch.manual_seed(0)
    networks = nn.ModuleDict(
        {
            "generator": nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2)),
            "discriminator": nn.Sequential(nn.Linear(2, 8), nn.LeakyReLU(0.2), nn.Linear(8, 1)),
        }
    )
    optimizers = {"generator": {"optim": "adam", "lr": 1e-2}, "discriminator": {"optim": "adam", "lr": 1e-2}}
    return Model(networks, optimizers, None, train_step=_gan_step, sanity_check=sanity)


def test_custom_steps_that_apply_optimizers_are_fully_restored():
    real = [(torch.randn(16, 2) + 2,) for _ in range(4)]
    model = _gan(True)
    model.fit_generator(real, epochs=1, verbose=False)  # optimizer states exist now
    state = {name: tensor.clone() for name, tensor in model.network.state_dict().items()}
    optimizer = {name: _optimizer_tensors(opt.state_dict()) for name, opt in model.optimizer.items()}
    with model._running():
        sanity_check(model, real, None, 3)
    assert _same({name: tensor for name, tensor in model.network.state_dict().items()}, state)
    assert _same({name: _optimizer_tensors(opt.state_dict()) for name, opt in model.optimizer.items()}, optimizer)
    # And a whole run with the check equals one without it.
    results = []
    for sanity in (True, False):
        model = _gan(sanity)
        torch.manual_seed(2)
        history = model.fit_generator(real, epochs=2, verbose=False)
        results.append(([{k: v for k, v in e.items() if k != "time"} for e in history], model.network.state_dict()))
    assert results[0][0] == results[1][0] and _same(results[0][1], results[1][1])


def test_the_option_is_checked():
    assert (check_sanity_option(True), check_sanity_option(False), check_sanity_option(3)) == (2, 0, 3)
    with pytest.raises(TypeError, match=r"`sanity_check` must be True.*Received: sanity_check=-1"):
        Model(nn.Linear(2, 2), "sgd", "mse", sanity_check=-1)
    with pytest.raises(TypeError, match=r"Received: sanity_check='yes' \(type str\)"):
        Model(nn.Linear(2, 2), "sgd", "mse", sanity_check="yes")
