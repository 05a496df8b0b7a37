from __future__ import annotations

import pytest

from trainwell.metrics import camel_to_snake, flatten_metric_names, get_names_of_metric, rename_doubles


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("SomeMetricName", "some_metric_name"),
        ("MyConstTorchMetric", "my_const_torch_metric"),
        ("R2Score", "r2_score"),
        ("SpearmanCorrCoef", "spearman_corr_coef"),
        ("MulticlassF1Score", "multiclass_f1_score"),
        ("AUROC", "auroc"),
        ("F1", "f1"),
    ],
)
def test_camel_to_snake(name: str, expected: str) -> None:
    assert camel_to_snake(name) == expected


def test_names_of_metrics() -> None:
    def error(y_pred, y_true): ...

    class Named:
        __name__ = ("a", "b")

    class Unnamed: ...

    assert get_names_of_metric(error) == ("error", error)
    assert get_names_of_metric(("e", error)) == ("e", error)
    assert get_names_of_metric(Named())[0] == ("a", "b")
    assert get_names_of_metric(Unnamed())[0] == "unnamed"


def test_flatten() -> None:
    assert flatten_metric_names([["a", "b"], "c", []]) == ["a", "b", "c"]


def test_rename_doubles_numbers_in_order_across_both_lists() -> None:
    assert rename_doubles(["a", "a"], []) == (["a1", "a2"], [])
    assert rename_doubles([], ["a", "b", "a", "a"]) == ([], ["a1", "b", "a2", "a3"])
    assert rename_doubles([["a", "b"], "b"], []) == ([["a", "b1"], "b2"], [])
    assert rename_doubles([["a"]], [["a"]]) == ([["a1"]], [["a2"]])
    assert rename_doubles(["a", ["b", "a"], "c"], ["e", ["c", "a"]]) == (["a1", ["b", "a2"], "c1"], ["e", ["c2", "a3"]])
    assert rename_doubles(["x"], ["y"]) == (["x"], ["y"])
