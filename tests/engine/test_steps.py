import copy

import pytest
import torch
from torch import nn

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
