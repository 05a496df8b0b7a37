"""trainwell steps optimizers under torch's profiler range only when something can observe it."""

import warnings
from unittest import mock

import pytest
import torch
import torch.profiler
from torch import nn
from torch.optim import optimizer as torch_optimizer
from torch.utils.data import DataLoader, TensorDataset

from trainwell import Model
from trainwell.engine import optimizer_calls


def _data():
    generator = torch.Generator().manual_seed(1)
    return torch.randn(48, 5, generator=generator), torch.randint(0, 3, (48,), generator=generator)


def _network():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 3))


def _hand_trained(optimizer_class, **kwargs):
    """The same run, written by hand with torch's own optimizer.step()."""
    network = _network()
    optimizer = optimizer_class(network.parameters(), **kwargs)
    x, y = _data()
    for _ in range(2):
        for start in range(0, len(x), 16):
            loss = nn.functional.cross_entropy(network(x[start : start + 16]), y[start : start + 16])
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
    return network


def _fit(network, optimizer, **kwargs):
    x, y = _data()
    model = Model(network, optimizer, "cross_entropy", sanity_check=False)
    loader = DataLoader(TensorDataset(x, y), batch_size=16)  # unshuffled: the hand loop's order
    model.fit_generator(loader, epochs=2, verbose=False, **kwargs)
    return model


@pytest.mark.parametrize(
    ("optimizer_class", "kwargs"),
    [(torch.optim.SGD, {"lr": 0.1, "momentum": 0.9}), (torch.optim.Adam, {"lr": 0.01}), (torch.optim.AdamW, {})],
)
def test_the_unwrapped_step_gives_the_weights_of_torchs_own_step(optimizer_class, kwargs):
    network = _network()
    _fit(network, optimizer_class(network.parameters(), **kwargs))
    hand = _hand_trained(optimizer_class, **kwargs)
    for ours, theirs in zip(network.parameters(), hand.parameters(), strict=True):
        assert torch.equal(ours, theirs)


def test_the_step_under_the_wrapper_is_used_only_when_nothing_observes_it():
    network = _network()
    optimizer = torch.optim.SGD(network.parameters(), lr=0.1)
    assert optimizer_calls._unwrapped_step(optimizer) is not None
    handle = optimizer.register_step_pre_hook(lambda *args: None)
    assert optimizer_calls._unwrapped_step(optimizer) is None
    handle.remove()
    handle = torch_optimizer.register_optimizer_step_post_hook(lambda *args: None)
    try:
        assert optimizer_calls._unwrapped_step(optimizer) is None
    finally:
        handle.remove()
    assert optimizer_calls._unwrapped_step(optimizer) is not None
    torch.optim.lr_scheduler.StepLR(optimizer, step_size=1)  # patches step onto the instance
    assert optimizer_calls._unwrapped_step(optimizer) is None


def test_instance_and_global_step_hooks_still_run_at_every_step():
    network = _network()
    optimizer = torch.optim.SGD(network.parameters(), lr=0.1)
    seen = []
    optimizer.register_step_pre_hook(lambda opt, args, kwargs: seen.append("pre"))
    optimizer.register_step_post_hook(lambda opt, args, kwargs: seen.append("post"))
    global_handle = torch_optimizer.register_optimizer_step_pre_hook(lambda opt, args, kwargs: seen.append("global"))
    try:
        _fit(network, optimizer)
    finally:
        global_handle.remove()
    assert seen == ["global", "pre", "post"] * 6  # 3 batches an epoch, 2 epochs


def test_a_global_hook_on_another_optimizer_is_honoured_for_ours():
    network = _network()
    optimizer = torch.optim.Adam(network.parameters(), lr=0.01)
    steps = []
    handle = torch_optimizer.register_optimizer_step_post_hook(lambda opt, args, kwargs: steps.append(opt))
    try:
        _fit(network, optimizer)
    finally:
        handle.remove()
    assert len(steps) == 6 and all(opt is optimizer for opt in steps)


def test_an_lr_scheduler_sees_the_optimizer_stepped_first():
    from trainwell.callbacks import StepLR

    network = _network()
    optimizer = torch.optim.SGD(network.parameters(), lr=0.1)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=r".*lr_scheduler\.step\(\)` before `optimizer\.step\(\)")
        model = _fit(network, optimizer, callbacks=[StepLR(step_size=1, gamma=0.5)])
    assert model.optimizer.param_groups[0]["lr"] == pytest.approx(0.1 * 0.5**2)


def test_a_profiler_still_shows_the_optimizer_step():
    network = _network()
    optimizer = torch.optim.SGD(network.parameters(), lr=0.1)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profiler:
        _fit(network, optimizer)
    names = [event.name for event in profiler.events()]
    assert names.count("Optimizer.step#SGD.step") == 6


def test_an_optimizer_with_its_own_step_wrapper_or_a_mock_gets_its_step_called():
    calls = []

    class Decorated(torch.optim.SGD):
        def step(self, closure=None):  # a subclass's own step: torch wraps it again, so it stays observable
            calls.append("own")
            return super().step(closure)

    network = _network()
    _fit(network, Decorated(network.parameters(), lr=0.1))
    assert calls == ["own"] * 6
    fake = mock.MagicMock()
    optimizer_calls.step(fake)
    fake.step.assert_called_once_with()
