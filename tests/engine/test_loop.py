import re

import pytest
import torch
from torch import nn

from tests.sync_guard import SyncGuard
from trainwell import Callback, Model
from trainwell.callbacks.base import epoch_learning_rates


class Recorder(Callback):
    def __init__(self):
        self.calls = []

    def on_train_begin(self, logs):
        self.calls.append("train_begin")

    def on_epoch_begin(self, epoch_number, logs):
        self.calls.append(f"epoch_begin {epoch_number}")

    def on_train_batch_begin(self, batch_number, logs):
        self.calls.append(f"batch_begin {batch_number} {dict(logs)}")

    def on_backward_end(self, batch_number):
        self.calls.append(f"backward_end {batch_number}")

    def on_train_batch_end(self, batch_number, logs):
        self.calls.append(f"batch_end {batch_number} {sorted(logs)}")

    def on_valid_begin(self, logs):
        self.calls.append("valid_begin")

    def on_valid_batch_end(self, batch_number, logs):
        self.calls.append(f"valid_batch_end {batch_number} {sorted(logs)}")

    def on_valid_end(self, logs):
        self.calls.append(f"valid_end {sorted(logs)}")

    def on_epoch_end(self, epoch_number, logs):
        # The logs carry no lr (Poutyne's contract): the epoch's rates are the model's, for loggers to write.
        self.calls.append(f"epoch_end {epoch_number} {sorted(logs)} {epoch_learning_rates(self.model)}")

    def on_train_end(self, logs):
        self.calls.append("train_end")


def _data(n=8):
    torch.manual_seed(0)
    return torch.randn(n, 3), torch.randint(0, 2, (n,))


def test_hook_order_is_pinned():
    x, y = _data()
    recorder = Recorder()
    model = Model(nn.Linear(3, 2), "sgd", "cross_entropy", batch_metrics=["accuracy"])
    model.fit(x, y, validation_data=(x, y), batch_size=4, epochs=1, verbose=False, callbacks=[recorder])
    batch_keys = "['acc', 'batch', 'loss', 'size', 'time']"
    # Poutyne's keys: validation batches and the validation end log their values with the val_ prefix.
    valid_keys = "['batch', 'size', 'time', 'val_acc', 'val_loss']"
    assert recorder.calls == [
        "train_begin",
        "epoch_begin 1",
        "batch_begin 1 {}",
        "backward_end 1",
        f"batch_end 1 {batch_keys}",
        "batch_begin 2 {}",
        "backward_end 2",
        f"batch_end 2 {batch_keys}",
        "valid_begin",
        f"valid_batch_end 1 {valid_keys}",
        f"valid_batch_end 2 {valid_keys}",
        "valid_end ['time', 'val_acc', 'val_loss']",
        "epoch_end 1 ['acc', 'epoch', 'loss', 'time', 'val_acc', 'val_loss'] {'lr': 0.01}",
        "train_end",
    ]


def test_batch_logs_are_weighted_into_the_epoch_average():
    x, y = _data(10)
    seen = []

    class Collect(Callback):
        def on_train_batch_end(self, batch_number, logs):
            seen.append((logs["size"], logs["loss"]))

    model = Model(nn.Linear(3, 2), "sgd", "cross_entropy")
    history = model.fit(x, y, batch_size=4, epochs=1, verbose=False, callbacks=[Collect()])
    assert [size for size, _ in seen] == [4, 4, 2]
    expected = sum(size * loss for size, loss in seen) / 10
    assert abs(history[0]["loss"] - expected) < 1e-6


def test_stop_training_ends_the_epoch_after_the_current_batch_and_the_run():
    x, y = _data(20)

    class StopAtThird(Callback):
        def on_train_batch_end(self, batch_number, logs):
            if batch_number == 3:
                self.model.stop_training = True

    batches = []

    class Count(Callback):
        def on_train_batch_begin(self, batch_number, logs):
            batches.append(batch_number)

    model = Model(nn.Linear(3, 2), "sgd", "cross_entropy")
    history = model.fit(x, y, batch_size=2, epochs=5, verbose=False, callbacks=[StopAtThird(), Count()])
    assert len(history) == 1 and batches == [1, 2, 3]


def _count_syncs(num_samples):
    x, y = _data(num_samples)
    model = Model(nn.Linear(3, 2), "sgd", "cross_entropy", batch_metrics=["accuracy"])
    with SyncGuard(strict=False) as guard:
        model.fit(x, y, validation_data=(x, y), batch_size=4, epochs=1, verbose=False)
    return len(guard.calls)


def test_training_loop_does_not_sync_per_batch():
    # Host reads happen at phase boundaries (epoch logs, one target check), never per batch.
    assert _count_syncs(16) == _count_syncs(160)


def test_state_reports_position_to_callbacks():
    x, y = _data(8)
    positions = []

    class Where(Callback):
        def on_train_batch_end(self, batch_number, logs):
            state = self.model.state
            positions.append((state.phase, state.epoch, state.batch, state.global_step))
            assert set(state.tracker.running_logs()) == {"loss"}

    model = Model(nn.Linear(3, 2), "sgd", "cross_entropy")
    model.fit(x, y, batch_size=4, epochs=2, verbose=False, callbacks=[Where()])
    assert positions == [("train", 1, 1, 1), ("train", 1, 2, 2), ("train", 2, 1, 3), ("train", 2, 2, 4)]


def test_a_failing_run_calls_on_exception_instead_of_on_train_end():
    class Watch(Callback):
        def __init__(self):
            self.seen = []

        def on_exception(self, exception):
            self.seen.append(("exception", type(exception).__name__, str(exception)))

        def on_train_end(self, logs):
            self.seen.append(("train_end",))

    class Broken(Callback):
        def on_train_batch_end(self, batch_number, logs):
            if batch_number == 2:
                raise RuntimeError("broken callback")

    class AlsoBroken(Callback):
        def on_exception(self, exception):
            raise ValueError("a bad handler must not hide the original error")

    x, y = _data()
    watch = Watch()
    model = Model(nn.Linear(3, 2), "sgd", "cross_entropy")
    with (
        pytest.warns(UserWarning, match="AlsoBroken.on_exception raised ValueError"),
        pytest.raises(RuntimeError, match="broken callback"),
    ):
        model.fit(x, y, batch_size=2, epochs=1, verbose=False, callbacks=[AlsoBroken(), Broken(), watch])
    assert watch.seen == [("exception", "RuntimeError", "broken callback")]
    model.fit(x, y, batch_size=2, epochs=1, verbose=False, callbacks=[watch])
    assert watch.seen[-1] == ("train_end",)


# -- gradients in on_train_batch_end (Poutyne's contract) and the learning rates beside the logs -----------
def _gradient_batches():
    generator = torch.Generator().manual_seed(3)
    x, y = torch.randn(10, 3, generator=generator), torch.randint(0, 2, (10,), generator=generator)
    return [(x[i : i + 4], y[i : i + 4]) for i in range(0, 10, 4)]  # batches of 4, 4 and 2


def _gradient_model():
    torch.manual_seed(5)
    network = nn.Linear(3, 2)
    return Model(network, torch.optim.SGD(network.parameters(), lr=0.1, momentum=0.9), "cross_entropy")


def _grads(network):
    return [None if p.grad is None else p.grad.clone() for p in network.parameters()]


class GradientReader(Callback):
    """Reads every gradient at on_train_batch_end (reads_gradients keeps its default, True)."""

    def __init__(self):
        self.records = []  # (batch number, parameters before the batch, gradients at its end)
        self._before = None

    def on_train_batch_begin(self, batch_number, logs):
        self._before = [p.detach().clone() for p in self.model.network.parameters()]

    def on_train_batch_end(self, batch_number, logs):
        self.records.append((batch_number, self._before, _grads(self.model.network)))


class StepStartProbe(Callback):
    """Whether any gradient is left when a batch begins; it listens to no on_train_batch_end."""

    def __init__(self):
        self.left = []

    def on_train_batch_begin(self, batch_number, logs):
        self.left.append((batch_number, any(p.grad is not None for p in self.model.network.parameters())))


class NotAReader(Callback):
    """Listens to on_train_batch_end but declares it never reads gradients; peeks to prove they are gone."""

    reads_gradients = False

    def __init__(self):
        self.seen = []

    def on_train_batch_end(self, batch_number, logs):
        self.seen.append(all(p.grad is None for p in self.model.network.parameters()))


def _expected_gradients(network, parameters, batches, *, mean):
    """The gradients autograd gives for ``batches`` at ``parameters``: of their mean loss, or of its sum."""
    names = [name for name, _ in network.named_parameters()]
    weights = {name: value.clone().requires_grad_(True) for name, value in zip(names, parameters)}
    x = torch.cat([x for x, _ in batches])
    y = torch.cat([y for _, y in batches])
    output = torch.func.functional_call(network, weights, (x,))
    loss = nn.functional.cross_entropy(output, y, reduction="mean" if mean else "sum")
    return list(torch.autograd.grad(loss, list(weights.values())))


@pytest.mark.parametrize("batches_per_step", [1, 2])
def test_a_callback_reading_gradients_at_batch_end_sees_the_gradients_of_the_step(batches_per_step):
    batches = _gradient_batches()
    model = _gradient_model()
    reader = GradientReader()
    model.fit_generator(batches, epochs=2, batches_per_step=batches_per_step, verbose=False, callbacks=[reader])
    assert [number for number, _, _ in reader.records] == [1, 2, 3, 1, 2, 3]
    for index, (number, _, grads) in enumerate(reader.records):
        first = (number - 1) // batches_per_step * batches_per_step + 1  # the batch that began this step
        start = reader.records[index - (number - first)][1]  # the parameters the step's gradients are taken at
        in_step = batches[first - 1 : number]
        complete = number % batches_per_step == 0
        # A completed step shows the step's mean gradient (what the optimizer applied); a batch inside an
        # accumulation, or the epoch's last incomplete one, the sum of size-weighted gradients so far.
        expected = _expected_gradients(model.network, start, in_step, mean=complete or batches_per_step == 1)
        assert all(grad is not None for grad in grads), number
        for grad, wanted in zip(grads, expected, strict=True):
            torch.testing.assert_close(grad, wanted)


def test_gradients_read_at_batch_end_are_those_backward_produced():
    class AtBackwardEnd(GradientReader):
        def __init__(self):
            super().__init__()
            self.after_backward = []

        def on_backward_end(self, batch_number):
            self.after_backward.append(_grads(self.model.network))

    reader = AtBackwardEnd()
    _gradient_model().fit_generator(_gradient_batches(), epochs=1, verbose=False, callbacks=[reader])
    assert len(reader.after_backward) == len(reader.records) == 3
    for produced, (_, _, seen) in zip(reader.after_backward, reader.records):
        for a, b in zip(produced, seen, strict=True):
            assert a is not None and torch.equal(a, b)  # the optimizer step left them as backward made them


@pytest.mark.parametrize("batches_per_step", [1, 2])
@pytest.mark.parametrize("listeners", ["none", "not readers", "progress display"])
def test_without_a_gradient_reader_gradients_are_freed_right_after_the_step(batches_per_step, listeners, capsys):
    model = _gradient_model()
    probe = StepStartProbe()
    callbacks = [probe]
    if listeners == "not readers":
        from trainwell.callbacks.control import TerminateOnNaN
        from trainwell.callbacks.lr_scheduler import StepLR

        not_a_reader = NotAReader()
        callbacks += [not_a_reader, TerminateOnNaN(), StepLR(step_size=1, step_every="step")]
    verbose = listeners == "progress display"
    model.fit_generator(
        _gradient_batches(), epochs=2, batches_per_step=batches_per_step, verbose=verbose, callbacks=callbacks
    )
    # At the start of every step the previous step's gradients are gone: freed after its optimizer step.
    step_starts = [left for number, left in probe.left if (number - 1) % batches_per_step == 0]
    assert step_starts == [False] * len(step_starts) and len(step_starts) == (6 if batches_per_step == 1 else 4)
    assert all(p.grad is None for p in model.network.parameters())
    if listeners == "not readers":
        completed = [seen for seen, number in zip(not_a_reader.seen, [1, 2, 3] * 2) if number % batches_per_step == 0]
        assert completed == [True] * len(completed)
    if verbose:
        plain = re.sub(r"\x1b\[[0-9;]*m", "", capsys.readouterr().out)  # without the colours
        assert "Epoch: 2/2" in plain  # Poutyne's display


def test_with_a_gradient_reader_gradients_are_kept_until_the_next_step_begins():
    # The contrast of the test above: the memory is held exactly while a reader may need it.
    model = _gradient_model()
    probe = StepStartProbe()
    model.fit_generator(_gradient_batches(), epochs=1, verbose=False, callbacks=[probe, GradientReader()])
    assert probe.left == [(1, False), (2, True), (3, True)]


def _two_fits(first_callbacks, second_callbacks, batches_per_step):
    model = _gradient_model()
    batches = _gradient_batches()
    for callbacks in (first_callbacks, second_callbacks):
        model.fit_generator(
            batches, epochs=2, batches_per_step=batches_per_step, verbose=False, callbacks=list(callbacks)
        )
    return model


@pytest.mark.parametrize("batches_per_step", [1, 2])
def test_switching_between_fits_with_and_without_a_gradient_reader_accumulates_no_stale_gradient(batches_per_step):
    fresh = _two_fits([], [], batches_per_step).network.state_dict()
    for first, second in (([GradientReader()], []), ([], [GradientReader()]), ([GradientReader()], [NotAReader()])):
        model = _two_fits(first, second, batches_per_step)
        for name, value in model.network.state_dict().items():
            assert torch.equal(value, fresh[name]), (name, first, second)
    # train_on_batch after a fit that kept its last gradients starts from clean gradients too.
    batch = _gradient_batches()[0]
    kept, plain = _two_fits([], [GradientReader()], batches_per_step), _two_fits([], [], batches_per_step)
    kept.train_on_batch(*batch)
    plain.train_on_batch(*batch)
    for name, value in kept.network.state_dict().items():
        assert torch.equal(value, plain.network.state_dict()[name]), name


class _TwoParts(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder, self.head = nn.Linear(3, 4), nn.Linear(4, 2)

    def forward(self, x):
        return self.head(self.encoder(x))


@pytest.mark.parametrize("optimizer", ["one group", "two groups", "named"])
def test_the_history_and_the_logs_carry_no_learning_rate(optimizer):
    from tests.learning_rates import LearningRates

    torch.manual_seed(0)
    network = _TwoParts()
    if optimizer == "one group":
        spec = torch.optim.SGD(network.parameters(), lr=0.1)
        expected = {"lr": 0.1}
    elif optimizer == "two groups":
        groups = [{"params": network.encoder.parameters(), "lr": 0.1}, {"params": network.head.parameters()}]
        spec = torch.optim.SGD(groups, lr=0.01)
        expected = {"lr_group_0": 0.1, "lr_group_1": 0.01}
    else:
        spec = {"encoder": {"optim": "sgd", "lr": 0.1}, "head": {"optim": "sgd", "lr": 0.01}}
        expected = {"lr_encoder": 0.1, "lr_head": 0.01}
    model = Model(network, spec, "cross_entropy")
    recorder, rates = Recorder(), LearningRates()
    x, y = _data()
    history = model.fit(
        x, y, validation_data=(x, y), batch_size=4, epochs=2, verbose=False, callbacks=[recorder, rates]
    )
    # Poutyne's contract: neither the history nor the epoch logs callbacks receive hold a learning rate...
    assert [sorted(logs) for logs in history] == [["epoch", "loss", "time", "val_loss"]] * 2
    epoch_ends = [call for call in recorder.calls if call.startswith("epoch_end")]
    assert epoch_ends == [f"epoch_end {epoch} ['epoch', 'loss', 'time', 'val_loss'] {expected}" for epoch in (1, 2)]
    # ... the loop keeps the epoch's rates on the model, under the keys the loggers write.
    assert rates.epochs == [expected] * 2 and model.state.learning_rates == expected
