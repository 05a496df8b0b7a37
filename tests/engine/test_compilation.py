"""compile=True: torch.compile results match eager ones; a failing compilation falls back with one warning."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

from trainwell import Model, set_seeds
from trainwell.engine.compilation import CompiledNetwork

_G = torch.Generator().manual_seed(0)
X = torch.randn(128, 6, generator=_G)
Y = (X[:, 0] > 0).long()


def _fit(compile):
    set_seeds(0)
    network = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 2))
    model = Model(network, "sgd", "cross_entropy", batch_metrics=["accuracy"], compile=compile)
    history = model.fit(X, Y, validation_data=(X, Y), epochs=2, batch_size=32, verbose=False)
    return model, history


def test_a_compiled_network_gives_the_eager_results():
    # aot_eager traces through dynamo and AOTAutograd like the default backend, without a C++ compiler.
    eager, eager_history = _fit(False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        compiled, compiled_history = _fit({"backend": "aot_eager"})
    # No fallback: compilation really happened (other warnings, e.g. a finalizer's, are not ours to judge).
    assert not [w for w in caught if "torch.compile failed" in str(w.message)]
    assert isinstance(compiled._steps.network, CompiledNetwork) and compiled._steps.network.failed is None
    for ours, theirs in zip(compiled_history, eager_history):
        assert ours["loss"] == pytest.approx(theirs["loss"], rel=1e-5)
        assert ours["val_acc"] == theirs["val_acc"]
    for name, tensor in eager.get_weight_copies().items():
        torch.testing.assert_close(compiled.get_weight_copies()[name], tensor, rtol=1e-5, atol=1e-6)
    # The state dict keys are the network's own, not the wrapper's.
    assert set(compiled.get_weights()) == {"0.weight", "0.bias", "2.weight", "2.bias"}


def _failing_backend(graph_module, example_inputs):
    raise RuntimeError("this backend cannot compile anything")


@pytest.mark.parametrize("backend", [_failing_backend, "no-such-backend"])
def test_a_failing_compilation_warns_once_and_trains_eagerly(backend):
    _, eager_history = _fit(False)
    with pytest.warns(RuntimeWarning, match="torch.compile failed, so the network runs eagerly") as record:
        _, history = _fit({"backend": backend})
    assert len([w for w in record if "torch.compile failed" in str(w.message)]) == 1
    assert [epoch["loss"] for epoch in history] == [epoch["loss"] for epoch in eager_history]


def test_a_bug_in_the_network_is_not_hidden_by_the_fallback():
    class Broken(nn.Module):
        def forward(self, x):
            raise ValueError("bug in forward")

    model = Model(Broken(), None, "cross_entropy", compile={"backend": "aot_eager"})
    with pytest.raises(ValueError, match="bug in forward"):
        model.evaluate(X, Y, verbose=False)


def test_compile_argument_is_checked():
    with pytest.raises(TypeError, match=r"`compile` must be True, False or a dict.*compile='yes'"):
        Model(nn.Linear(2, 2), "sgd", "mse", compile="yes")
