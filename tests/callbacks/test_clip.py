"""ClipNorm and ClipValue: the update equals a hand-clipped step, also with gradient accumulation."""

import pytest
import torch
from torch import nn

from trainwell import Callback, Model, set_seeds
from trainwell.callbacks.clip import ClipNorm, ClipValue


def _network():
    set_seeds(3)
    return nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3))


def _data(n=16):
    set_seeds(4)
    return torch.randn(n, 4) * 5, torch.randint(0, 3, (n,))


def _hand_step(x, y, clip):
    network = _network()
    optimizer = torch.optim.SGD(network.parameters(), lr=0.5)
    nn.functional.cross_entropy(network(x), y).backward()
    clip(list(network.parameters()))
    optimizer.step()
    return network.state_dict()


@pytest.mark.parametrize("batches_per_step", [1, 2])
def test_clip_norm_equals_a_hand_clipped_step(batches_per_step):
    x, y = _data()
    network = _network()
    model = Model(network, torch.optim.SGD(network.parameters(), lr=0.5), "cross_entropy")
    # One step over all 16 samples: one batch of 16, or two accumulated batches of 8.
    model.fit_generator(
        [(x[:8], y[:8]), (x[8:], y[8:])] if batches_per_step == 2 else [(x, y)],
        epochs=1,
        batches_per_step=batches_per_step,
        verbose=False,
        callbacks=[ClipNorm(network.parameters(), max_norm=0.1)],
    )
    expected = _hand_step(x, y, lambda params: nn.utils.clip_grad_norm_(params, 0.1))
    for name, tensor in network.state_dict().items():
        torch.testing.assert_close(tensor, expected[name], rtol=1e-5, atol=1e-6)


def test_clip_value_equals_a_hand_clipped_step():
    x, y = _data()
    network = _network()
    model = Model(network, torch.optim.SGD(network.parameters(), lr=0.5), "cross_entropy")
    model.fit_generator([(x, y)], epochs=1, verbose=False, callbacks=[ClipValue(network.parameters(), 0.01)])
    expected = _hand_step(x, y, lambda params: nn.utils.clip_grad_value_(params, 0.01))
    for name, tensor in network.state_dict().items():
        torch.testing.assert_close(tensor, expected[name])


def test_clipping_actually_changes_the_update():
    x, y = _data()
    unclipped = _hand_step(x, y, lambda params: None)
    clipped = _hand_step(x, y, lambda params: nn.utils.clip_grad_norm_(params, 0.1))
    assert not torch.allclose(unclipped["0.weight"], clipped["0.weight"])


def test_the_hook_is_gone_after_a_failed_run():
    class Boom(Callback):
        def on_epoch_end(self, epoch_number, logs):
            raise RuntimeError("boom")

    x, y = _data()
    network = _network()
    model = Model(network, "sgd", "cross_entropy")
    with pytest.raises(RuntimeError, match="boom"):
        model.fit(x, y, epochs=1, verbose=False, callbacks=[ClipNorm(network.parameters(), 1.0), Boom()])
    assert model._steps.before_optimizer_step == []


def test_clip_arguments_are_checked():
    with pytest.raises(ValueError, match=r"`max_norm` must be a positive number. Received: max_norm=0"):
        ClipNorm(nn.Linear(2, 2).parameters(), 0)
    with pytest.raises(ValueError, match="`parameters` is empty"):
        ClipValue([], 1.0)
    with pytest.raises(TypeError, match="`parameters` must be a tensor or an iterable of tensors"):
        ClipValue(3, 1.0)
