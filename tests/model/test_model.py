"""The Poutyne-compatible Model API: inputs, return formats, log keys and errors."""

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pack_sequence
from torch.utils.data import DataLoader, TensorDataset

from tests.learning_rates import LearningRates
from trainwell import Callback, Model, set_seeds


@pytest.fixture
def data():
    set_seeds(0)
    x = torch.randn(60, 4)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0).long()
    return x, y


def _model(**kwargs):
    set_seeds(1)
    return Model(nn.Linear(4, 3), "sgd", "cross_entropy", **kwargs)


def test_fit_history_keys_and_order(data):
    x, y = data
    model = _model(batch_metrics=["accuracy"], epoch_metrics=["f1"])
    rates = LearningRates()
    history = model.fit(x, y, validation_data=(x, y), epochs=2, batch_size=16, verbose=False, callbacks=[rates])
    assert [entry["epoch"] for entry in history] == [1, 2]
    # Poutyne's contract: no lr in the history; the epoch's rate is the model's, for loggers to write.
    assert (
        list(history[0])
        == list(history[1])
        == [
            "epoch",
            "time",
            "loss",
            "acc",
            "fscore_macro",
            "val_loss",
            "val_acc",
            "val_fscore_macro",
        ]
    )
    assert all(isinstance(value, float) for key, value in history[0].items() if key != "epoch")
    assert rates.epochs == [{"lr": model.optimizer.param_groups[0]["lr"]}] * 2
    assert model.state.learning_rates == {"lr": 0.01}


def test_epoch_learning_rates_have_one_key_per_param_group(data):
    x, y = data
    network = nn.Sequential(nn.Linear(4, 8), nn.Linear(8, 3))
    optimizer = torch.optim.SGD(
        [{"params": network[0].parameters(), "lr": 0.1}, {"params": network[1].parameters(), "lr": 0.01}]
    )
    rates = LearningRates()
    history = Model(network, optimizer, "cross_entropy").fit(x, y, epochs=1, verbose=False, callbacks=[rates])
    assert rates.epochs == [{"lr_group_0": 0.1, "lr_group_1": 0.01}]
    assert not any(key.startswith("lr") for key in history[0])  # loggers write them; the history has none


def test_evaluate_return_formats(data):
    x, y = data
    model = _model(batch_metrics=["accuracy"], epoch_metrics=["f1"])
    loss, metrics = model.evaluate(x, y, verbose=False)
    assert isinstance(loss, float) and isinstance(metrics, np.ndarray) and metrics.shape == (2,)

    logs = model.evaluate(x, y, verbose=False, return_dict_format=True)
    assert list(logs) == ["time", "test_loss", "test_acc", "test_fscore_macro"]
    assert logs["test_loss"] == pytest.approx(loss) and logs["test_acc"] == pytest.approx(metrics[0])

    logs, pred, true = model.evaluate(
        x, y, verbose=False, return_dict_format=True, return_pred=True, return_ground_truth=True
    )
    assert pred.shape == (60, 3) and np.array_equal(true, y.numpy())

    single = _model(batch_metrics=["accuracy"])
    loss, acc = single.evaluate(x, y, verbose=False)
    assert isinstance(acc, float)
    assert isinstance(_model().evaluate(x, y, verbose=False), float)


def test_accuracy_is_a_percentage_that_matches_the_predictions(data):
    x, y = data
    model = _model(batch_metrics=["accuracy"])
    _, acc, pred = model.evaluate(x, y, verbose=False, return_pred=True, batch_size=7)
    expected = (pred.argmax(1) == y.numpy()).mean() * 100
    assert acc == pytest.approx(expected)


def test_generator_returns_can_stay_per_batch_tensors(data):
    x, y = data
    model = _model()
    batches = [(x[i : i + 20], y[i : i + 20]) for i in range(0, 60, 20)]
    _, pred, true = model.evaluate_generator(
        batches,
        return_pred=True,
        return_ground_truth=True,
        concatenate_returns=False,
        convert_to_numpy=False,
        verbose=False,
    )
    assert isinstance(pred, list) and len(pred) == 3 and isinstance(pred[0], torch.Tensor)
    assert torch.equal(torch.cat(true), y)


def test_predict_variants_agree(data):
    x, y = data
    model = _model()
    from_tensor = model.predict(x, batch_size=7, verbose=False)
    from_numpy = model.predict(x.numpy(), verbose=False)
    from_dataset = model.predict_dataset(
        TensorDataset(x),
        verbose=False,
        dataloader_kwargs={"collate_fn": lambda s: torch.stack([i[0] for i in s])},
    )
    from_generator, truth = model.predict_generator(
        DataLoader(TensorDataset(x, y), batch_size=9),
        has_ground_truth=True,
        return_ground_truth=True,
        verbose=False,
    )
    for other in (from_numpy, from_dataset, from_generator):
        np.testing.assert_allclose(other, from_tensor, atol=1e-6)
    assert np.array_equal(truth, y.numpy())
    np.testing.assert_allclose(model.predict_on_batch(x[:5]), from_tensor[:5], atol=1e-6)


def test_multi_input_and_multi_output_networks():
    class TwoInTwoOut(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(2, 3), nn.Linear(5, 3)

        def forward(self, left, right):
            return self.a(left) + self.b(right), left.sum(1)

    def loss(y_pred, y_true):
        return nn.functional.cross_entropy(y_pred[0], y_true[0]) + nn.functional.mse_loss(y_pred[1], y_true[1])

    set_seeds(0)
    left, right = torch.randn(30, 2), torch.randn(30, 5)
    y = (torch.randint(0, 3, (30,)), left.sum(1))
    model = Model(TwoInTwoOut(), "adam", loss)
    history = model.fit((left, right), y, epochs=3, batch_size=8, verbose=False)
    assert history[-1]["loss"] < history[0]["loss"]
    logits, sums = model.predict((left.numpy(), right.numpy()), verbose=False)
    assert logits.shape == (30, 3) and sums.shape == (30,)


def test_dict_batches_from_a_generator():
    class DictNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(3, 1)

        def forward(self, batch):
            return self.linear(batch["features"]).squeeze(1)

    set_seeds(0)
    features = torch.randn(40, 3)
    target = features @ torch.tensor([1.0, -2.0, 0.5])
    batches = [({"features": features[i : i + 10]}, target[i : i + 10]) for i in range(0, 40, 10)]
    model = Model(DictNet(), {"optim": "sgd", "lr": 0.1}, "mse", epoch_metrics=["r2"])
    history = model.fit_generator(batches, batches, epochs=30, verbose=False)
    assert history[-1]["val_r2"] > 0.99


def test_steps_per_epoch_cycles_a_dataloader_and_continues_a_generator(data):
    x, y = data
    model = _model()
    loader = DataLoader(TensorDataset(x, y), batch_size=20)
    sizes = []

    from trainwell import Callback

    class Sizes(Callback):
        def on_train_batch_end(self, batch_number, logs):
            sizes.append(logs["size"])

    model.fit_generator(loader, epochs=1, steps_per_epoch=5, verbose=False, callbacks=[Sizes()])
    assert sizes == [20] * 5

    def endless():
        while True:
            yield x[:6], y[:6]

    history = model.fit_generator(endless(), epochs=2, steps_per_epoch=3, verbose=False)
    assert len(history) == 2
    history = model.fit(x, y, batch_size=10, epochs=2, steps_per_epoch=8, verbose=False)
    assert len(history) == 2


def test_fit_dataset_and_dataloader_kwargs_paths(data):
    x, y = data
    model = _model(batch_metrics=["acc"])
    history = model.fit_dataset(TensorDataset(x, y), TensorDataset(x, y), batch_size=16, epochs=1, verbose=False)
    assert set(history[0]) >= {"loss", "acc", "val_loss", "val_acc"}
    history = model.fit(x, y, (x, y), epochs=1, verbose=False, dataloader_kwargs={"shuffle": False})
    assert "val_acc" in history[0]
    logs = model.evaluate_dataset(TensorDataset(x, y), verbose=False, return_dict_format=True)
    assert logs["test_acc"] == pytest.approx(model.evaluate(x, y, verbose=False)[1])


def test_batches_per_step_in_fit_matches_a_larger_batch(data):
    x, y = data
    batches_small = [(x[i : i + 5], y[i : i + 5]) for i in range(0, 60, 5)]
    batches_large = [(x[i : i + 20], y[i : i + 20]) for i in range(0, 60, 20)]
    small, large = _model(), _model()
    small.fit_generator(batches_small, epochs=2, batches_per_step=4, verbose=False)
    large.fit_generator(batches_large, epochs=2, verbose=False)
    for a, b in zip(small.network.parameters(), large.network.parameters()):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


def test_train_and_evaluate_on_batch(data):
    x, y = data
    model = _model(batch_metrics=["accuracy"])
    before = model.get_weight_copies()
    loss, acc = model.train_on_batch(x, y)
    assert isinstance(loss, float) and 0 <= acc <= 100
    assert not torch.equal(before["weight"], model.network.weight.detach())
    logs, pred = model.evaluate_on_batch(x, y, return_dict_format=True, return_pred=True)
    assert list(logs) == ["loss", "acc"] and pred.shape == (60, 3)


def test_metrics_names_and_name_resolution():
    model = Model(
        nn.Linear(4, 3),
        "Adam",
        "CrossEntropyLoss",
        batch_metrics=["accuracy", "top2", "cross_entropy"],
        epoch_metrics=["f1"],
    )
    assert model.metrics_names == ["acc", "top2", "cross_entropy", "fscore_macro"]
    assert isinstance(model.optimizer, torch.optim.Adam)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (
            lambda m, x, y: m.fit(x, y, batch_size=0, verbose=False),
            ValueError,
            r"`batch_size` must be a positive int. Received: batch_size=0",
        ),
        (
            lambda m, x, y: m.fit(x, y, batch_size=2.5, verbose=False),
            TypeError,
            r"`batch_size` must be a positive int. Received: batch_size=2.5 \(type float\)",
        ),
        (lambda m, x, y: m.fit(x, y[:10], verbose=False), ValueError, "Received: x has 60 samples, y has 10"),
        (
            lambda m, x, y: m.fit(x, y.float(), epochs=1, verbose=False),
            TypeError,
            r"needs integer class indices.*y.long\(\)",
        ),
        (
            lambda m, x, y: m.fit(x, y + 5, epochs=1, verbose=False),
            ValueError,
            r"must lie in \[0, 2\].*from 5 to 7",
        ),
        (
            lambda m, x, y: m.evaluate(x, y - 1, verbose=False),
            ValueError,
            r"must lie in \[0, 2\].*from -1 to 1",
        ),
        (lambda m, x, y: m.fit(x[:0], y[:0], verbose=False), ValueError, "is empty"),
        (
            lambda m, x, y: m.fit_generator((b for b in [(x, y)]), epochs=2, verbose=False),
            ValueError,
            "no batch in epoch 2.*used up by one pass: give `steps_per_epoch`",
        ),
        (
            lambda m, x, y: m.fit(x, y, validation_data=(x,), verbose=False),
            ValueError,
            r"`validation_data` must be a pair",
        ),
        (lambda m, x, y: m.fit(x, y, epochs=0, verbose=False), ValueError, "`epochs` must be a positive int"),
        (
            lambda m, x, y: m.fit(x, y, callbacks=print, verbose=False),
            TypeError,
            "`callbacks` must be a list",
        ),
    ],
)
def test_bad_input_gets_a_clear_error(data, call, error, match):
    x, y = data
    with pytest.raises(error, match=match):
        call(_model(), x, y)


def test_constructor_errors():
    with pytest.raises(TypeError, match="`network` must be a torch.nn.Module. Received: network of type function"):
        Model(lambda x: x, "sgd", "mse")
    with pytest.raises(ValueError, match="Did you mean 'adam'"):
        Model(nn.Linear(2, 2), "adm", "mse")
    with pytest.raises(ValueError, match="do not belong to `network`"):
        Model(nn.Linear(2, 2), torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=0.1), "mse")
    with pytest.raises(ValueError, match="Did you mean 'accuracy'|Did you mean 'acc'"):
        Model(nn.Linear(2, 2), "sgd", "mse", batch_metrics=["acuracy"])
    with pytest.raises(ValueError, match="`device` must be a device name"):
        Model(nn.Linear(2, 2), "sgd", "mse", device="gpu0")


def test_device_none_leaves_the_network_and_cpu_moves_it(data):
    network = nn.Linear(4, 3)
    model = Model(network, "sgd", "cross_entropy")
    assert model.device is None and model.network is network
    model.to("cpu")
    assert model.device == torch.device("cpu")
    assert model.cpu() is model


def test_ignored_labels_pass_the_target_check_and_are_left_out_of_accuracy(data):
    x, y = data
    padded = y.clone()
    padded[::2] = -100
    model = _model(batch_metrics=["accuracy"])
    _, acc, pred = model.evaluate(x, padded, verbose=False, return_pred=True)
    kept = padded != -100
    expected = (pred.argmax(1)[kept.numpy()] == padded[kept].numpy()).mean() * 100
    assert acc == pytest.approx(expected)


def test_validation_labels_are_checked_against_the_validation_data(data):
    x, y = data
    bad = y.clone()
    bad[-1] = 7  # out of range for 3 classes, only in the validation targets
    with pytest.raises(ValueError, match=r"Class labels in `y` must lie in \[0, 2\].*labels from 0 to 7"):
        _model().fit(x, y, validation_data=(x, bad), epochs=1, verbose=False)


class _Params(Callback):
    def __init__(self):
        self.seen = {}

    def set_params(self, params):
        self.seen = dict(params)

    def on_test_batch_end(self, batch_number, logs):
        self.test_batch = sorted(logs)

    def on_test_end(self, logs):
        self.test_end = sorted(logs)

    def on_predict_end(self, logs):
        self.predict_end = sorted(logs)


def _batches(x, y, size=20):
    return [(x[i : i + size], y[i : i + size]) for i in range(0, len(x), size)]


def test_callbacks_get_poutynes_params_exactly(data):
    x, y = data
    cases = [
        (lambda m, c: m.fit(x, y, validation_data=(x, y), batch_size=20, epochs=2, callbacks=[c]),
         {"epochs": 2, "steps": 3, "valid_steps": 3}),
        (lambda m, c: m.fit(x, y, batch_size=20, epochs=2, callbacks=[c]), {"epochs": 2, "steps": 3}),
        # validation_steps is reported even without validation data, as Poutyne does.
        (lambda m, c: m.fit(x, y, batch_size=20, epochs=1, validation_steps=4, callbacks=[c]),
         {"epochs": 1, "steps": 3, "valid_steps": 4}),
        # Without a length, validation takes steps_per_epoch batches...
        (lambda m, c: m.fit_generator(iter(_batches(x, y) * 4), iter(_batches(x, y) * 4), epochs=2,
                                      steps_per_epoch=2, callbacks=[c]),
         {"epochs": 2, "steps": 2, "valid_steps": 2}),
        # ... and with neither, both run to the end of the source, with no valid_steps.
        (lambda m, c: m.fit_generator(iter(_batches(x, y)), iter(_batches(x, y)), epochs=1, callbacks=[c]),
         {"epochs": 1, "steps": None}),
        (lambda m, c: m.evaluate_generator(_batches(x, y), callbacks=[c]), {"steps": 3}),
        (lambda m, c: m.predict_generator(iter([x]), callbacks=[c]), {"steps": None}),
    ]  # fmt: skip
    for run, params in cases:
        recorder = _Params()
        run(_model(), recorder)
        assert recorder.seen == params


def test_evaluation_and_prediction_logs_have_poutynes_keys(data):
    x, y = data
    recorder = _Params()
    model = _model(batch_metrics=["accuracy"])
    model.evaluate(x, y, batch_size=20, callbacks=[recorder], verbose=False)
    assert recorder.test_batch == ["batch", "size", "test_acc", "test_loss", "time"]
    assert recorder.test_end == ["test_acc", "test_loss", "time"]
    model.predict(x, callbacks=[recorder], verbose=False)
    assert recorder.predict_end == ["time"]


def test_a_generator_without_len_runs_to_its_end(data):
    x, y = data
    model = _model()
    history = model.fit_generator(iter(_batches(x, y)), iter(_batches(x, y)), epochs=1, verbose=False)
    assert len(history) == 1 and "val_loss" in history[0]


def test_on_batch_methods_report_the_batch_metrics_only(data):
    x, y = data
    model = _model(batch_metrics=["accuracy"], epoch_metrics=["f1"])
    loss, acc = model.train_on_batch(x, y)
    assert isinstance(loss, float) and isinstance(acc, float)
    logs = model.evaluate_on_batch(x, y, return_dict_format=True)
    assert list(logs) == ["loss", "acc"]
    assert model.batch_metrics_names == ["acc"] and model.epoch_metrics_names == ["fscore_macro"]


def test_predict_generator_return_ground_truth_implies_pairs(data):
    x, y = data
    pred, true = _model().predict_generator(_batches(x, y), return_ground_truth=True, verbose=False)
    assert pred.shape == (60, 3) and np.array_equal(true, y.numpy())


class _Recurrent(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.GRU(2, 4)

    def forward(self, packed):
        _, hidden = self.rnn(packed)
        return hidden[-1]


def test_packed_sequences_are_one_input():
    set_seeds(0)
    sequences = [torch.randn(length, 2) for length in (5, 4, 2)]
    packed = pack_sequence(sequences)
    model = Model(_Recurrent(), "sgd", "mse")
    x, y = model.preprocess_input(packed, torch.zeros(3, 4))
    assert isinstance(x, tuple) and isinstance(x[0], PackedSequence) and torch.equal(y, torch.zeros(3, 4))
    assert model.preprocess_input(torch.ones(2, 2))[0].shape == (2, 2)
    history = model.fit_generator([(packed, torch.zeros(3, 4))] * 2, epochs=1, verbose=False)
    assert history[0]["loss"] >= 0
    assert model.predict_on_batch(packed).shape == (3, 4)


def test_epoch_metrics_are_the_objects_given_and_the_names_are_tracked():
    # Poutyne's attribute: the user's metric objects (a name or function becomes an averaging metric).
    from trainwell import F1

    f1 = F1()
    model = Model(nn.Linear(4, 3), "sgd", "cross_entropy", epoch_metrics=[f1, "acc"])
    assert model.epoch_metrics[0] is f1 and isinstance(model.epoch_metrics[0], F1)
    assert model.epoch_metrics_names == ["fscore_macro", "acc"]
    history = model.fit(torch.randn(16, 4), torch.randint(3, (16,)), batch_size=8, epochs=1, verbose=False)
    assert {"fscore_macro", "acc"} <= history[0].keys()
