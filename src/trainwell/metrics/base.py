"""The two metric contracts the loop understands.

* A **batch metric** is any callable ``fn(y_pred, y_true) -> Tensor`` returning the metric's value on one
  batch: a scalar tensor, or a 1-D tensor with one value per name. The loop averages batch values
  weighted by batch size, exactly like the loss, keeping the running sums on the device.
* An **epoch metric** accumulates over the whole epoch and is computed once at its end. It follows the
  torchmetrics protocol (``update`` / ``compute`` / ``reset``), so a torchmetrics object is an epoch
  metric as it is. trainwell's own epoch metrics subclass :class:`EpochMetric`, whose ``update`` never
  synchronizes the host with the device, and which can save and restore its accumulators for an exact
  resume.

Both carry ``names``: the log keys they produce (``('acc',)``, or several for a metric that reports one
value per label).
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any

import torch

__all__ = ["BatchMetric", "EpochMetric", "direction_of"]


class EpochMetric(ABC):
    """A metric accumulated over an epoch and computed at its end.

    Subclasses keep their accumulators as tensors in ``self._state`` (a dict name -> tensor) so that
    moving to a device, resetting and checkpointing work without extra code. ``update`` must not call
    ``.item()``, ``float()``, ``.cpu()``, ``bool(tensor)`` or any other host synchronization.

    Attributes:
        names: the log keys this metric produces, in the order of ``compute()``'s values.
        higher_is_better: whether a larger value is better (drives checkpoint monitoring), or None when
            unknown; a metric with several names may give one per name (a tuple in the order of ``names``).
    """

    names: tuple[str, ...] = ()
    higher_is_better: bool | tuple[bool | None, ...] | None = None
    # True when the metric synchronizes its own state between processes (torchmetrics objects do).
    syncs_itself: bool = False

    def __init__(self) -> None:
        self._state: dict[str, torch.Tensor] = {}

    @abstractmethod
    def update(self, y_pred: Any, y_true: Any) -> None:
        """Accumulates one batch of predictions and targets (no host sync)."""

    @abstractmethod
    def compute(self) -> torch.Tensor:
        """Returns the epoch value: a scalar tensor, or a 1-D tensor with one value per name."""

    def reset(self) -> None:
        """Zeroes every accumulator in place."""
        for tensor in self._state.values():
            tensor.zero_()

    def to(self, device: torch.device | str) -> EpochMetric:
        """Moves the accumulators to ``device`` and returns ``self``."""
        self._state = {key: value.to(device) for key, value in self._state.items()}
        return self

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Returns copies of the accumulators, for checkpoints."""
        return {key: value.detach().clone() for key, value in self._state.items()}

    def merge_states(self, states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        """Combines the accumulators of several processes (each a :meth:`state_dict`) into one state.

        Under ``torchrun`` every rank accumulates its share of the data; the epoch value is computed from
        the merged state. The default adds the tensors key by key, which suits counts and sums; override
        it for anything else (a running mean, kept samples).

        >>> from trainwell.metrics import FBeta
        >>> FBeta().merge_states([{'confusion': torch.eye(2)}, {'confusion': torch.ones(2, 2)}])
        {'confusion': tensor([[2., 1.],
                [1., 2.]])}
        """
        return {key: torch.stack([state[key] for state in states]).sum(0) for key in states[0]}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Restores accumulators saved by :meth:`state_dict`, on this metric's current device."""
        missing = set(self._state) - set(state)
        if missing:
            raise KeyError(f"Metric state is missing {sorted(missing)}; it holds {sorted(state)}.")
        for key, value in state.items():
            if key in self._state:
                self._state[key] = value.to(self._state[key].device)
            else:
                self._state[key] = value.clone()


class BatchMetric:
    """A per-batch metric function with its log keys, as the loop consumes it.

    Args:
        fn: ``fn(y_pred, y_true) -> Tensor``: a scalar tensor, or a 1-D tensor with one value per name.
            The value must stay on the device (no ``.item()``): the loop averages it weighted by batch size.
        names: the log keys, one per value returned by ``fn``.
        higher_is_better: the direction of the metric, when known (one per name as a tuple for several).
        counts: optional ``counts(y_pred, y_true) -> Tensor`` returning ``[numerator, denominator]`` (for one
            name). When given, the loop sums numerators and denominators separately and reports
            ``scale * numerator / denominator``: exact over the epoch even when batches count a different
            number of items (padded sequences, ignored targets), and cheaper than a per-batch mean.
        scale: the factor applied to ``numerator / denominator`` (100 for percentages).
        hits: optional ``hits(y_pred, y_true) -> Tensor``: the numerator of ``counts`` alone, for phases
            where every target counts (the loop knows, e.g. class labels that are all >= 0 while the
            ignored label is negative). The denominator is then the targets' number of elements, known on
            the host: fewer small kernels per batch, which matters more than their size on a CPU.
        state: optional :class:`EpochMetric` that ``fn`` itself updates at each call (a Poutyne or
            torchmetrics ``Metric``'s forward). The batch logs show ``fn``'s value; the phase's value is
            ``state.compute()`` on the whole phase instead of an average of batch values, and the loop
            resets, checkpoints and merges ``state`` across processes like an epoch metric's.
        additive: ``counts`` and ``hits`` are sums over the batch's samples (each sample adds its own
            share, whatever else is in the batch), so that they are the same on several batches
            concatenated as summed over each. The loop may then compute them once for a group of
            batches when nobody reads the batch values: a few kernels per group instead of per batch.

    ``fn`` may return a number, a tensor, an array, a list, a tuple or a dict keyed by the names: the loop
    converts it (see :func:`trainwell.metrics.values.as_values`).

    >>> metric = BatchMetric(lambda y_pred, y_true: (y_pred - y_true).abs().mean(), ('mae',))
    >>> metric(torch.zeros(2), torch.ones(2))
    tensor(1.)
    """

    def __init__(
        self,
        fn: Any,
        names: Sequence[str],
        higher_is_better: bool | tuple[bool | None, ...] | None = None,
        *,
        counts: Any = None,
        scale: float = 1.0,
        hits: Any = None,
        state: EpochMetric | None = None,
        additive: bool = False,
    ) -> None:
        self.fn = fn
        self.names = check_names(names, "names")
        self.higher_is_better = higher_is_better
        self.counts = counts
        self.scale = scale
        self.hits = hits if counts is not None else None
        self.state = state
        self.additive = additive and counts is not None and state is None

    def __call__(self, y_pred: Any, y_true: Any) -> torch.Tensor:
        """The metric's value on one batch, on the device."""
        return self.fn(y_pred, y_true)

    @property
    def func(self) -> Any:
        """The function computed (Poutyne's attribute).

        ``fn``, or the function itself when ``fn`` only binds its default arguments
        (``Accuracy().func is trainwell.acc``).
        """
        fn = self.fn
        if isinstance(fn, partial) and not fn.args:
            try:
                parameters = inspect.signature(fn.func).parameters
            except (TypeError, ValueError):
                return fn
            if all(name in parameters and parameters[name].default == value for name, value in fn.keywords.items()):
                return fn.func
        return fn

    def to(self, device: torch.device | str) -> BatchMetric:
        """Moves ``fn`` to ``device`` when it is a module (a torchmetrics object, a loss with weights)."""
        if isinstance(self.fn, torch.nn.Module):
            self.fn.to(device)
        if self.state is not None:
            self.state.to(device)
        return self

    def cuda(self, device: int | None = None) -> BatchMetric:
        """Moves the metric to a CUDA device (the current one by default), as ``nn.Module.cuda`` does."""
        return self.to("cuda" if device is None else torch.device("cuda", device))

    def cpu(self) -> BatchMetric:
        """Moves the metric to the CPU."""
        return self.to("cpu")

    def __repr__(self) -> str:
        return f"BatchMetric(names={self.names})"


def check_names(names: Sequence[str], argument: str) -> tuple[str, ...]:
    """Validates a sequence of log-key names given by the user.

    >>> check_names(['a', 'b'], 'names')
    ('a', 'b')
    """
    result = (names,) if isinstance(names, str) else tuple(names)
    if not result or not all(isinstance(name, str) and name for name in result):
        raise TypeError(
            f"`{argument}` must be a non-empty string or sequence of non-empty strings. Received: {argument}={names!r}."
        )
    return result


def direction_of(metric: Any, name: str) -> bool | None:
    """Whether a larger value of ``metric``'s log key ``name`` is better, as the metric declares it.

    ``metric.higher_is_better`` may be a bool, None (unknown), a tuple with one entry per name (in the
    order of ``metric.names``, so it survives a rename) or a dict name -> bool. torchmetrics objects
    declare it the same way.

    >>> direction_of(BatchMetric(abs, ('mae',), higher_is_better=False), 'mae')
    False
    >>> metric = BatchMetric(abs, ('a', 'b'), higher_is_better=(True, None))
    >>> direction_of(metric, 'a'), direction_of(metric, 'b'), direction_of(metric, 'c')
    (True, None, None)
    """
    names = tuple(getattr(metric, "names", ()))
    if name not in names:
        return None
    value = getattr(metric, "higher_is_better", None)
    if isinstance(value, Mapping):
        value = value.get(name)
    elif isinstance(value, (tuple, list)):
        index = names.index(name)
        value = value[index] if index < len(value) else None
    return value if isinstance(value, bool) else None
