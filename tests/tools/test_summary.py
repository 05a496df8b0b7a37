import io

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from trainwell import Model
from trainwell.data import IterableBatches
from trainwell.tools.summary import first_inputs, has_uninitialized_parameters, materialize, summary


class Net(nn.Module):
    """Hand-counted: conv 3*4*3*3 + 4 = 112, batch-norm 4 + 4 = 8, head 144*5 + 5 = 725, frozen 5*2 + 2 = 12."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU())
        self.head = nn.Linear(144, 5)
        self.frozen = nn.Linear(5, 2)
        self.frozen.requires_grad_(False)

    def forward(self, image: torch.Tensor, scale: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        hidden = self.head(self.features(image).flatten(1)) * scale
        return self.frozen(hidden), {"hidden": hidden}


def _state(network):
    return {name: tensor.clone() for name, tensor in network.state_dict().items()}


def test_numbers_match_a_hand_counted_network():
    network = Net()
    result = summary(network, (torch.randn(8, 3, 8, 8), torch.ones(1)), file=io.StringIO())
    rows = {row.name: row for row in result.rows}
    assert list(rows) == ["", "features", "features.0", "features.1", "features.2", "head", "frozen"]
    assert [row.depth for row in result.rows] == [0, 1, 2, 2, 2, 1, 1]
    assert {name: row.params for name, row in rows.items()} == {
        "": 857, "features": 120, "features.0": 112, "features.1": 8, "features.2": 0, "head": 725, "frozen": 12,
    }  # fmt: skip
    assert rows["frozen"].trainable_params == 0 and rows[""].trainable_params == 845
    assert rows["features.0"].output_shape == [8, 4, 6, 6]
    assert rows["head"].output_shape == [8, 5]
    assert rows[""].output_shape == ([8, 2], {"hidden": [8, 5]})  # a tuple holding a dict
    assert rows["features.1"].class_name == "BatchNorm2d" and rows["head"].calls == 1
    assert (result.total_params, result.trainable_params, result.non_trainable_params) == (857, 845, 12)
    assert result.param_bytes == 857 * 4
    assert result.buffer_bytes == 4 * 4 + 4 * 4 + 8  # running mean, running var (float32), batch count (int64)
    assert result.total_mb == pytest.approx((857 * 4 + 40) / 2**20)
    assert result.input_shape == ([8, 3, 8, 8], [1])


def test_the_printed_table():
    buffer = io.StringIO()
    summary(Net(), (torch.randn(2, 3, 8, 8), torch.ones(1)), depth=1, file=buffer)
    text = buffer.getvalue()
    lines = text.splitlines()
    assert lines[1].split() == ["Layer", "(type)", "Output", "shape", "Param", "#"]
    assert lines[3].split() == ["Net", "([2,", "2],", "{hidden:", "[2,", "5]})", "857"]
    assert lines[4].split() == ["features", "(Sequential)", "[2,", "4,", "6,", "6]", "120"]
    assert "features.0" not in text  # depth=1: children only
    assert "Total params: 857" in text and "Trainable params: 845" in text and "Non-trainable params: 12" in text
    assert "Total size (params + buffers): 0.0033 MB" in text


def test_dry_run_leaves_weights_statistics_and_modes_untouched():
    torch.manual_seed(0)
    network = Net()
    network.train()
    network.features[1].eval()  # a frozen batch-norm inside a network in train mode
    before = _state(network)
    summary(network, (torch.randn(8, 3, 8, 8) * 5 + 3, torch.ones(1)), file=io.StringIO())
    after = network.state_dict()
    assert all(torch.equal(before[name], after[name]) for name in before)  # batch-norm statistics too
    assert network.training and network.head.training and not network.features[1].training
    assert all(parameter.grad is None for parameter in network.parameters())


def test_dict_inputs_and_unused_modules():
    class DictNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b, self.unused = nn.Linear(2, 3), nn.Linear(4, 3), nn.Linear(1, 1)

        def forward(self, batch):
            return self.a(batch["a"]) + self.b(batch["b"])

    result = summary(DictNet(), {"a": torch.zeros(5, 2), "b": torch.zeros(5, 4)}, file=io.StringIO())
    rows = {row.name: row for row in result.rows}
    assert rows[""].output_shape == [5, 3] and rows["unused"].output_shape is None and rows["unused"].calls == 0
    assert result.total_params == 9 + 15 + 2


def test_shared_modules_are_counted_once():
    shared = nn.Linear(4, 4)
    network = nn.Sequential(shared, nn.ReLU(), shared)
    result = summary(network, torch.zeros(1, 4), file=io.StringIO())
    assert result.total_params == 20
    assert [row.name for row in result.rows] == ["", "0", "1"]  # the shared module appears once...
    assert result.rows[1].calls == 2  # ...and ran twice


def test_lazy_layers_are_materialized_by_the_summary():
    network = nn.Sequential(nn.LazyConv2d(4, 3), nn.Flatten(), nn.LazyLinear(5))
    assert has_uninitialized_parameters(network)
    result = summary(network, torch.zeros(2, 3, 8, 8), file=io.StringIO())
    assert not has_uninitialized_parameters(network)
    assert result.total_params == 112 + 725


def test_a_lazy_network_trains_end_to_end_without_any_dimension():
    torch.manual_seed(0)
    x = torch.randn(256, 3, 6, 6)
    y = (x.mean(dim=(1, 2, 3)) > 0).long()
    # Adagrad creates its state when built, so it needs shapes first: one dry run on a sample batch.
    network = nn.Sequential(nn.LazyConv2d(4, 3), nn.ReLU(), nn.Flatten(), nn.LazyLinear(2))
    materialize(network, x[:2])
    assert network[3].weight.shape == (2, 4 * 4 * 4)
    model = Model(network, {"optim": "adagrad", "lr": 0.1}, "cross_entropy", batch_metrics=["accuracy"])
    history = model.fit(x, y, epochs=6, batch_size=32, verbose=False)
    assert history[-1]["loss"] < 0.6 * history[0]["loss"] and history[-1]["acc"] > 90


def test_an_optimizer_built_before_materialization_still_trains():
    # Lazy layers are materialized in place: the optimizer keeps the very same parameter objects.
    torch.manual_seed(0)
    x = torch.randn(256, 5)
    y = (x[:, 0] - x[:, 1] > 0).long()
    network = nn.Sequential(nn.LazyLinear(16), nn.ReLU(), nn.LazyLinear(2))
    model = Model(network, {"optim": "adam", "lr": 0.01}, "cross_entropy", batch_metrics=["accuracy"])
    history = model.fit(x, y, epochs=8, batch_size=32, verbose=False)
    assert not has_uninitialized_parameters(network)
    optimized = {id(parameter) for group in model.optimizer.param_groups for parameter in group["params"]}
    assert optimized == {id(parameter) for parameter in network.parameters()}
    assert history[-1]["acc"] > 90 and history[-1]["loss"] < 0.5 * history[0]["loss"]


def test_materialize_restores_modes_and_accepts_tuples():
    class Two(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.left, self.right = nn.LazyLinear(3), nn.LazyLinear(3)
            self.drop = nn.Dropout(0.5)

        def forward(self, a, b):
            return self.drop(self.left(a) + self.right(b))

    network = Two()
    assert materialize(network, [torch.zeros(2, 4), torch.zeros(2, 7)]) is network
    assert network.left.weight.shape == (3, 4) and network.right.weight.shape == (3, 7)
    assert network.training and network.drop.training


def test_errors_name_the_argument():
    with pytest.raises(TypeError, match=r"`network` must be a torch.nn.Module. Received: network of type Model"):
        summary(Model(nn.Linear(2, 2), None, None), torch.zeros(1, 2))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"`depth` must be a non-negative int.*Received: depth=-1"):
        summary(nn.Linear(2, 2), torch.zeros(1, 2), depth=-1)
    with pytest.raises(TypeError, match=r"`network` must be a torch.nn.Module.*type function"):
        materialize(lambda x: x, torch.zeros(1))  # type: ignore[arg-type]


def test_an_eager_state_optimizer_by_name_waits_for_the_shapes():
    # Adagrad allocates its state in __init__: the Model builds it once the lazy layers have shapes.
    model = Model(nn.Sequential(nn.LazyLinear(4)), "adagrad", "mse")
    assert model.optimizer is None
    model.materialize(torch.zeros(2, 3))
    assert type(model.optimizer).__name__ == "Adagrad" and model.network[0].weight.shape == (4, 3)


def test_first_inputs_reads_ahead_without_changing_the_shuffle():
    x, y = torch.arange(40.0).reshape(20, 2), torch.arange(20)
    source = IterableBatches(DataLoader(TensorDataset(x, y), batch_size=4, shuffle=True), None)
    torch.manual_seed(7)
    expected = [batch_x for batch_x, _ in source]
    torch.manual_seed(7)
    peeked = first_inputs(source)
    after = [batch_x for batch_x, _ in source]
    assert torch.equal(peeked, expected[0])  # the batch the epoch will start with
    assert all(torch.equal(a, b) for a, b in zip(after, expected, strict=True))  # same shuffle as unpeeked


def test_first_inputs_refuses_a_one_shot_generator():
    batches = ((torch.zeros(2, 3), torch.zeros(2)) for _ in range(3))
    with pytest.raises(RuntimeError, match=r"`train_generator` is a one-shot iterator.*model.materialize\(sample_x\)"):
        first_inputs(IterableBatches(batches, 3))
