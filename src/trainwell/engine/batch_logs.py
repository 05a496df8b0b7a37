"""The logs the loop hands to batch-end hooks: lazy, and keyed as Poutyne keys them per phase.

Training batches log ``loss`` and the batch metrics under their own names; validation and test batches
log them prefixed (``val_loss``, ``test_acc``), beside ``batch``, ``size`` and ``time``. The values are
the tracker's device tensors until a hook reads one (see :class:`BatchLogs`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch

from trainwell.engine.tracking import MetricTracker

__all__ = ["BatchLogs", "PrefixedLogs", "call_batch_end"]


class BatchLogs(Mapping[str, Any]):
    """The logs of one batch, read lazily: tensors reach the host only when a key is read.

    Behaves as a read-only dict of floats (``logs['loss']``, ``dict(logs)``, ``{**logs}``).
    """

    def __init__(self, base: dict[str, Any], tracker: MetricTracker, values: Sequence[torch.Tensor]):
        self._base = base
        self._tracker = tracker
        self._values = values
        self._resolved: dict[str, Any] | None = None

    def _data(self) -> dict[str, Any]:
        if self._resolved is None:
            self._resolved = {**self._base, **self._tracker.batch_logs(self._values)}
        return self._resolved

    def __getitem__(self, key: str) -> Any:
        if key in self._base:
            return self._base[key]
        return self._data()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data())

    def __len__(self) -> int:
        return len(self._data())

    def copy(self) -> dict[str, Any]:
        """A plain dict of the logs."""
        return dict(self._data())

    def __repr__(self) -> str:
        return repr(self._data())


class PrefixedLogs(Mapping[str, Any]):
    """A read-only view of lazy batch logs with ``prefix`` before every metric key.

    Args:
        base: the keys kept as they are (``batch``, ``size``, ``time``).
        values: the batch's loss and metrics, read lazily.
        prefix: put before each key of ``values`` (``'val_'``, ``'test_'``).

    >>> tracker = MetricTracker([], [])
    >>> values = tracker.update(torch.tensor(2.0), None, None, 4)
    >>> dict(PrefixedLogs({'batch': 1}, BatchLogs({}, tracker, values), 'val_'))
    {'batch': 1, 'val_loss': 2.0}
    """

    def __init__(self, base: dict[str, Any], values: Mapping[str, Any], prefix: str) -> None:
        self._base = base
        self._values = values
        self._prefix = prefix

    def __getitem__(self, key: str) -> Any:
        if key in self._base:
            return self._base[key]
        if key.startswith(self._prefix):
            return self._values[key[len(self._prefix) :]]
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        yield from self._base
        for key in self._values:
            yield self._prefix + key

    def __len__(self) -> int:
        return len(self._base) + len(self._values)

    def copy(self) -> dict[str, Any]:
        """A plain dict of the logs."""
        return dict(self)

    def __repr__(self) -> str:
        return repr(dict(self))


def call_batch_end(
    listeners: Sequence[Any],
    batch_number: int,
    size: int,
    started: float,
    tracker: MetricTracker,
    values: Sequence[torch.Tensor],
    prefix: str = "",
) -> None:
    """Calls the batch-end ``listeners`` with the batch's lazy logs (``prefix`` before the metric keys)."""
    base = {"batch": batch_number, "size": size, "time": time.perf_counter() - started}
    logs: Mapping[str, Any] = (
        BatchLogs(base, tracker, values) if not prefix else PrefixedLogs(base, BatchLogs({}, tracker, values), prefix)
    )
    for method in listeners:
        method(batch_number, logs)
