import itertools
import math

import pytest
import torch
from torch import nn

from trainwell import Model
from trainwell.callbacks.policies import (
    OptimizerPolicy,
    Phase,
    cosinespace,
    linspace,
    one_cycle_phases,
    sgdr_phases,
)
from trainwell.storage.files import load_state, save_state


def _model(optimizer="sgd"):
    torch.manual_seed(0)
    network = nn.Linear(3, 1)
    if optimizer == "sgd":
        return Model(network, torch.optim.SGD(network.parameters(), lr=0.5, momentum=0.5), "mse")
    return Model(network, optimizer(network.parameters()), "mse")


def _fit(model, policy, *, epochs, initial_epoch=1, batches_per_step=1):
    """Fits on 10 samples (5 batches per epoch); returns each optimizer update's (lr, momentum or beta1)."""
    generator = torch.Generator().manual_seed(1)
    x, y = torch.randn(10, 3, generator=generator), torch.randn(10, 1, generator=generator)
    group = model.optimizer.param_groups[0]
    updates = []

    def record():
        momentum = group["momentum"] if "momentum" in group else group["betas"][0]
        updates.append((group["lr"], momentum))

    model._steps.before_optimizer_step.append(record)
    try:
        model.fit(
            x, y, batch_size=2, epochs=epochs, initial_epoch=initial_epoch, batches_per_step=batches_per_step,
            verbose=False, callbacks=[policy],
        )  # fmt: skip
    finally:
        model._steps.before_optimizer_step.remove(record)
    return updates


def test_spaces_include_both_ends():
    assert list(linspace(0, 1, 3)) == [0.0, 0.5, 1.0]
    assert list(cosinespace(0, 1, 3)) == pytest.approx([0.0, 0.5, 1.0])
    assert list(cosinespace(2, 0, 4)) == pytest.approx([2 * (1 + math.cos(math.pi * i / 3)) / 2 for i in range(4)])
    assert list(linspace(0.3, 1, 1)) == [0.3]
    assert list(linspace(0, 1, 0)) == []
    assert len(cosinespace(0, 1, 7)) == 7


def test_a_phase_pairs_its_spaces_and_holds_constants():
    phase = Phase(lr=linspace(0.1, 0.3, 3), momentum=0.9)
    assert list(phase) == [
        {"lr": 0.1, "momentum": 0.9},
        {"lr": pytest.approx(0.2), "momentum": 0.9},
        {"lr": 0.3, "momentum": 0.9},
    ]
    assert list(Phase(lr=0.05, steps=2)) == [{"lr": 0.05}, {"lr": 0.05}]
    assert len(Phase(momentum=(value / 10 for value in range(4)))) == 4  # a generator is read once


@pytest.mark.parametrize("batches_per_step", [1, 2])
def test_each_update_gets_the_phases_values_in_order(batches_per_step):
    phases = [Phase(lr=linspace(0.1, 0.2, 4), momentum=0.8), Phase(lr=cosinespace(0.2, 0.01, 4), momentum=0.7)]
    policy = OptimizerPolicy(phases)
    # 2 epochs of 5 batches: 10 updates, or 6 with batches_per_step=2 (the epoch's last batch alone).
    updates = _fit(_model(), policy, epochs=2, batches_per_step=batches_per_step)
    expected = [(values["lr"], values["momentum"]) for values in policy.all_steps()]
    count = 10 if batches_per_step == 1 else 6
    assert updates == expected[:count] + [expected[-1]] * (count - len(expected))  # the last values stay
    assert policy.current_step == count


def test_one_cycle_rises_then_falls_with_momentum_opposite_then_fine_tunes():
    steps = 20
    policy = OptimizerPolicy(one_cycle_phases(steps, lr=(0.01, 0.1), momentum=(0.95, 0.85), finetune_lr=0.001))
    updates = _fit(_model(), policy, epochs=4)
    rates, momenta = [lr for lr, _ in updates], [momentum for _, momentum in updates]
    assert len(updates) == steps
    peak = rates.index(max(rates))
    assert rates[0] == pytest.approx(0.01) and rates[peak] == pytest.approx(0.1)
    assert all(a < b for a, b in itertools.pairwise(rates[: peak + 1]))
    # Each phase includes both its ends, so the peak (and the low point) are held for two updates.
    assert all(a >= b for a, b in itertools.pairwise(rates[peak:]))
    assert rates[peak + 1] == rates[peak] > rates[peak + 2]
    assert momenta[0] == pytest.approx(0.95) and momenta[peak] == pytest.approx(0.85)
    assert all(a > b for a, b in itertools.pairwise(momenta[: peak + 1]))
    assert all(a <= b for a, b in itertools.pairwise(momenta[peak:]))
    assert rates[-1] == pytest.approx(0.001)  # the last 10% anneal to finetune_lr at the starting momentum
    assert momenta[-2:] == [pytest.approx(0.95)] * 2


def test_sgdr_restarts_at_each_cycle_with_growing_cycles():
    policy = OptimizerPolicy(sgdr_phases(base_cycle_length=2, cycles=3, lr=(0.1, 0.01), cycle_mult=2))
    rates = [lr for lr, _ in _fit(_model(), policy, epochs=3)][:14]  # 2 + 4 + 8 updates
    restarts = [index for index, (a, b) in enumerate(itertools.pairwise(rates), 1) if b > a]
    assert restarts == [2, 6]
    for start, length in [(0, 2), (2, 4), (6, 8)]:
        cycle = rates[start : start + length]
        assert cycle[0] == pytest.approx(0.1) and cycle[-1] == pytest.approx(0.01)


def test_adam_gets_the_momentum_as_its_first_beta():
    policy = OptimizerPolicy([Phase(lr=0.01, momentum=linspace(0.9, 0.8, 5))])
    model = _model(lambda parameters: torch.optim.Adam(parameters, lr=0.5, betas=(0.99, 0.95)))
    updates = _fit(model, policy, epochs=1)
    assert [momentum for _, momentum in updates] == list(linspace(0.9, 0.8, 5))
    assert model.optimizer.param_groups[0]["betas"][1] == 0.95


def test_resuming_from_a_saved_state_continues_the_same_values(tmp_path):
    def policy():
        return OptimizerPolicy(one_cycle_phases(17, lr=(0.01, 0.2)))

    whole = _fit(_model(), policy(), epochs=4, batches_per_step=2)  # 3 updates per epoch
    first = policy()
    first_updates = _fit(_model(), first, epochs=2, batches_per_step=2)
    save_state(tmp_path / "policy.safetensors", first.state_dict())
    resumed = policy()
    resumed.load_state_dict(load_state(tmp_path / "policy.safetensors"))
    assert resumed.current_step == 6
    rest = _fit(_model(), resumed, epochs=4, initial_epoch=3, batches_per_step=2)
    assert first_updates + rest == whole


def test_initial_step_starts_the_policy_later_and_a_second_fit_continues():
    phases = [Phase(lr=linspace(0.1, 1.0, 10))]
    later = _fit(_model(), OptimizerPolicy(phases, initial_step=5), epochs=1)
    assert [lr for lr, _ in later] == pytest.approx(list(linspace(0.1, 1.0, 10))[5:])
    policy = OptimizerPolicy(phases)
    model = _model()
    both = _fit(model, policy, epochs=1) + _fit(model, policy, epochs=1)
    assert [lr for lr, _ in both] == list(linspace(0.1, 1.0, 10))


def test_a_momentum_policy_needs_an_optimizer_with_momentum():
    model = _model(lambda parameters: torch.optim.Adagrad(parameters, lr=0.1))
    with pytest.raises(ValueError, match=r"sets a momentum, but param group 0 of the Adagrad optimizer has neither"):
        _fit(model, OptimizerPolicy(one_cycle_phases(10)), epochs=1)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="A Phase needs `lr` and/or `momentum`"):
        Phase()
    with pytest.raises(ValueError, match=r"constant values needs `steps`.*Received: lr=0.1"):
        Phase(lr=0.1)
    with pytest.raises(ValueError, match=r"same length.*Received: steps=None and spaces of lengths \{'lr': 3, 'mom"):
        Phase(lr=linspace(0, 1, 3), momentum=linspace(0, 1, 4))
    with pytest.raises(ValueError, match=r"Received: steps=5 and spaces of lengths \{'lr': 3\}"):
        Phase(lr=linspace(0, 1, 3), steps=5)
    with pytest.raises(TypeError, match=r"`lr` must be a number or an iterable of numbers.*Received: lr='fast'"):
        Phase(lr="fast", steps=3)
    with pytest.raises(ValueError, match=r"`steps` must be an int >= 0. Received: steps=-1"):
        linspace(0, 1, -1)
    with pytest.raises(ValueError, match=r"`finetune_fraction` must be in \[0, 1\). Received: finetune_fraction=1.5"):
        one_cycle_phases(10, finetune_fraction=1.5)
    with pytest.raises(ValueError, match=r"`steps` must be a positive int .*Received: steps=0"):
        one_cycle_phases(0)
    with pytest.raises(ValueError, match=r"`cycles` must be a positive int. Received: cycles=0"):
        sgdr_phases(4, 0)
    with pytest.raises(TypeError, match=r"`phases` must be a non-empty list of Phase instances"):
        OptimizerPolicy([])
    with pytest.raises(ValueError, match=r"`initial_step` must be an int >= 0. Received: initial_step=-2"):
        OptimizerPolicy(sgdr_phases(4, 1), initial_step=-2)
