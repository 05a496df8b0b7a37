"""Log keys of metrics: the name a metric object gives itself, and numbered names for doubles.

A metric is named, in order of precedence, by a ``(names, metric)`` pair, by its ``__name__`` attribute
(a function's name, or a string or list of strings set on an object), or by its class name in snake case
(``SomeMetric()`` -> ``'some_metric'``), as Poutyne names them. When several metrics end up with the same
log key, each occurrence is numbered (``acc1``, ``acc2``) instead of failing: see :func:`rename_doubles`.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

__all__ = ["camel_to_snake", "flatten_metric_names", "get_names_of_metric", "rename_doubles"]

# An upper-case letter starting a capitalized word, then a lower-case letter or digit before an upper-case one.
_WORD_START = re.compile(r"(.)([A-Z][a-z]+)")
_CASE_CHANGE = re.compile(r"([a-z0-9])([A-Z])")

Names = str | Sequence[str]


def camel_to_snake(name: str) -> str:
    """Converts a CamelCase class name to snake case, keeping acronyms in one piece.

    >>> camel_to_snake('SpearmanCorrCoef'), camel_to_snake('R2Score'), camel_to_snake('HTTPError')
    ('spearman_corr_coef', 'r2_score', 'http_error')
    """
    return _CASE_CHANGE.sub(r"\1_\2", _WORD_START.sub(r"\1_\2", name)).lower()


def get_names_of_metric(metric: Any) -> tuple[Names, Any]:
    """Returns ``(names, metric)``: the log key(s) a metric gives itself, and the metric.

    Args:
        metric: a ``(names, metric)`` pair, a function, or an object (named by its ``__name__`` attribute
            when it has one, else by its class).

    >>> def mean_error(y_pred, y_true): ...
    >>> get_names_of_metric(mean_error)[0], get_names_of_metric(('err', mean_error))[0]
    ('mean_error', 'err')
    >>> class SomeMetric: ...
    >>> get_names_of_metric(SomeMetric())[0]
    'some_metric'
    """
    if isinstance(metric, tuple) and len(metric) == 2:
        return metric[0], metric[1]
    names = getattr(metric, "__name__", None)
    if names is None:
        names = camel_to_snake(type(metric).__name__)
    return names, metric


def flatten_metric_names(metric_names: Sequence[Names]) -> list[str]:
    """Flattens a list whose items are names or lists of names.

    >>> flatten_metric_names(['a', ['b', 'c'], 'd'])
    ['a', 'b', 'c', 'd']
    """
    return [name for names in metric_names for name in ([names] if isinstance(names, str) else names)]


def _numbered(metric_names: Sequence[Names]) -> list[Names]:
    totals = Counter(flatten_metric_names(metric_names))
    seen: Counter[str] = Counter()

    def number(name: str) -> str:
        if totals[name] == 1:
            return name
        seen[name] += 1
        return f"{name}{seen[name]}"

    return [number(names) if isinstance(names, str) else [number(name) for name in names] for names in metric_names]


def rename_doubles(batch_metrics_names: list[Names], epoch_metrics_names: list[Names]) -> tuple[list, list]:
    """Numbers every name used more than once across the batch and epoch metrics, in order.

    Args:
        batch_metrics_names: one item per batch metric: its name, or the list of its names.
        epoch_metrics_names: the same for the epoch metrics, numbered after the batch metrics.

    Returns:
        The two lists, of the same shapes, with ``name1``, ``name2``... in place of the doubles.

    >>> rename_doubles(['acc', ['f1', 'acc']], ['f1', 'loss'])
    (['acc1', ['f11', 'acc2']], ['f12', 'loss'])
    """
    renamed = _numbered([*batch_metrics_names, *epoch_metrics_names])
    count = len(batch_metrics_names)
    return renamed[:count], renamed[count:]
