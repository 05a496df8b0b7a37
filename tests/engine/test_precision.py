"""Mixed precision on the CPU: bf16 autocast, fp16 with a gradient scaler, the scaler's state resumed."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from trainwell import Callback, Model, set_seeds
from trainwell.engine.precision import MixedPrecision, normalize_precision
from trainwell.storage.files import decode_state, encode_state

_G = torch.Generator().manual_seed(0)
X = torch.randn(256, 8, generator=_G)
Y = (X[:, :2].sum(1) > 0).long()


class DtypeProbe(Callback):
    """Records the dtype of the network's output during training."""

    def __init__(self):
        self.dtypes = set()

    def on_train_begin(self, logs):
        network = self.model.network
        self.handle = network.register_forward_hook(lambda module, inputs, output: self.dtypes.add(output.dtype))

    def on_train_end(self, logs):
        self.handle.remove()


def _model(precision, seed=0):
    set_seeds(seed)
    network = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 2))
    return Model(
        network, {"optim": "adam", "lr": 0.01}, "cross_entropy", batch_metrics=["accuracy"], precision=precision
    )


@pytest.mark.parametrize(
    ("precision", "dtype"), [("32", torch.float32), ("bf16", torch.bfloat16), ("16", torch.float16)]
)
def test_forward_runs_in_the_precision_asked_and_training_learns(precision, dtype):
    model = _model(precision)
    probe = DtypeProbe()
    history = model.fit(X, Y, epochs=4, batch_size=32, verbose=False, callbacks=[probe])
    assert probe.dtypes == {dtype}
    # The weights stay float32 (autocast computes in the low precision, the master copy is full).
    assert all(parameter.dtype == torch.float32 for parameter in model.network.parameters())
    assert history[-1]["acc"] > 85
    assert ("skipped_steps" in history[0]) == (precision == "16")


def test_bf16_reaches_the_accuracy_band_of_fp32_on_the_digits_demo():
    from examples.digits import load_data, make_network

    x_train, y_train, x_valid, y_valid, _, _ = load_data()
    accuracies = {}
    for precision in ("32", "bf16"):
        set_seeds(42)
        model = Model(make_network(), "adam", "cross_entropy", batch_metrics=["accuracy"], precision=precision)
        model.fit(x_train, y_train, epochs=6, batch_size=32, verbose=False)
        _, accuracies[precision] = model.evaluate(x_valid, y_valid, verbose=False)
    assert accuracies["32"] > 90
    assert abs(accuracies["bf16"] - accuracies["32"]) < 4, accuracies


def test_fp16_overflow_steps_are_skipped_and_counted():
    model = _model("16")
    before = model.get_weight_copies()
    # The first batch's activations overflow float16 (inf loss, inf gradients); the others are fine.
    batches = [(torch.full((32, 8), 6e4), Y[:32])] + [(X[i : i + 32], Y[i : i + 32]) for i in range(0, 256, 32)]
    probe = []

    class AfterFirst(Callback):
        def on_train_batch_end(self, batch_number, logs):
            if batch_number == 1:
                probe.append(self.model.get_weight_copies())

    history = model.fit_generator(batches, epochs=1, verbose=False, callbacks=[AfterFirst()])
    assert history[0]["skipped_steps"] == 1
    # The skipped step left the weights alone; the later steps trained them.
    for name, tensor in before.items():
        assert torch.equal(probe[0][name], tensor), name
    assert not torch.equal(model.get_weight_copies()["0.weight"], before["0.weight"])
    assert all(torch.isfinite(parameter).all() for parameter in model.network.parameters())
    assert model._steps.precision.scaler.get_scale() < 2.0**16  # backed off from its initial value


def test_the_scaler_state_joins_the_training_state_and_is_restored():
    class Snap(Callback):
        def on_epoch_end(self, epoch_number, logs):
            if epoch_number == 1:
                skeleton, tensors = encode_state(self.model.training_state())
                self.snapshot = decode_state(skeleton, tensors)
                raise KeyboardInterrupt

    reference = _model("16")
    full = reference.fit(X, Y, epochs=3, batch_size=16, verbose=False)
    snap = Snap()
    with pytest.raises(KeyboardInterrupt):
        _model("16").fit(X, Y, epochs=3, batch_size=16, verbose=False, callbacks=[snap])
    scaler_state = snap.snapshot["steps"]["precision"]
    assert scaler_state["scale"] > 0 and "_growth_tracker" in scaler_state
    resumed = _model("16", seed=9)
    rest = resumed.fit(
        X, Y, epochs=3, batch_size=16, verbose=False, initial_epoch=resumed.restore_training_state(snap.snapshot)
    )
    assert resumed._steps.precision.scaler.get_scale() == reference._steps.precision.scaler.get_scale()
    assert [epoch["loss"] for epoch in rest] == [epoch["loss"] for epoch in full[1:]]


def test_precision_names():
    assert [normalize_precision(name) for name in ("32-true", 32, "bf16-mixed", "16-mixed", "fp16")] == [
        "32",
        "32",
        "bf16",
        "16",
        "16",
    ]
    with pytest.raises(ValueError, match=r"`precision` must be '32', 'bf16' or '16'.*precision='64'"):
        Model(nn.Linear(2, 2), "sgd", "mse", precision="64")
    assert MixedPrecision("32").epoch_logs() == {}


def test_an_experiment_passes_precision_through_and_resumes_fp16_exactly(tmp_path):
    from trainwell import Experiment

    def experiment(directory):
        set_seeds(4)
        network = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 2))
        return Experiment(directory, network, task="classif", optimizer="adam", precision="16")

    options = {"validation_data": (X[:64], Y[:64]), "batch_size": 32, "verbose": False, "disable_tensorboard": True}
    uninterrupted = experiment(tmp_path / "a")
    uninterrupted.train_data(X, Y, epochs=3, **options)
    experiment(tmp_path / "b").train_data(X, Y, epochs=2, **options)
    resumed = experiment(tmp_path / "b")  # a new process would build the same objects
    resumed.train_data(X, Y, epochs=3, **options)
    assert resumed.model._steps.precision.scaler.get_scale() == uninterrupted.model._steps.precision.scaler.get_scale()
    for name, tensor in uninterrupted.model.get_weight_copies().items():
        assert torch.equal(resumed.model.get_weight_copies()[name], tensor), name
    assert "skipped_steps" in (tmp_path / "b" / "log.tsv").read_text().splitlines()[0]
