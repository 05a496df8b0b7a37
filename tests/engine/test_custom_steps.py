"""Custom train/evaluate steps, epoch functions and named optimizers, on real training."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

from tests.learning_rates import LearningRates
from trainwell import Callback, Model, OptimizerGroup, StepOutputs, set_seeds
from trainwell.storage.files import decode_state, encode_state

_G = torch.Generator().manual_seed(0)
X = torch.randn(100, 5, generator=_G)
Y = (X[:, 0] + X[:, 1] > 0).long()


def classifier() -> nn.Module:
    return nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Linear(16, 2))


def plain_step(ctx, batch):
    """The default step written by hand: forward, loss, backward, optimizer."""
    x, y = batch
    with ctx.autocast():
        y_pred = ctx.network(x)
        loss = ctx.loss_function(y_pred, y)
    ctx.backward(loss)
    ctx.optimizer_step(ctx.optimizer)
    return {"loss": loss, "y_pred": y_pred, "y_true": y}


def eval_step(ctx, batch):
    x, y = batch
    y_pred = ctx.network(x)
    return {"loss": ctx.loss_function(y_pred, y), "y_pred": y_pred, "y_true": y}


def test_a_hand_written_step_trains_exactly_like_the_default_one():
    def run(**steps):
        set_seeds(1)
        model = Model(classifier(), "sgd", "cross_entropy", batch_metrics=["accuracy"], epoch_metrics=["f1"], **steps)
        history = model.fit(X, Y, validation_data=(X, Y), epochs=2, batch_size=16, verbose=False)
        return history, model.get_weight_copies()

    default_history, default_weights = run()
    custom_history, custom_weights = run(train_step=plain_step, evaluate_step=eval_step)
    for default, custom in zip(default_history, custom_history):
        for key in ("loss", "acc", "fscore_macro", "val_loss", "val_acc", "val_fscore_macro"):
            assert custom[key] == pytest.approx(default[key], rel=1e-6), key
    for name, tensor in default_weights.items():
        torch.testing.assert_close(custom_weights[name], tensor)


def test_returned_scalars_are_averaged_weighted_by_batch_size_and_passed_to_callbacks():
    seen = []

    def step(ctx, batch):
        x, _ = batch
        # A value whose weighted mean over the epoch is known: the mean of x[:, 0] over all samples.
        ctx.optimizer_step("optimizer")  # nothing to apply, but exercised
        return {"mean_x0": x[:, 0].mean(), "constant": 2.0}

    class Seen(Callback):
        def on_train_batch_end(self, batch_number, logs):
            seen.append((logs["size"], logs["mean_x0"], logs["constant"]))

    model = Model(classifier(), "sgd", None, train_step=step)
    history = model.fit(X, Y, epochs=1, batch_size=32, verbose=False, callbacks=[Seen()])  # sizes 32, 32, 32, 4
    assert history[0]["mean_x0"] == pytest.approx(float(X[:, 0].mean()), rel=1e-6)
    assert history[0]["constant"] == 2.0
    assert [size for size, _, _ in seen] == [32, 32, 32, 4]


def test_a_subclass_method_is_the_step_and_epoch_functions_add_epoch_values():
    calls = []

    class Counting(Model):
        def train_step(self, ctx, batch):
            return plain_step(ctx, batch)

        def train_epoch_start(self, ctx):
            calls.append(("start", ctx.phase, ctx.epoch))

        def train_epoch_end(self, ctx, outputs: StepOutputs):
            calls.append(("end", ctx.phase, ctx.epoch))
            # An epoch-level value computed from the steps' outputs: accuracy over the epoch.
            hits = (outputs["y_pred"].argmax(1) == outputs["y_true"]).sum()
            return {"epoch_acc": hits / outputs.size, "batches": len(outputs)}

    set_seeds(2)
    model = Counting(classifier(), "adam", "cross_entropy", batch_metrics=["accuracy"])
    history = model.fit(
        X,
        Y,
        validation_data=(X[:40], Y[:40]),
        epochs=2,
        batch_size=25,
        verbose=False,
    )
    assert calls == [("start", "train", 1), ("end", "train", 1), ("start", "train", 2), ("end", "train", 2)]
    for epoch in history:
        # The epoch-level accuracy is the batch-weighted one the tracker computed (a percentage there).
        assert epoch["epoch_acc"] * 100 == pytest.approx(epoch["acc"], rel=1e-6)
        assert epoch["batches"] == 4
        assert "val_epoch_acc" not in epoch  # no valid_epoch_end given


def test_valid_and_test_epoch_functions_get_their_phase():
    phases = []

    def end(ctx, outputs):
        phases.append(ctx.phase)
        return {"count": outputs.size}

    model = Model(
        classifier(),
        "sgd",
        "cross_entropy",
        epoch_functions={"valid_epoch_end": end, "test_epoch_end": end},
    )
    history = model.fit(X, Y, validation_data=(X[:30], Y[:30]), epochs=1, verbose=False)
    assert history[0]["val_count"] == 30 and "count" not in history[0]
    logs = model.evaluate(X[:20], Y[:20], verbose=False, return_dict_format=True)
    assert logs["test_count"] == 20
    assert phases == ["valid", "test"]


def test_named_optimizers_are_built_per_sub_network_logged_and_saved(tmp_path):
    network = nn.ModuleDict({"encoder": nn.Linear(5, 4), "head": nn.Linear(4, 2)})

    def step(ctx, batch):
        x, y = batch
        y_pred = ctx.networks["head"](torch.relu(ctx.networks["encoder"](x)))
        loss = F.cross_entropy(y_pred, y)
        ctx.backward(loss)
        ctx.optimizer_step("encoder")
        ctx.optimizer_step(ctx.optimizers["head"])
        return {"loss": loss}

    model = Model(network, {"encoder": "adam", "head": {"optim": "sgd", "lr": 0.5}}, None, train_step=step)
    assert isinstance(model.optimizer, OptimizerGroup)
    rates = LearningRates()
    history = model.fit(X, Y, epochs=3, batch_size=10, verbose=False, callbacks=[rates])
    assert not any(key.startswith("lr") for key in history[0])  # the logs carry no lr (Poutyne's contract)
    assert rates.epochs[0] == {"lr_encoder": 0.001, "lr_head": 0.5}  # one rate per named optimizer, for loggers
    assert history[-1]["loss"] < history[0]["loss"]
    path = tmp_path / "optimizers.safetensors"
    model.save_optimizer_state(path)
    other = Model(
        nn.ModuleDict({"encoder": nn.Linear(5, 4), "head": nn.Linear(4, 2)}), {"encoder": "adam", "head": "sgd"}, None
    )
    other.load_optimizer_state(path)
    saved = model.optimizer["encoder"].state_dict()["state"][0]["exp_avg"]
    torch.testing.assert_close(other.optimizer["encoder"].state_dict()["state"][0]["exp_avg"], saved)
    assert other.optimizer["head"].param_groups[0]["lr"] == 0.5


class StopAndSnapshot(Callback):
    def __init__(self, epoch):
        self.epoch, self.snapshot = epoch, None

    def on_epoch_end(self, epoch_number, logs):
        if epoch_number == self.epoch:
            skeleton, tensors = encode_state(self.model.training_state())
            self.snapshot = decode_state(skeleton, tensors)
            raise KeyboardInterrupt


def _gan_like_model():
    set_seeds(3)
    network = nn.ModuleDict({"a": nn.Linear(5, 2), "b": nn.Sequential(nn.Dropout(0.2), nn.Linear(5, 2))})

    def step(ctx, batch):
        x, y = batch
        losses = {}
        for name in ("a", "b"):
            loss = F.cross_entropy(ctx.networks[name](x), y)
            ctx.backward(loss)
            ctx.optimizer_step(name)
            losses[f"loss_{name}"] = loss
        return losses

    return Model(network, {"a": "adam", "b": {"optim": "sgd", "lr": 0.1, "momentum": 0.9}}, None, train_step=step)


def test_every_optimizer_state_is_checkpointed_and_a_resumed_custom_run_is_exact():
    loader_data = TensorDataset(X, Y)

    def fit(model, initial_epoch=1, callbacks=()):
        loader = DataLoader(loader_data, batch_size=16, shuffle=True)
        return model.fit_generator(
            loader, epochs=4, initial_epoch=initial_epoch, verbose=False, callbacks=list(callbacks)
        )

    reference = _gan_like_model()
    full_history = fit(reference)

    stopper = StopAndSnapshot(2)
    with pytest.raises(KeyboardInterrupt):
        fit(_gan_like_model(), callbacks=[stopper])
    assert set(stopper.snapshot["optimizer"]) == {"a", "b"}
    resumed = _gan_like_model()
    torch.rand(3)  # another process: other generator states until the restore
    next_epoch = resumed.restore_training_state(stopper.snapshot)
    rest = fit(resumed, initial_epoch=next_epoch)
    assert [epoch["loss_a"] for epoch in rest] == [epoch["loss_a"] for epoch in full_history[2:]]
    for name, tensor in reference.get_weight_copies().items():
        assert torch.equal(resumed.get_weight_copies()[name], tensor), name


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"train_step": 3}, TypeError, r"`train_step` must be a function.*int"),
        ({"epoch_functions": {"train_end": print}}, ValueError, r"Unknown key 'train_end' in `epoch_functions`"),
        ({"epoch_functions": {"train_epoch_end": 1}}, TypeError, r"epoch_functions\['train_epoch_end'\]"),
    ],
)
def test_bad_step_arguments_name_the_argument(kwargs, error, match):
    with pytest.raises(error, match=match):
        Model(classifier(), "sgd", "cross_entropy", **kwargs)


def test_bad_step_returns_are_explained():
    def returns_list(ctx, batch):
        return [1.0]

    model = Model(classifier(), "sgd", None, train_step=returns_list)
    with pytest.raises(TypeError, match="must return a dict of values to log.*list"):
        model.fit(X, Y, epochs=1, verbose=False)

    def changing(ctx, batch):
        return {"a": 1.0} if ctx.batch_number == 1 else {"b": 1.0}

    with pytest.raises(ValueError, match=r"returned the values \['b'\] after returning \['a'\]"):
        Model(classifier(), "sgd", None, train_step=changing).fit(X, Y, epochs=1, verbose=False)

    def no_predictions(ctx, batch):
        return {"loss": 1.0}

    with pytest.raises(ValueError, match="no 'y_pred' and 'y_true'"):
        Model(classifier(), "sgd", None, batch_metrics=["accuracy"], train_step=no_predictions).fit(
            X, Y, epochs=1, verbose=False
        )
    with pytest.raises(ValueError, match="`batches_per_step` must be 1 with a custom train_step"):
        Model(classifier(), "sgd", None, train_step=no_predictions).fit(
            X, Y, epochs=1, batches_per_step=2, verbose=False
        )


def test_named_optimizer_errors():
    network = nn.ModuleDict({"a": nn.Linear(2, 2)})
    with pytest.raises(ValueError, match=r"no such sub-module \(its children: \['a'\]\)"):
        Model(network, {"a": "sgd", "missing": "adam"}, None)
    shared = torch.optim.SGD(network.parameters(), lr=0.1)
    other = torch.optim.SGD(network.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="both hold the same parameter"):
        Model(network, {"x": shared, "y": other}, None)
    model = Model(network, {"a": "sgd"}, None)
    with pytest.raises(KeyError, match="No optimizer named 'b'"):
        model._steps.context.optimizer_step("b")


def test_the_gan_example_logs_both_losses_and_the_generator_improves():
    from examples.gan import main

    history, before, after = main(epochs=20, verbose=False)
    assert len(history) == 20
    for epoch in history:
        assert math.isfinite(epoch["d_loss"]) and math.isfinite(epoch["g_loss"])
        assert 0.0 <= epoch["d_real_acc"] <= 1.0
        assert "real_called_real" not in epoch  # a non-scalar output is kept for the epoch end, not logged
    # The distance between generated and real points shrinks several times over.
    assert after < before / 3
    # The adversarial game settles near its equilibrium: D's loss approaches 2 ln 2.
    assert abs(history[-1]["d_loss"] - 2 * math.log(2)) < 0.15


class _ReadsGradients(Callback):
    """Reads the gradients at on_train_batch_end, as Poutyne lets a callback do (e.g. to log their norm)."""

    def __init__(self):
        self.seen = []

    def on_train_batch_end(self, batch_number, logs):
        self.seen.append({name: p.grad is not None for name, p in self.model.network.named_parameters()})


def _gan_like_step(ctx, batch):
    """Two updates of one optimizer in a batch, then one of another whose loss also reaches the first's
    parameters (left there, not zeroed: they join that optimizer's next update, with or without a reader)."""
    x, y = batch
    encoder, head = ctx.networks["encoder"], ctx.networks["head"]
    for _ in range(2):
        loss = F.cross_entropy(head(torch.relu(encoder(x)).detach()), y)
        ctx.backward(loss)
        ctx.optimizer_step("head")
    other = F.cross_entropy(head(torch.relu(encoder(x))), 1 - y)
    ctx.backward(other)
    ctx.optimizer_step("encoder")
    return {"loss": loss}


def _gan_like_fit(callbacks):
    torch.manual_seed(0)
    network = nn.ModuleDict({"encoder": nn.Linear(5, 4), "head": nn.Linear(4, 2)})
    optimizers = {"encoder": {"optim": "sgd", "lr": 0.1, "momentum": 0.9}, "head": {"optim": "sgd", "lr": 0.1}}
    model = Model(network, optimizers, None, train_step=_gan_like_step)
    model.fit(X, Y, epochs=2, batch_size=25, verbose=False, callbacks=callbacks)
    return model


def test_a_custom_step_trains_the_same_with_or_without_a_gradient_reader():
    plain = _gan_like_fit([])
    reader = _ReadsGradients()
    read = _gan_like_fit([reader])
    for name, value in read.network.state_dict().items():
        assert torch.equal(value, plain.network.state_dict()[name]), name
    # The reader saw the last updates' gradients: the encoder's, and the head's from the encoder's loss.
    assert len(reader.seen) == 8 and all(all(seen.values()) for seen in reader.seen)
