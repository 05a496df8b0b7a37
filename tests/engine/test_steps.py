import copy

import pytest
import torch
from torch import nn

from trainwell import Model
from trainwell.engine.steps import Steps, split_batch


def _batches(x, y, size):
    return [(x[i : i + size], y[i : i + size]) for i in range(0, len(x), size)]


def _train(network, optimizer, batches, batches_per_step):
    steps = Steps(network, optimizer, nn.CrossEntropyLoss(), None)
    pending = False
    for number, batch in enumerate(batches, 1):
        steps.forward_backward(batch, accumulate=batches_per_step > 1)
        pending = number % batches_per_step != 0
        if not pending:
            steps.optimizer_step()
    if pending:
        steps.optimizer_step()


@pytest.mark.parametrize("optimizer_class", [torch.optim.SGD, torch.optim.Adam])
def test_accumulating_k_batches_equals_one_k_times_larger_batch(optimizer_class):
    torch.manual_seed(0)
    x, y = torch.randn(50, 6), torch.randint(0, 4, (50,))
    reference = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 4))
    accumulated = copy.deepcopy(reference)
    # 50 samples: batches of 8 accumulated 4 at a time give steps of 32 and 18 samples, uneven on purpose
    _train(reference, optimizer_class(reference.parameters(), lr=0.1), _batches(x, y, 32), 1)
    _train(accumulated, optimizer_class(accumulated.parameters(), lr=0.1), _batches(x, y, 8), 4)
    for expected, actual in zip(reference.parameters(), accumulated.parameters()):
        torch.testing.assert_close(actual, expected, atol=1e-6, rtol=0)


def test_optimizer_step_clears_gradients():
    network = nn.Linear(2, 2)
    steps = Steps(network, torch.optim.SGD(network.parameters(), lr=0.1), nn.CrossEntropyLoss(), None)
    steps.forward_backward((torch.randn(3, 2), torch.tensor([0, 1, 0])), accumulate=False)
    assert network.weight.grad is not None
    steps.optimizer_step()
    assert network.weight.grad is None


def _two_steps(keep_gradients):
    torch.manual_seed(0)
    network = nn.Linear(2, 2)
    steps = Steps(network, torch.optim.SGD(network.parameters(), lr=0.1, momentum=0.9), nn.CrossEntropyLoss(), None)
    steps.keep_gradients = keep_gradients
    batch = (torch.randn(3, 2), torch.tensor([0, 1, 0]))
    steps.forward_backward(batch, accumulate=False)
    produced = network.weight.grad.clone()
    steps.optimizer_step()
    after_step = network.weight.grad
    steps.forward_backward(batch, accumulate=False)
    second = network.weight.grad.clone()
    steps.optimizer_step()
    return network, produced, after_step, second


def test_kept_gradients_last_until_the_next_step_begins_and_never_add_to_it():
    kept_network, produced, after_step, second = _two_steps(keep_gradients=True)
    assert after_step is not None and torch.equal(after_step, produced)  # readable after the step
    plain_network, _, plain_after_step, plain_second = _two_steps(keep_gradients=False)
    assert plain_after_step is None  # freed at once without a reader
    torch.testing.assert_close(second, plain_second, rtol=0, atol=0)  # the next step starts from no gradient
    assert torch.equal(kept_network.weight, plain_network.weight)
    assert kept_network.weight.grad is not None and plain_network.weight.grad is None


def test_a_second_backward_after_a_kept_step_does_not_add_to_its_gradients():
    # A custom step may update twice in one batch: backward, step, backward, step.
    def run(keep_gradients):
        torch.manual_seed(0)
        network = nn.Linear(2, 1)
        optimizer = torch.optim.SGD(network.parameters(), lr=0.1)
        steps = Steps(network, optimizer, None, None)
        steps.keep_gradients = keep_gradients
        x = torch.randn(4, 2)
        for _ in range(2):
            steps.backward(network(x).pow(2).mean())
            steps.apply_optimizer(optimizer)
        return network.weight.detach().clone()

    assert torch.equal(run(True), run(False))


def test_multi_input_is_unpacked_and_dict_input_is_passed_whole():
    class TwoInputs(nn.Module):
        def forward(self, a, b):
            return a + b

    class DictInput(nn.Module):
        def forward(self, batch):
            return batch["a"] * 2

    out = Steps(TwoInputs(), None, None, None).predict((torch.ones(2), torch.ones(2)))
    assert torch.equal(out, torch.full((2,), 2.0))
    out = Steps(DictInput(), None, None, None).predict({"a": torch.ones(2)})
    assert torch.equal(out, torch.full((2,), 2.0))


def test_split_batch_explains_a_wrong_batch():
    with pytest.raises(ValueError, match=r"must be a pair \(x, y\). Received a tuple of length 3"):
        split_batch((1, 2, 3))


def test_missing_loss_or_optimizer_is_a_clear_runtime_error():
    network = nn.Linear(2, 2)
    with pytest.raises(RuntimeError, match="no loss function"):
        Steps(network, None, None, None).evaluate((torch.zeros(1, 2), torch.zeros(1, dtype=torch.long)))
    with pytest.raises(RuntimeError, match="no optimizer"):
        Steps(network, None, None, None).optimizer_step()


def test_gradients_are_cleared_after_each_step_as_zero_grad_would_and_an_optimizers_own_zero_grad_is_used():
    """trainwell clears gradients itself (torch's zero_grad(set_to_none=True) without its profiler range);
    an optimizer that overrides zero_grad, and a running profiler, still get torch's call."""
    import torch.profiler

    calls = []

    class OwnZeroGrad(torch.optim.SGD):
        def zero_grad(self, set_to_none: bool = True) -> None:
            calls.append(set_to_none)
            super().zero_grad(set_to_none)

    x, y = torch.randn(32, 3), torch.randint(0, 2, (32,))

    def trained(optimizer_class):
        torch.manual_seed(0)
        network = nn.Linear(3, 2)
        model = Model(network, optimizer_class(network.parameters(), lr=0.1), "cross_entropy", sanity_check=False)
        model.fit(x, y, batch_size=8, epochs=2, verbose=False)
        return network

    plain, own = trained(torch.optim.SGD), trained(OwnZeroGrad)
    assert all(parameter.grad is None for parameter in plain.parameters())
    assert torch.equal(plain.weight, own.weight) and torch.equal(plain.bias, own.bias)
    assert calls == [True] * 8  # 4 steps an epoch, 2 epochs
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profiler:
        trained(torch.optim.SGD)
    assert any(event.name.startswith("Optimizer.zero_grad#SGD") for event in profiler.events())
