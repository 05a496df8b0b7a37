"""The distributed helpers in a single process (rank 0 of 1), and the merging of epoch-metric states.

Real multi-process behaviour (gloo, torchrun) is tested in tests/integration/test_distributed.py.
"""

import pytest
import torch
from torch import nn
from torch.utils.data import RandomSampler, SequentialSampler

from trainwell import distributed
from trainwell.data import ShardedSampler, TensorBatches, is_sharded, shard, shard_length
from trainwell.engine.parallel import wrap
from trainwell.metrics import F1, MSE, R2, FBeta, SKLearnMetrics


@pytest.fixture
def no_torchrun(monkeypatch):
    for variable in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(variable, raising=False)


def test_a_plain_process_is_rank_0_of_1(no_torchrun):
    assert not distributed.launched_by_torchrun()
    assert not distributed.is_distributed()
    assert (distributed.rank(), distributed.world_size(), distributed.local_rank()) == (0, 1, 0)
    assert distributed.is_main_process()
    distributed.barrier()  # returns at once
    assert distributed.setup("cpu") == "cpu"  # nothing to join


def test_before_the_group_exists_the_rank_comes_from_torchruns_variables(monkeypatch):
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert distributed.launched_by_torchrun()
    assert (distributed.rank(), distributed.world_size(), distributed.local_rank()) == (3, 4, 1)
    assert not distributed.is_main_process()
    assert not distributed.is_distributed()  # no process group yet: nothing is sharded or reduced


def test_dataparallel_under_torchrun_is_refused_with_the_fix(monkeypatch):
    for variable, value in {"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0"}.items():
        monkeypatch.setenv(variable, value)
    with pytest.raises(ValueError, match=r"device='all'.*one process per GPU.*device='cuda'"):
        distributed.setup("all")


def test_single_process_collectives_return_the_local_values(no_torchrun):
    values = [torch.tensor([1.0, 2.0]), torch.tensor(3, dtype=torch.int64)]
    reduced = distributed.all_reduce_sum(values)
    assert [r.tolist() for r in reduced] == [[1.0, 2.0], 3] and reduced[1].dtype == torch.int64
    assert reduced[0] is not values[0]  # new tensors: the caller's sums are left alone
    assert distributed.any_rank(True) and not distributed.any_rank(False)
    structure = {"count": 3, "flag": True, "name": "x", "sums": [torch.ones(2)], "none": None}
    assert distributed.all_gather_structure(structure) == [structure]
    assert torch.equal(distributed.broadcast_tensor(torch.arange(4)), torch.arange(4))
    layer = nn.Linear(2, 2)
    assert wrap(layer, None) is layer


def test_interleave_restores_the_order_of_strided_shards():
    data = torch.arange(11).reshape(11, 1)
    parts = [data[rank::3] for rank in range(3)]  # ranks 0 and 1 hold 4 samples, rank 2 holds 3
    assert torch.equal(distributed.interleave(parts), data)
    nested = distributed.interleave([({"a": part}, [part * 2]) for part in parts])
    assert torch.equal(nested[0]["a"], data) and torch.equal(nested[1][0], data * 2)
    with pytest.raises(TypeError, match="outputs of type str"):
        distributed.interleave(["a", "b"])


def test_without_torchrun_nothing_is_sharded(no_torchrun):
    assert torch.equal(shard(torch.arange(5), even=True), torch.arange(5))
    assert shard_length(5, even=False) == 5
    assert list(ShardedSampler(SequentialSampler(range(4)), even=False)) == [0, 1, 2, 3]
    torch.manual_seed(0)
    expected = list(RandomSampler(range(6)))
    torch.manual_seed(0)
    assert list(ShardedSampler(RandomSampler(range(6)), even=True)) == expected  # the same draws
    source = TensorBatches(torch.arange(5.0), torch.arange(5), batch_size=2, shuffle=True)
    assert not is_sharded(source) and len(source) == 3


def _split_states(metric_class, y_pred, y_true, **kwargs):
    """A metric fed the whole data, and the states of two metrics fed the even and odd samples."""
    whole = metric_class(**kwargs)
    whole.update(y_pred, y_true)
    states = []
    for rank in range(2):
        part = metric_class(**kwargs)
        part.update(y_pred[rank::2], y_true[rank::2])
        states.append(part.state_dict())
    return whole, states


@pytest.mark.parametrize("metric_class", [F1, MSE, R2])
def test_merged_states_compute_the_value_of_the_whole_data(metric_class):
    torch.manual_seed(0)
    if metric_class is F1:
        y_pred, y_true = torch.randn(41, 4), torch.randint(4, (41,))
    else:
        y_pred, y_true = torch.randn(41, 3), torch.randn(41, 3) * 5 + 2  # offset targets test R²'s merge
    whole, states = _split_states(metric_class, y_pred, y_true)
    merged = metric_class()
    merged.load_state_dict(merged.merge_states(states))
    assert torch.allclose(torch.as_tensor(merged.compute()), torch.as_tensor(whole.compute()), atol=1e-6)
    # A metric alone (one rank) merges to itself.
    assert torch.allclose(_loaded(metric_class, merged.merge_states(states[:1])), _loaded(metric_class, states[0]))


def _loaded(metric_class, state):
    metric = metric_class()
    metric.load_state_dict(state)
    return torch.as_tensor(metric.compute())  # F1 (a Poutyne Metric) gives a float, MSE and R2 a tensor


def test_sklearn_metrics_merge_by_keeping_every_sample():
    from sklearn.metrics import mean_absolute_error

    y_pred, y_true = torch.arange(7.0), torch.zeros(7)
    whole, states = _split_states(SKLearnMetrics, y_pred, y_true, funcs=mean_absolute_error)
    merged = SKLearnMetrics(mean_absolute_error)
    merged.load_state_dict(merged.merge_states(states))
    assert merged.compute() == pytest.approx(whole.compute())


def test_gather_epoch_metric_leaves_a_single_process_metric_alone(no_torchrun):
    metric = FBeta(average="micro")
    metric.update(torch.tensor([[0.9, 0.1], [0.2, 0.8]]), torch.tensor([0, 0]))
    before = metric.compute()
    distributed.gather_epoch_metric(metric)
    assert metric.compute() == before
