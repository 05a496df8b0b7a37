from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.sync_guard import SyncGuard
from trainwell.metrics.values import as_values


@pytest.mark.parametrize(
    "value",
    [3, 3.0, np.float32(3.0), np.array(3.0), np.array([3.0]), torch.tensor(3.0), torch.tensor([3]), [3], (3.0,)],
)
def test_one_value_becomes_a_scalar(value) -> None:
    result = as_values(value, ("a",))
    assert result.shape == () and result.item() == 3.0


@pytest.mark.parametrize(
    "value",
    [
        [1, 2],
        (1.0, 2.0),
        {"b": 2, "a": 1, "extra": 9},
        np.array([1, 2]),
        torch.tensor([1.0, 2.0]),
        [torch.tensor(1.0), torch.tensor([2.0])],
        [torch.tensor(1.0), 2],
    ],
)
def test_several_values_follow_the_names(value) -> None:
    result = as_values(value, ("a", "b"))
    assert result.shape == (2,) and result.tolist() == [1.0, 2.0]


def test_device_tensors_are_not_read() -> None:
    values = [torch.tensor(1.0), torch.tensor(2.0)]
    with SyncGuard():
        result = as_values(values, ("a", "b"))
        as_values({"a": values[0]}, ("a",))
    assert result.tolist() == [1.0, 2.0]


def test_python_numbers_stay_exact_on_the_host() -> None:
    result = as_values(16777217, ("big",))  # beyond float32's integers
    assert result.dtype == torch.float64 and result.device.type == "cpu" and result.item() == 16777217


def test_errors() -> None:
    with pytest.raises(ValueError, match=r"logged as \['a', 'b'\] returned 3 value\(s\) for 2 name\(s\)"):
        as_values([1, 2, 3], ("a", "b"))
    with pytest.raises(KeyError, match=r"a dict with the keys \['x'\], but it is logged as \['a'\]"):
        as_values({"x": 1}, ("a",))
    with pytest.raises(TypeError, match=r"The metric logged as a returned 'high' \(type str\)"):
        as_values("high", ("a",))
