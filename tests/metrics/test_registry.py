from __future__ import annotations

import pytest
import torch

from trainwell.metrics import (
    clean_metric_class_name,
    clean_metric_func_name,
    do_register_metric_class,
    do_register_metric_func,
    register_metric_class,
    register_metric_func,
    unregister_metric_class,
    unregister_metric_func,
)
from trainwell.metrics.registry import lookup_metric, registered_metric_names


def test_cleaning_follows_poutyne() -> None:
    assert clean_metric_func_name("Cross_Entropy_Loss") == "crossentropy"
    assert clean_metric_class_name("Binary_F1_Score") == "binaryf1"


def test_functions_register_under_their_name_or_given_names() -> None:
    def my_error_loss(y_pred, y_true):
        return (y_pred - y_true).abs().mean()

    assert do_register_metric_func(my_error_loss) == ["myerror"]
    assert do_register_metric_func(my_error_loss, "alias", unique_name="err") == ["alias"]
    try:
        assert lookup_metric("My_Error") == (None, my_error_loss)
        assert lookup_metric("ALIAS") == ("err", my_error_loss)
        assert {"myerror", "alias"} <= set(registered_metric_names())
    finally:
        unregister_metric_func(["myerror", "alias"])
    assert lookup_metric("myerror") is None


def test_decorators_bare_and_with_names() -> None:
    @register_metric_func
    def plain_metric(y_pred, y_true):
        return y_pred.mean()

    @register_metric_class("counter_score", unique_name="count")
    class CountingMetric(torch.nn.Module):
        def forward(self, y_pred, y_true):
            return len(y_pred)

        def compute(self):
            return 0

        def reset(self):
            pass

    @register_metric_class
    class OtherMetric(CountingMetric): ...

    try:
        assert plain_metric.__name__ == "plain_metric"  # the decorator returns the function itself
        assert lookup_metric("plainmetric")[1] is plain_metric
        name, first = lookup_metric("counter")
        assert name == "count" and isinstance(first, CountingMetric)
        assert lookup_metric("counter")[1] is not first  # a new instance per use
        assert isinstance(lookup_metric("other_metric")[1], OtherMetric)
    finally:
        unregister_metric_func("plainmetric")
        unregister_metric_class(["counter", "othermetric"])


def test_errors() -> None:
    with pytest.raises(TypeError, match=r"`func` must be callable"):
        do_register_metric_func(3)
    with pytest.raises(TypeError, match=r"`clz` must be a class\. Received: clz=3 \(type int\)"):
        do_register_metric_class(3)
    with pytest.raises(TypeError, match=r"`names` must be a name or a list of names"):
        do_register_metric_func(len, [""])
    with pytest.raises(KeyError, match=r"No metric function is registered under 'never'"):
        unregister_metric_func(["never"])
