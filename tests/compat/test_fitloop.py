"""fitloop's README runs on trainwell as written (imports aside), and the dialect fixes what fitloop got wrong."""

# ruff: noqa: N806 (the README's names: X)

from __future__ import annotations

import copy

import pytest
import torch
from safetensors.torch import load_file
from torch import nn
from torch.optim import SGD, Adam
from torch.utils.data import DataLoader, TensorDataset

from tests.compat.conftest import accuracy_of, digits_loaders, mlp
from tests.sync_guard import SyncGuard
from trainwell.compat.fitloop import FitLoop


def configure_optimizer(floop):
    floop.optimizer.param_groups.clear()
    floop.optimizer.add_param_group({"params": floop.model.parameters()})


# The README's stage functions, as written.
def train_step(state):
    X, y = state.batch
    y_ = state.model(X)

    loss = state.loss_function(y_, y)

    # Calculate gradients and backprop
    loss.backward()
    state.optimizer.step()

    running_loss = loss.item() * state.batch_size
    running_corr = (y_.argmax(dim=1) == y).sum().float().item()

    return {"running_loss": running_loss, "running_corr": running_corr}


def common_step(state):  # the README's valid_step and test_step: the train step without backward
    X, y = state.batch
    y_ = state.model(X)
    loss = state.loss_function(y_, y)
    return {
        "running_loss": loss.item() * state.batch_size,
        "running_corr": (y_.argmax(dim=1) == y).sum().float().item(),
    }


def common_epoch_end(state):
    # Values returned are pytorch Tensors
    running_losses = state["running_loss"]
    running_corrs = state["running_corr"]

    # state.size : number of samples in the dataset
    loss = running_losses.sum().item() / state.size
    accuracy = running_corrs.sum().item() / state.size

    return {"loss": loss, "accuracy": accuracy}


def readme_fdict(model, train_dl, valid_dl, test_dl, **more):
    fdict = {
        "model": model,
        "loss_function": nn.CrossEntropyLoss(),
        "optimizer": Adam(model.parameters(), lr=1e-2),
        # DataLoaders
        "train_dl": train_dl,
        "valid_dl": valid_dl,
        "test_dl": test_dl,
        # Batch Step Stage Functions
        "train_step": train_step,
        "valid_step": common_step,
        "test_step": common_step,
        # Epoch End Stage Functions
        "train_epoch_end": common_epoch_end,
        "valid_epoch_end": common_epoch_end,
        "test_epoch_end": common_epoch_end,
        # Model Evaluation
        "criteria": "accuracy",  # Returned in valid_epoch_end stage function dict
        # Model Preservation
        "save_to_disk": True,  # Will save pretrained and best model to disk
        # Param Restoration/Update
        "configure_optimizer": configure_optimizer,
        "device": "cpu",
    }
    fdict.update(more)
    return fdict


def test_the_readme_sample_trains_and_keeps_its_weights_without_validation():
    torch.manual_seed(0)
    train_dl, _, _ = digits_loaders()
    model = mlp()

    params = model.parameters()

    fdict = {
        "model": model,
        "loss_function": nn.CrossEntropyLoss(),
        "optimizer": Adam(params),
        "train_dl": train_dl,
        "configure_optimizer": configure_optimizer,
    }

    trainer = FitLoop(**fdict)
    before = copy.deepcopy(model.state_dict())
    trainer.fit(epochs=10)

    losses = trainer.M.train["loss"][0]
    assert len(losses) == 10 and losses[-1] < 0.8 * losses[0]  # Adam's default lr, 1e-3: slow but sure
    assert trainer.M.train["accuracy"][0][-1] > 0.8
    # fitloop's load_best=True (the default) reloaded the weights the fit began with when there was no
    # validation to choose a best epoch: ten epochs thrown away. Here the trained weights stay.
    assert not torch.equal(before["0.weight"], model.state_dict()["0.weight"])
    assert accuracy_of(model, train_dl.dataset) > 0.8
    assert len(trainer.M.train.batch_step["running_loss"][0]) == 10 * len(train_dl)


def test_the_readme_fdict_trains_validates_tests_and_restores_the_best_model(tmp_path):
    torch.manual_seed(0)
    train_dl, valid_dl, test_dl = digits_loaders()
    model = mlp()
    trainer = FitLoop(**readme_fdict(model, train_dl, valid_dl, test_dl))
    history = trainer.fit(epochs=6)

    valid_accuracy = trainer.M.valid["accuracy"][0]
    assert len(valid_accuracy) == 6 and trainer.epoch_num == 6
    assert [entry["val_accuracy"] for entry in history] == pytest.approx(list(valid_accuracy))
    assert trainer.best_score == pytest.approx(max(valid_accuracy))
    # The best epoch's weights were restored, and they are the file on disk (safetensors, no pickle).
    assert accuracy_of(model, valid_dl.dataset) == pytest.approx(max(valid_accuracy))
    best = load_file(tmp_path / "models" / trainer.best_model_name)
    assert all(torch.equal(best[name], tensor) for name, tensor in model.state_dict().items())
    pretrained = load_file(tmp_path / "models" / trainer.pretrained_model_name)
    assert set(pretrained) == set(best)

    results = trainer.test()
    assert results["accuracy"] == pytest.approx(accuracy_of(model, test_dl.dataset))
    assert trainer.M.test_runs == 1 and trainer.M.test["accuracy"][0].tolist() == [pytest.approx(results["accuracy"])]

    figure = trainer.plot("loss", path=tmp_path / "loss.png")
    assert (tmp_path / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    lines = figure.axes[0].get_lines()
    assert [line.get_label() for line in lines] == ["train", "validation"]
    assert lines[1].get_ydata().tolist() == pytest.approx(list(trainer.M.valid["loss"][0]))
    trainer.plot("running_loss", path=tmp_path / "batches.png")  # a batch-step value, against the batches
    assert (tmp_path / "batches.png").exists()


def test_best_score_and_runs_carry_over_fits_until_reset():
    torch.manual_seed(0)
    train_dl, valid_dl, test_dl = digits_loaders()
    model = mlp()
    calls = []
    trainer = FitLoop(**readme_fdict(model, train_dl, valid_dl, test_dl, save_to_disk=False,
                                     configure_optimizer=lambda floop: calls.append(floop)))  # fmt: skip
    pretrained = copy.deepcopy(model.state_dict())
    trainer.fit(epochs=2, load_best=False)
    trainer.fit(epochs=2)
    assert trainer.epoch_num == 4 and trainer.M.train_runs == 2
    assert [len(run) for run in trainer.M.valid["accuracy"]] == [2, 2]
    assert trainer.best_score == pytest.approx(max(max(run) for run in trainer.M.valid["accuracy"]))
    assert calls == [trainer]  # after the one load_best
    trainer.reset()
    assert trainer.epoch_num == 0 and trainer.M.train_runs == 0 and trainer.best_score == float("-inf")
    assert all(torch.equal(pretrained[name], tensor) for name, tensor in model.state_dict().items())
    assert trainer.optimizer.state == {} and len(calls) == 2


def test_sanity_check_and_profiler_leave_everything_as_it_was():
    torch.manual_seed(0)
    train_dl, valid_dl, test_dl = digits_loaders()
    model = mlp()
    trainer = FitLoop(**readme_fdict(model, train_dl, valid_dl, test_dl, save_to_disk=False))
    trainer.fit(epochs=1, no_print=True)
    weights = copy.deepcopy(model.state_dict())
    optimizer_state = copy.deepcopy(trainer.optimizer.state_dict())
    rng = torch.get_rng_state()

    checked = trainer.run_sanity_check(steps=2)
    assert len(checked["fit"]) == 1 and set(checked["test"]) == {"loss", "accuracy"}
    rows = trainer.run_profiler(steps=3, print_outcome=False)
    assert [row["section"] for row in rows][:3] == ["data", "copy", "forward"]
    assert sum(row["percent"] for row in rows) == pytest.approx(100, abs=0.5)

    assert all(torch.equal(weights[name], tensor) for name, tensor in model.state_dict().items())
    after = trainer.optimizer.state_dict()
    assert all(torch.equal(optimizer_state["state"][k]["exp_avg"], v["exp_avg"]) for k, v in after["state"].items())
    assert torch.equal(rng, torch.get_rng_state())
    assert trainer.epoch_num == 1 and trainer.M.train_runs == 1 and len(trainer.M.train["loss"][0]) == 1


def test_the_scheduler_is_stepped_every_epoch():
    train_dl, valid_dl, _ = digits_loaders(train=128, valid=64)
    model = mlp()
    optimizer = SGD(model.parameters(), lr=0.1)
    trainer = FitLoop(model, optimizer, nn.CrossEntropyLoss(), train_dl, valid_dl, device="cpu",
                      lr_scheduler=torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5))  # fmt: skip
    trainer.fit(epochs=3, no_print=True)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.1 * 0.5**3)  # fitloop never stepped it: 0.1

    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max", patience=0, factor=0.5)
    trainer.lr_scheduler = plateau
    trainer.fit(epochs=2, no_print=True)
    assert plateau.best == pytest.approx(max(trainer.M.valid["accuracy"][-1]))  # it watched val_accuracy


class RecordingSGD(SGD):
    """An SGD that notes, at every zero_grad, whether the network was training."""

    def __init__(self, network, **kwargs):
        super().__init__(network.parameters(), **kwargs)
        self.network = network
        self.modes = []

    def zero_grad(self, set_to_none=True):
        self.modes.append(self.network.training)
        super().zero_grad(set_to_none=set_to_none)


def test_validation_never_clears_the_gradients():
    train_dl, valid_dl, _ = digits_loaders(train=128, valid=128, batch_size=32)
    model = mlp()
    optimizer = RecordingSGD(model, lr=0.1)
    trainer = FitLoop(model, optimizer, nn.CrossEntropyLoss(), train_dl, valid_dl, device="cpu", sanity_check=False)
    trainer.fit(epochs=2, no_print=True)
    # One clear per training step (after it), none in validation (fitloop cleared before every batch, in eval too).
    assert optimizer.modes == [True] * (2 * len(train_dl))


def test_save_and_load_continue_the_run_exactly(tmp_path):
    def make():
        torch.manual_seed(0)
        train_dl, valid_dl, _ = digits_loaders(train=256, valid=128)
        model = mlp()
        optimizer = Adam(model.parameters(), lr=1e-2)
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.9)
        return FitLoop(model, optimizer, nn.CrossEntropyLoss(), train_dl, valid_dl, lr_scheduler=scheduler,
                       device="cpu", save_path=tmp_path / "models")  # fmt: skip

    straight = make()
    straight.fit(epochs=2, no_print=True, load_best=False)
    straight.save(tmp_path / "state.safetensors")
    straight.fit(epochs=2, no_print=True, load_best=False)

    resumed = make()
    resumed.load(tmp_path / "state.safetensors")
    assert resumed.epoch_num == 2 and resumed.best_score == pytest.approx(max(straight.M.valid["accuracy"][0]))
    resumed.fit(epochs=2, no_print=True, load_best=False)
    assert resumed.epoch_num == 4
    for name, tensor in straight.model.state_dict().items():
        assert torch.equal(tensor, resumed.model.state_dict()[name]), name
    assert resumed.optimizer.param_groups[0]["lr"] == straight.optimizer.param_groups[0]["lr"]

    straight.save(tmp_path / "weights.safetensors", only_model=True)
    assert set(load_file(tmp_path / "weights.safetensors")) == set(straight.model.state_dict())
    fresh = make()
    fresh.load(tmp_path / "weights.safetensors")
    assert torch.equal(fresh.model.state_dict()["0.weight"], straight.model.state_dict()["0.weight"])


def test_stage_functions_read_the_state_as_fitloop_describes():
    seen = {}
    x, y = torch.randn(40, 5), torch.randint(0, 2, (40,)).to(torch.int32)
    loader = DataLoader(TensorDataset(x.double(), y), batch_size=16)

    def step(state):
        data, targets = state.batch
        seen.setdefault("types", (data.dtype, targets.dtype, state.batch_size, state.batches, state.phase))
        with pytest.raises(KeyError, match=r"read in the epoch-end function \(train_epoch_end\)"):
            state["running_loss"]
        loss = state.loss_function(state.model(data), targets)
        loss.backward()
        state.optimizer.step()
        return {"running_loss": loss.detach() * state.batch_size, "count": state.batch_size}

    def epoch_end(state):
        seen.setdefault("sizes", (state["count"].tolist(), state.size, state.epoch_num))
        return {"loss": state["running_loss"].sum() / state.size}

    model = nn.Linear(5, 2)
    trainer = FitLoop(model, SGD(model.parameters(), lr=0.1), nn.CrossEntropyLoss(), loader, train_step=step,
                      train_epoch_end=epoch_end, device="cpu", sanity_check=False)  # fmt: skip
    trainer.fit(epochs=2, no_print=True)
    assert seen["types"] == (torch.float32, torch.int64, 16, 3, "train")
    assert seen["sizes"] == ([16.0, 16.0, 8.0], 40, 0)
    assert trainer.M.train.batch_step["count"][0].tolist() == [16, 16, 8] * 2


def _syncs(samples):
    x, y = torch.randn(samples, 5), torch.randint(0, 3, (samples,))
    loader = DataLoader(TensorDataset(x, y), batch_size=4)
    model = nn.Linear(5, 3)
    trainer = FitLoop(model, SGD(model.parameters(), lr=0.1), nn.CrossEntropyLoss(), loader, loader, device="cpu")
    with SyncGuard(strict=False) as guard:
        trainer.fit(epochs=1, no_print=True)
    return len(guard.calls)


def test_the_default_steps_cost_no_host_sync_per_batch():
    # fitloop's default steps called .item() twice a batch; these keep the sums on the device.
    assert _syncs(16) == _syncs(160)


def test_arguments_are_checked_with_the_fix():
    model = nn.Linear(2, 2)
    with pytest.raises(ValueError, match=r"`criteria_direction` must be 1 .* Received: criteria_direction=0"):
        FitLoop(model, SGD(model.parameters(), lr=0.1), nn.MSELoss(), criteria_direction=0)
    trainer = FitLoop(model, SGD(model.parameters(), lr=0.1), nn.MSELoss(), device="cpu")
    with pytest.raises(ValueError, match=r"`train_dl` is not set"):
        trainer.fit()
    with pytest.raises(ValueError, match=r"`epochs` must be a positive int"):
        trainer.fit(epochs=0, train_dl=[(torch.zeros(1, 2), torch.zeros(1, 2))])
