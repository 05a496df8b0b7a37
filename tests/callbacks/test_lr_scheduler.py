import inspect
import itertools
import json
import math

import pytest
import torch
from safetensors import safe_open
from torch import nn
from torch.optim import lr_scheduler as torch_schedulers

from tests.learning_rates import LearningRates
from trainwell import Model
from trainwell.callbacks import lr_scheduler as wrappers
from trainwell.callbacks.base import Callback
from trainwell.callbacks.lr_scheduler import (
    ChainedScheduler,
    CosineAnnealingLR,
    CyclicLR,
    LambdaLR,
    LinearLR,
    LRScheduler,
    OneCycleLR,
    ReduceLROnPlateau,
    SequentialLR,
    StepLR,
)
from trainwell.storage.files import encode_state, load_state, save_state

# Any "lr_scheduler.step() before optimizer.step()" or similar misuse warning from torch fails a test.
pytestmark = pytest.mark.filterwarnings("error::UserWarning")


class Halving(torch_schedulers.LRScheduler):
    """A user's own scheduler: halves the rate every other step."""

    def get_lr(self):
        return [base * 0.5 ** (self.last_epoch // 2) for base in self.base_lrs]


# name -> (wrapper built without optimizer, the same schedule built by hand on an optimizer)
CASES = {
    "LambdaLR": (
        lambda: LambdaLR(lr_lambda=lambda e: 0.9**e),
        lambda o: torch_schedulers.LambdaLR(o, lambda e: 0.9**e),
    ),
    "MultiplicativeLR": (
        lambda: wrappers.MultiplicativeLR(lambda e: 0.8),
        lambda o: torch_schedulers.MultiplicativeLR(o, lambda e: 0.8),
    ),
    "StepLR": (lambda: StepLR(step_size=2, gamma=0.5), lambda o: torch_schedulers.StepLR(o, 2, 0.5)),
    "MultiStepLR": (
        lambda: wrappers.MultiStepLR(milestones=[1, 3], gamma=0.5),
        lambda o: torch_schedulers.MultiStepLR(o, [1, 3], 0.5),
    ),
    "ConstantLR": (
        lambda: wrappers.ConstantLR(factor=0.5, total_iters=2),
        lambda o: torch_schedulers.ConstantLR(o, 0.5, 2),
    ),
    "LinearLR": (lambda: LinearLR(start_factor=0.2, total_iters=3), lambda o: torch_schedulers.LinearLR(o, 0.2, 1, 3)),
    "ExponentialLR": (lambda: wrappers.ExponentialLR(gamma=0.7), lambda o: torch_schedulers.ExponentialLR(o, 0.7)),
    "PolynomialLR": (
        lambda: wrappers.PolynomialLR(total_iters=4, power=2.0),
        lambda o: torch_schedulers.PolynomialLR(o, 4, 2.0),
    ),
    "CosineAnnealingLR": (
        lambda: CosineAnnealingLR(T_max=3, eta_min=0.01),
        lambda o: torch_schedulers.CosineAnnealingLR(o, 3, 0.01),
    ),
    "CosineAnnealingWarmRestarts": (
        lambda: wrappers.CosineAnnealingWarmRestarts(T_0=2, T_mult=2),
        lambda o: torch_schedulers.CosineAnnealingWarmRestarts(o, 2, 2),
    ),
    "CyclicLR": (
        lambda: CyclicLR(base_lr=0.01, max_lr=0.1, step_size_up=2),
        lambda o: torch_schedulers.CyclicLR(o, 0.01, 0.1, step_size_up=2),
    ),
    "OneCycleLR": (lambda: OneCycleLR(max_lr=0.5, total_steps=30), lambda o: torch_schedulers.OneCycleLR(o, 0.5, 30)),
    "SequentialLR": (
        lambda: SequentialLR([LinearLR(start_factor=0.1, total_iters=2), CosineAnnealingLR(T_max=4)], milestones=[2]),
        lambda o: torch_schedulers.SequentialLR(
            o, [torch_schedulers.LinearLR(o, 0.1, 1, 2), torch_schedulers.CosineAnnealingLR(o, 4)], [2]
        ),
    ),
    "ChainedScheduler": (
        lambda: ChainedScheduler(
            [wrappers.ConstantLR(factor=0.1, total_iters=2), lambda o: torch_schedulers.ExponentialLR(o, 0.9)]
        ),
        lambda o: torch_schedulers.ChainedScheduler(
            [torch_schedulers.ConstantLR(o, 0.1, 2), torch_schedulers.ExponentialLR(o, 0.9)]
        ),
    ),
    "LRScheduler": (lambda: LRScheduler(Halving), Halving),
}


def _optimizer(parameters):
    return torch.optim.SGD(parameters, lr=0.1, momentum=0.9)


def _model():
    torch.manual_seed(0)
    network = nn.Linear(3, 1)
    return Model(network, _optimizer(network.parameters()), "mse")


def _data(n=10):
    generator = torch.Generator().manual_seed(1)
    return torch.randn(n, 3, generator=generator), torch.randn(n, 1, generator=generator)


def _fit(model, callbacks, *, epochs, initial_epoch=1, batches_per_step=1, batch_size=2, validation=False):
    """Fits on 10 samples (5 batches).

    Returns the history, (lr, momentum) of every optimizer update, and the rate each epoch trained with
    (recorded beside the logs: the history carries no lr, as in Poutyne).
    """
    x, y = _data()
    updates = []
    rates = LearningRates()
    group = model.optimizer.param_groups[0]

    def record():
        updates.append((group["lr"], group["momentum"]))

    model._steps.before_optimizer_step.append(record)
    try:
        history = model.fit(
            x, y, validation_data=(x, y) if validation else None, batch_size=batch_size, epochs=epochs,
            initial_epoch=initial_epoch, batches_per_step=batches_per_step, verbose=False,
            callbacks=[*callbacks, rates],
        )  # fmt: skip
    finally:
        model._steps.before_optimizer_step.remove(record)
    assert all("lr" not in logs for logs in history)
    return history, updates, rates.values()


def _hand_stepped(make, steps):
    """The rate before each of ``steps`` scheduler steps of a bare torch scheduler, stepped by hand."""
    optimizer = _optimizer([torch.zeros(1, requires_grad=True)])
    scheduler = make(optimizer)
    rates = []
    for _ in range(steps):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return rates


def test_every_torch_scheduler_has_a_wrapper_of_the_same_name():
    torch_names = {
        name
        for name, value in inspect.getmembers(torch_schedulers, inspect.isclass)
        if issubclass(value, torch_schedulers.LRScheduler) and not name.startswith("_")
    }
    # A torch release that adds a scheduler fails here until it has a wrapper and a case below.
    assert torch_names == {*CASES, "ReduceLROnPlateau"}
    for name in torch_names:
        assert issubclass(getattr(wrappers, name), Callback), name
    assert set(wrappers.__all__) == torch_names


@pytest.mark.parametrize("name", sorted(CASES))
def test_epoch_schedule_matches_the_torch_scheduler_stepped_by_hand(name):
    make_wrapper, make_torch = CASES[name]
    _, _, rates = _fit(_model(), [make_wrapper()], epochs=4)
    assert rates == _hand_stepped(make_torch, 4)


@pytest.mark.parametrize("batches_per_step", [1, 2])
@pytest.mark.parametrize("name", ["LinearLR", "OneCycleLR", "CyclicLR", "SequentialLR", "LambdaLR"])
def test_per_step_schedule_matches_a_scheduler_stepped_after_each_update(name, batches_per_step):
    make_wrapper, make_torch = CASES[name]
    wrapper = make_wrapper()
    wrapper.step_every = "step"  # same recipe, stepped per update
    # 5 batches per epoch: 5 updates, or 3 with batches_per_step=2 (the last one a single batch).
    _, updates, rates = _fit(_model(), [wrapper], epochs=3, batches_per_step=batches_per_step)
    per_epoch = 5 if batches_per_step == 1 else 3
    expected = _hand_stepped(make_torch, 3 * per_epoch + 1)
    assert [lr for lr, _ in updates] == expected[:-1]
    # The epoch's logged rate is read after its updates: the one the next update uses.
    if batches_per_step == 1:
        assert rates == [expected[per_epoch * epoch] for epoch in (1, 2, 3)]


def test_warmup_then_cosine_per_step_rises_then_falls():
    warmup_cosine = SequentialLR(
        [LinearLR(start_factor=0.1, total_iters=5), CosineAnnealingLR(T_max=10)], milestones=[5], step_every="step"
    )
    _, updates, _ = _fit(_model(), [warmup_cosine], epochs=3)
    rates = [lr for lr, _ in updates]
    assert rates[0] == pytest.approx(0.01)
    assert all(a < b for a, b in itertools.pairwise(rates[:6]))  # warm-up to the peak 0.1
    assert rates[5] == pytest.approx(0.1)
    assert all(a > b for a, b in itertools.pairwise(rates[5:15]))  # then cosine down


def test_a_second_fit_continues_the_schedule():
    scheduler = StepLR(step_size=1, gamma=0.5)
    model = _model()
    _, _, first = _fit(model, [scheduler], epochs=2)
    _, _, second = _fit(model, [scheduler], epochs=2)
    assert first + second == [0.1, 0.05, 0.025, 0.0125]


def test_a_model_with_another_optimizer_gets_a_new_schedule():
    scheduler = StepLR(step_size=1, gamma=0.5)
    _fit(_model(), [scheduler], epochs=2)
    _, _, rates = _fit(_model(), [scheduler], epochs=2)
    assert rates == [0.1, 0.05]


RESUMED = {
    "StepLR": (lambda: StepLR(step_size=1, gamma=0.5), 1),
    "LambdaLR per step": (lambda: LambdaLR(lambda update: 1 / (1 + update), step_every="step"), 1),
    "OneCycleLR per step, batches_per_step=2": (lambda: OneCycleLR(max_lr=0.5, total_steps=12, step_every="step"), 2),
    "CyclicLR per step (momentum too)": (
        lambda: CyclicLR(base_lr=0.01, max_lr=0.1, step_size_up=3, step_every="step"),
        1,
    ),
    "SequentialLR per step": (
        lambda: SequentialLR(
            [LinearLR(start_factor=0.1, total_iters=4), CosineAnnealingLR(T_max=16)], milestones=[4], step_every="step"
        ),
        1,
    ),
    "ChainedScheduler": (lambda: ChainedScheduler([StepLR(step_size=1), wrappers.ExponentialLR(gamma=0.9)]), 1),
}


@pytest.mark.parametrize("case", sorted(RESUMED))
def test_resuming_from_a_saved_state_continues_the_same_rates(case, tmp_path):
    make, batches_per_step = RESUMED[case]
    _, whole_updates, whole = _fit(_model(), [make()], epochs=4, batches_per_step=batches_per_step)

    first_part = make()
    _, first_updates, _ = _fit(_model(), [first_part], epochs=2, batches_per_step=batches_per_step)
    save_state(tmp_path / "scheduler.safetensors", first_part.state_dict())

    # A fresh model, optimizer and callback: everything the rate depends on comes from the file.
    resumed = make()
    resumed.load_state_dict(load_state(tmp_path / "scheduler.safetensors"))
    rest, rest_updates, rest_rates = _fit(
        _model(), [resumed], epochs=4, initial_epoch=3, batches_per_step=batches_per_step
    )

    assert [logs["epoch"] for logs in rest] == [3, 4]
    assert rest_rates == whole[2:]
    assert first_updates + rest_updates == whole_updates


def test_save_state_and_load_state_use_a_real_file(tmp_path):
    trained = StepLR(step_size=1, gamma=0.5)
    _fit(_model(), [trained], epochs=2)
    trained.save_state(tmp_path / "step.safetensors")
    with safe_open(tmp_path / "step.safetensors", "pt") as file:  # plain safetensors + JSON, no pickle
        assert json.loads(file.metadata()["trainwell_state"])["class"] == "StepLR"
    resumed = StepLR(step_size=1, gamma=0.5)
    resumed.load_state(tmp_path / "step.safetensors")
    _, _, rates = _fit(_model(), [resumed], epochs=3, initial_epoch=3)
    assert rates == [0.025]


def test_state_before_training_is_empty_and_a_loaded_state_is_kept_until_used():
    scheduler = StepLR(step_size=1)
    assert scheduler.state_dict() == {}
    trained = StepLR(step_size=1)
    _fit(_model(), [trained], epochs=1)
    scheduler.load_state_dict(trained.state_dict())
    assert scheduler.state_dict() == trained.state_dict()


class ScriptedScore(Callback):
    """Puts a given value in the epoch logs, for a callback later in the list to monitor."""

    def __init__(self, scores):
        self.scores = scores

    def on_epoch_end(self, epoch_number, logs):
        logs["score"] = self.scores[epoch_number - 1]


def test_reduce_on_plateau_reduces_after_patience_bad_epochs():
    # A rate so small that training does not move val_loss by the 1e-4 relative threshold: only the
    # first epoch improves, so the rate drops at the end of epoch 1 + patience + 1.
    torch.manual_seed(0)
    network = nn.Linear(3, 1)
    model = Model(network, torch.optim.SGD(network.parameters(), lr=1e-9), "mse")
    plateau = ReduceLROnPlateau(patience=2, factor=0.5, eps=1e-15)
    history, _, rates = _fit(model, [plateau], epochs=7, validation=True)
    assert rates == [1e-9] * 4 + [5e-10] * 3

    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1e-9)
    reference = torch_schedulers.ReduceLROnPlateau(optimizer, patience=2, factor=0.5, eps=1e-15)
    by_hand = []
    for logs in history:
        by_hand.append(optimizer.param_groups[0]["lr"])
        reference.step(logs["val_loss"])
    assert rates == by_hand


def test_reduce_on_plateau_in_max_mode_and_its_resume(tmp_path):
    scores = [1.0, 2.0, 2.0, 2.0, 3.0, 3.0, 3.0, 3.0]

    def run(plateau, epochs, initial_epoch=1):
        _, _, rates = _fit(_model(), [ScriptedScore(scores), plateau], epochs=epochs, initial_epoch=initial_epoch)
        return rates

    whole = run(ReduceLROnPlateau(monitor="score", mode="max", patience=1), 8)
    assert whole == pytest.approx([0.1] * 4 + [0.01] * 3 + [0.001])

    first = ReduceLROnPlateau(monitor="score", mode="max", patience=1)
    run(first, 3)
    state = first.state_dict()
    json.dumps(encode_state(state)[0], allow_nan=False)  # strict JSON, though torch keeps mode_worse=-inf
    save_state(tmp_path / "plateau.safetensors", state)
    resumed = ReduceLROnPlateau(monitor="score", mode="max", patience=1)
    resumed.load_state_dict(load_state(tmp_path / "plateau.safetensors"))
    assert run(resumed, 8, initial_epoch=4) == whole[3:]


def test_reduce_on_plateau_names_the_missing_key():
    with pytest.raises(
        ValueError, match=r"ReduceLROnPlateau monitors 'val_acc'.*Available keys: \['loss', 'time'\]\. "
    ):
        _fit(_model(), [ReduceLROnPlateau(monitor="val_acc")], epochs=1)


def test_bad_arguments_are_named_with_the_fix():
    with pytest.raises(ValueError, match=r"`step_every` must be 'epoch' .* or 'step' .*Received: step_every='batchs'"):
        StepLR(step_size=2, step_every="batchs")
    with pytest.raises(TypeError, match=r"StepLR\(...\) got an unexpected keyword argument 'step' \(did you mean "):
        StepLR(step=2)
    with pytest.raises(TypeError, match=r"missing a required argument: 'step_size'. It accepts: step_size, gamma"):
        StepLR()
    with pytest.raises(ValueError, match="remove the optimizer from its arguments"):
        StepLR(_optimizer([torch.zeros(1)]), step_size=2)
    with pytest.raises(ValueError, match=r"`milestones` must have one element fewer than `schedulers` \(2\)"):
        SequentialLR([StepLR(step_size=1), StepLR(step_size=2)], milestones=[1, 2])
    with pytest.raises(ValueError, match=r"cannot hold a ReduceLROnPlateau \(at schedulers\[0\]\)"):
        ChainedScheduler([ReduceLROnPlateau()])
    with pytest.raises(ValueError, match=r"schedulers\[1\] has step_every='step'.*pass step_every='step' to Seq"):
        SequentialLR([StepLR(step_size=1), LinearLR(step_every="step")], milestones=[1])
    with pytest.raises(TypeError, match="`schedulers` must be a non-empty list"):
        ChainedScheduler([])
    with pytest.raises(ValueError, match=r"`factor` must be a number in \(0, 1\). Received: factor=2"):
        ReduceLROnPlateau(factor=2)
    with pytest.raises(ValueError, match=r"`mode` must be 'min', 'max' or 'auto'. Received: mode='maximum'"):
        ReduceLROnPlateau(mode="maximum")


def test_a_factory_must_return_a_scheduler():
    with pytest.raises(TypeError, match=r"factory returned a dict, which has no step, state_dict, load_state_dict"):
        _fit(_model(), [LRScheduler(lambda optimizer: {})], epochs=1)


def test_a_state_from_another_kind_of_scheduler_is_refused():
    trained = StepLR(step_size=1)
    _fit(_model(), [trained], epochs=1)
    with pytest.raises(ValueError, match=r"saved by 'StepLR', not by CosineAnnealingLR"):
        CosineAnnealingLR(T_max=3).load_state_dict(trained.state_dict())


def test_an_unstorable_function_attribute_is_reported():
    class Scale:
        def __init__(self):
            self.table = object()

        def __call__(self, epoch):
            return 1.0

    scheduler = LambdaLR(Scale())
    _fit(_model(), [scheduler], epochs=1)
    with pytest.raises(TypeError, match=r"type object at scheduler\['lr_lambdas'\]\[0\]\['table'\]"):
        scheduler.state_dict()


def test_repr_shows_the_arguments():
    assert repr(StepLR(3, gamma=0.5)) == "StepLR(3, gamma=0.5, step_every='epoch')"
    assert repr(LRScheduler(Halving, step_every="step")) == "LRScheduler(Halving, step_every='step')"
    assert math.isclose(ReduceLROnPlateau(factor=0.5).options["factor"], 0.5)
