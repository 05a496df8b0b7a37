import pytest
import torch

from tests.sync_guard import SyncGuard


def test_guard_catches_item_and_mask_indexing():
    t = torch.arange(4.0)
    with pytest.raises(AssertionError, match="_local_scalar_dense"), SyncGuard():
        t.sum().item()
    with pytest.raises(AssertionError, match="aten::index"), SyncGuard():
        t[t > 1]


def test_guard_lets_pure_device_math_through():
    t = torch.arange(4.0)
    with SyncGuard() as guard:
        (t * 2).sum().add_(1)
    assert guard.calls == []
