"""Running loss and metric values for one phase, kept on the device until somebody reads them.

The step loop only adds to device tensors; the host sees a value when the progress display refreshes,
when a callback reads a batch log, or when the phase ends, each time through one transfer.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import Any

import torch

from trainwell import distributed
from trainwell.engine.metric_groups import HeldBatches
from trainwell.engine.tracked_values import accumulator_dtype, accumulator_like, converted, detached, expand
from trainwell.metrics.base import BatchMetric, EpochMetric
from trainwell.utils.tensors import torch_apply

__all__ = ["MetricTracker"]


# The stateful metrics updated since their last reset. As in Poutyne, a metric is reset right after its
# value is computed at the end of a phase, not when the next phase starts; a phase cut short (an error, an
# interrupt) leaves its metrics here, and they are reset when the next phase starts.
_UPDATED: weakref.WeakSet[Any] = weakref.WeakSet()


class _BatchValues(list):
    """One batch's raw values, plus the number of target elements when hits are tracked.

    A metric computed with its group (see :meth:`MetricTracker.defer_metrics`) is None here; ``pair``
    then holds the batch's outputs and targets, to compute it should a batch log be read after all.
    """

    numel = 0
    pair: tuple[torch.Tensor, torch.Tensor] | None = None


class MetricTracker:
    """Sums of the loss and batch metrics weighted by batch size, plus the epoch metrics, for one phase.

    Args:
        batch_metrics: averaged over batches, weighted by batch size.
        epoch_metrics: accumulated and computed at the end of the phase.
        with_loss: whether a loss is tracked (not when predicting).
        targets_valid: every target of the phase counts (see :meth:`reset`).

    >>> tracker = MetricTracker([], [])
    >>> _ = tracker.update(torch.tensor(1.0), None, None, 3)
    >>> _ = tracker.update(torch.tensor(3.0), None, None, 1)
    >>> tracker.compute()
    {'loss': 1.5}
    """

    def __init__(
        self,
        batch_metrics: Sequence[BatchMetric],
        epoch_metrics: Sequence[EpochMetric],
        with_loss: bool = True,
        targets_valid: bool = False,
    ) -> None:
        self.batch_metrics = list(batch_metrics)
        self.epoch_metrics = list(epoch_metrics)
        self.with_loss = with_loss
        # Values a custom step returns by name, tracked like the loss; known from the phase's first batch.
        self.extra_names: tuple[str, ...] = ()
        self._set_names()
        # When the phase has an epoch-end function, every step's returned values are kept for it.
        self.collect = False
        self.outputs: list[dict[str, Any]] = []
        self.output_sizes: list[int] = []
        self.count = 0
        self._sums: list[torch.Tensor] | None = None
        # Batches not yet added to the sums: appending costs nothing on the device, and folding them in
        # every FOLD_EVERY batches replaces one float64 add per value per batch by a few kernels per fold.
        # Folds happen at fixed batch positions (never on a read), so the order of the additions, and so
        # every bit of the sums, is the same whether or not the phase was checkpointed and resumed.
        self._pending: list[list[torch.Tensor]] = []
        self._pending_sizes: list[int] = []
        # With targets that all count, counts metrics track their hits alone and the denominator is the
        # number of target elements, a host integer (see BatchMetric.hits).
        self._pending_numels: list[int] = []
        self._numel_total = 0
        # The last batch's raw values: what stateful metrics show while the phase runs.
        self._last: list[torch.Tensor] | None = None
        self._marked = False  # this phase's stateful metrics are in _UPDATED (done at its first batch)
        # Additive metrics computed on groups of batches (see defer_metrics).
        self.deferring = False
        self.held = HeldBatches([], 0)
        self._set_kinds(targets_valid)

    FOLD_EVERY = 64

    def _set_names(self) -> None:
        self.batch_names: list[tuple[str, ...]] = (
            ([("loss",)] if self.with_loss else [])
            + [metric.names for metric in self.batch_metrics]
            + [(name,) for name in self.extra_names]
        )
        loss_scale: list[float | None] = [None] if self.with_loss else []
        # The scale of each tracked value (loss first): None for a batch mean, summed weighted by batch size.
        self._scales = (
            loss_scale
            + [metric.scale if metric.counts is not None else None for metric in self.batch_metrics]
            + [None] * len(self.extra_names)
        )

    def _set_extra_names(self, names: tuple[str, ...]) -> None:
        clash = set(names) & {name for group in self.batch_names for name in group}
        if clash:
            raise ValueError(
                f"A custom step returned {sorted(clash)}, which the model's loss or metrics already log. "
                "Rename those values, or leave the metric out of the Model."
            )
        self.extra_names = names
        self._set_names()
        self._set_kinds(self.targets_valid)

    def _set_kinds(self, targets_valid: bool) -> None:
        self.targets_valid = targets_valid
        kinds = ["mean"] if self.with_loss else []
        producers = []
        for metric in self.batch_metrics:
            if metric.state is not None or metric.counts is None:
                # A stateful metric's batch value is only shown; its phase value comes from its state.
                kinds.append("stateful" if metric.state is not None else "mean")
                producers.append(converted(metric))
            elif targets_valid and metric.hits is not None:
                kinds.append("hits")
                producers.append(metric.hits)
            else:
                kinds.append("counts")
                producers.append(metric.counts)
        kinds.extend("mean" for _ in self.extra_names)
        self._kinds, self._producers = kinds, producers
        offset = 1 if self.with_loss else 0
        # The columns whose values are sums over samples (additive hits or counts): what defer_metrics
        # may compute on a group of batches instead of each batch.
        additive = [
            (index + offset, producer)
            for index, (metric, producer) in enumerate(zip(self.batch_metrics, producers))
            if getattr(metric, "additive", False) and kinds[index + offset] in ("hits", "counts")
        ]
        deferred = {index - offset for index, _ in additive}
        self._layout = [None if index in deferred else producer for index, producer in enumerate(producers)]
        self.deferring = self.deferring and bool(additive)
        if len(self.held.results) != len(kinds):  # a new layout; within a phase the held results stay
            self.held = HeldBatches(additive, len(kinds))
        self.held.metrics = additive
        self._uses_numel = "hits" in kinds
        self._states = [metric.state for metric in self.batch_metrics if metric.state is not None]
        # A loss and stateless batch metrics, nothing else (the usual phase): update takes a shorter path,
        # which shows on the CPU, where a small model's batch takes a few hundred microseconds.
        self._lean = self.with_loss and not self.epoch_metrics and not self.extra_names and not self._states

    def defer_metrics(self, allowed: bool) -> None:
        """Lets additive batch metrics be computed on groups of batches when nobody reads batch values.

        The loop allows it for a phase without batch-end listeners: a batch's metric value is then only
        ever part of the phase's sums, and a metric that declares itself additive (its counts are sums over
        samples, as accuracy's are) gives the same integer sums on the concatenated outputs of several
        batches as on each batch, with a few kernels per group instead of per batch. The outputs and
        targets are held until the group is computed (see :class:`~trainwell.engine.metric_groups.HeldBatches`),
        never past a fold; every read of the sums (running logs, the phase's values, a checkpoint) computes the group
        first. As for predictions, the loop relies on each batch's outputs and targets being tensors that
        the next batch does not overwrite.
        """
        self.held.flush()
        self.deferring = allowed and bool(self.held.metrics)

    def reset(self, targets_valid: bool = False) -> None:
        """Starts a new phase: zero sums, reset epoch metrics.

        Args:
            targets_valid: every target of the phase counts (no ignored label): counts metrics may then
                track hits alone.
        """
        self.count = 0
        self._sums = None
        self._pending, self._pending_sizes, self._pending_numels = [], [], []
        self._numel_total = 0
        self.outputs, self.output_sizes = [], []
        self._last = None
        self._marked = False
        if self.extra_names or targets_valid != self.targets_valid:  # else the layout stands (a new tracker's)
            self.extra_names = ()
            self._set_names()
            self._set_kinds(targets_valid)
        self.held = HeldBatches(self.held.metrics, len(self._kinds))
        for metric in [*self._states, *self.epoch_metrics]:
            if metric in _UPDATED:
                metric.reset()
                _UPDATED.discard(metric)

    def update(
        self,
        loss: torch.Tensor | None,
        y_pred: Any,
        y_true: Any,
        size: int,
        extra: dict[str, torch.Tensor] | None = None,
    ) -> list[torch.Tensor]:
        """Adds one batch; returns the batch's raw values (loss first), still on the device.

        ``loss`` and ``y_pred`` arrive detached (the steps do it), so no autograd graph is built here
        without paying for a ``no_grad`` context on every batch. ``extra`` holds the named scalars a
        custom step returned; every batch of a phase must return the same names.
        """
        if self._lean and loss is not None and y_pred is not None and not extra:
            return self._update_lean(loss, y_pred, y_true, size)
        if y_pred is None and (self._producers or self.epoch_metrics):
            raise ValueError(
                "The model has metrics, but the custom step returned no 'y_pred' and 'y_true' to compute them "
                "from. Return them in the step's dict, or leave the metrics out of the Model."
            )
        values = _BatchValues(produce(y_pred, y_true) for produce in self._producers)
        if self.with_loss and loss is not None:
            values.insert(0, loss)
        if extra:
            names = tuple(extra)
            if names != self.extra_names:
                if self.count or self.extra_names:
                    raise ValueError(
                        f"A custom step returned the values {list(names)} after returning {list(self.extra_names)} "
                        "earlier in the phase; return the same names at every step."
                    )
                self._set_extra_names(names)
            values.extend(extra.values())
        elif self.extra_names:
            raise ValueError(
                f"A custom step returned no value to log after returning {list(self.extra_names)} earlier in "
                "the phase; return the same names at every step."
            )
        for epoch_metric in self.epoch_metrics:
            epoch_metric.update(y_pred, y_true)
        if not self._marked:  # once per phase, not per batch
            _UPDATED.update([*self.epoch_metrics, *self._states])
            self._marked = True
        return self._record(values, y_true, size)

    def _update_lean(self, loss: torch.Tensor, y_pred: Any, y_true: Any, size: int) -> list[torch.Tensor]:
        """:meth:`update` for the common phase (a loss, stateless batch metrics, nothing else)."""
        values = _BatchValues([loss])
        if self.deferring and type(y_pred) is torch.Tensor and type(y_true) is torch.Tensor:
            self.held.hold(y_pred, y_true)
            values.pair = (y_pred, y_true)
            for produce in self._layout:
                values.append(None if produce is None else produce(y_pred, y_true))
        else:
            for produce in self._producers:
                values.append(produce(y_pred, y_true))
        return self._record(values, y_true, size)

    def _record(self, values: _BatchValues, y_true: Any, size: int) -> list[torch.Tensor]:
        """Adds one batch's values to the pending ones, folding them into the sums every FOLD_EVERY."""
        if self._uses_numel:
            numel = values.numel = y_true.numel()
            self._pending_numels.append(numel)
        pending = self._pending
        pending.append(values)
        self._pending_sizes.append(size)
        if len(pending) == self.FOLD_EVERY:
            self._sums = self._folded()
            self._numel_total += sum(self._pending_numels)
            self._pending, self._pending_sizes, self._pending_numels = [], [], []
            self.held.clear_results()
        self.count += size
        self._last = values
        return values

    def _column(self, index: int) -> list[torch.Tensor]:
        """The pending values of one column: per batch, or per group for the deferred batches."""
        values = [batch[index] for batch in self._pending if batch[index] is not None]
        return values + self.held.results[index] if index < len(self.held.results) else values

    def _folded(self) -> list[torch.Tensor] | None:
        """The sums with the pending batches added (new tensors: the stored sums are left as they are)."""
        self.held.flush()  # every read sees the held batches' metrics
        if not self._pending:
            return self._sums
        sums = self._sums
        # Each kernel costs a few microseconds on a CPU, which the end of a short evaluation pays in full:
        # the fold takes two or three per column (stack, sum in float64, scale), with no zero sums to start.
        folded = []
        for index, kind in enumerate(self._kinds):
            total = None if sums is None else sums[index]
            if kind == "stateful":
                # A placeholder: the phase value is the metric state's.
                folded.append(total if total is not None else accumulator_like(self._pending[0][index]))
                continue
            if kind != "mean":
                # Counts and hits add up as they are, whether they come per batch or per group.
                column = self._column(index)
                part = torch.stack(column).sum(0, dtype=accumulator_dtype(column[0]))
            else:
                part = self._weighted_sum(index)
            folded.append(part if total is None else total + part)
        return folded

    def _weighted_sum(self, index: int) -> torch.Tensor:
        """The pending batch means of column ``index`` weighted by their batch sizes, in float64."""
        stacked = torch.stack([values[index] for values in self._pending])
        dtype = accumulator_dtype(stacked)
        sizes = self._pending_sizes
        # Sizes are grouped so that no weight tensor has to be copied to the device (usually one size, plus
        # a smaller last batch).
        part: torch.Tensor | None = None
        start = 0
        for end in range(1, len(sizes) + 1):
            if end == len(sizes) or sizes[end] != sizes[start]:
                run = stacked[start:end].sum(0, dtype=dtype)
                if part is None:
                    part = run.mul_(sizes[start])
                else:
                    part.add_(run, alpha=sizes[start])
                start = end
        assert part is not None  # there is a pending batch
        return part

    def _finish(self, values: Sequence[torch.Tensor], count: int | None, numel: int) -> list[torch.Tensor]:
        """Turns sums (or one batch's raw values, ``count=None``) into the values to report."""
        finished = []
        for value, scale, kind in zip(values, self._scales, self._kinds):
            factor = 1.0 if scale is None else scale  # counts and hits metrics always have a scale
            if kind == "counts":
                finished.append(value[0] * factor / value[1].clamp_min(1))
            elif kind == "hits":
                finished.append(value * (factor / max(numel, 1)))
            elif kind == "stateful" and count is not None:
                finished.append(value)  # a placeholder, replaced by the caller
            else:
                finished.append(value if count is None else value / count)
        return finished

    def _numel_so_far(self) -> int:
        return self._numel_total + sum(self._pending_numels)

    def batch_logs(self, values: Sequence[torch.Tensor]) -> dict[str, float]:
        """One batch's values as returned by :meth:`update` -> ``{name: float}`` (one host transfer)."""
        numel = getattr(values, "numel", 0)
        pair = getattr(values, "pair", None)
        if pair is not None:  # a metric left to its group, read anyway: computed for this batch alone
            values = self.held.one_batch(values, pair)
        return expand(self.batch_names, self._finish(values, None, numel))

    def loss_total(self) -> torch.Tensor | None:
        """The running sum of the phase's loss, still on the device (None before the first batch).

        A single NaN or infinite batch loss makes it non-finite for the rest of the phase, so checking
        it every few steps catches every bad batch without a host transfer per batch.
        """
        sums = self._folded()
        if not sums or ("loss",) not in self.batch_names:
            return None
        return sums[self.batch_names.index(("loss",))]

    def running_logs(self) -> dict[str, float]:
        """The averages so far (one host transfer)."""
        sums = self._folded()
        if not sums or not self.count:
            return {}
        values = self._finish(sums, self.count, self._numel_so_far())
        if self._states:
            # Stateful metrics show their last batch's value: computing the state could be costly (or
            # collective under torchrun) and the display runs on one rank only.
            last = self._last
            values = [
                (last[index] if last is not None else torch.full_like(value, float("nan"), dtype=torch.float64))
                if kind == "stateful"
                else value
                for index, (value, kind) in enumerate(zip(values, self._kinds))
            ]
        return expand(self.batch_names, values)

    def compute(self) -> dict[str, float]:
        """The phase's logs: weighted averages of loss and batch metrics, then the epoch metrics."""
        sums, count, numel = self._folded(), self.count, self._numel_so_far()
        if distributed.is_distributed():
            # Under torchrun every rank holds its shard's sums: all log the global values.
            sums, count, numel = distributed.reduce_sums(sums, count, numel)
            for metric in [*self._states, *self.epoch_metrics]:
                distributed.gather_epoch_metric(metric)
        values = self._finish(sums, count, numel) if sums and count else []
        if values and self._states:
            states = iter(self._states)
            values = [
                detached(next(states).compute()) if kind == "stateful" else value
                for value, kind in zip(values, self._kinds)
            ]
        names = self.batch_names if values else []
        names = names + [metric.names for metric in self.epoch_metrics]
        values = values + [torch.as_tensor(detached(metric.compute())) for metric in self.epoch_metrics]
        for metric in [*self._states, *self.epoch_metrics]:
            metric.reset()  # Poutyne's order: compute, then reset, at the phase's end
            _UPDATED.discard(metric)
        self._marked = False
        return expand(names, values)

    def state_dict(self) -> dict[str, Any]:
        """Copies of the running sums and epoch-metric accumulators, for a mid-phase checkpoint."""
        held_results = self.held.state_dict()
        return {
            "count": self.count,
            "sums": [total.clone() for total in self._sums] if self._sums is not None else None,
            # Kept apart, not folded: the resumed phase folds them where the uninterrupted one would.
            # A deferred metric has no per-batch value (None) but per-group results, kept as well.
            "pending": [
                [None if value is None else value.detach().clone() for value in values] for values in self._pending
            ],
            "group_results": held_results,
            "pending_sizes": list(self._pending_sizes),
            "pending_numels": list(self._pending_numels),
            "numel_total": self._numel_total,
            "targets_valid": self.targets_valid,
            "extra_names": list(self.extra_names),
            "outputs": [dict(output) for output in self.outputs],
            "output_sizes": list(self.output_sizes),
            "epoch_metrics": [metric.state_dict() for metric in self.epoch_metrics],
            # The states of the batch metrics that keep one (Metric objects used per batch).
            "batch_metric_states": [state.state_dict() for state in self._states],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restores :meth:`state_dict`."""
        self.count = int(state["count"])
        self._sums = [total.clone() for total in state["sums"]] if state["sums"] is not None else None
        self._pending = [list(values) for values in state.get("pending", [])]
        self._pending_sizes = [int(size) for size in state.get("pending_sizes", [])]
        self._pending_numels = [int(numel) for numel in state.get("pending_numels", [])]
        self._numel_total = int(state.get("numel_total", 0))
        self.targets_valid = bool(state.get("targets_valid", False))
        self.extra_names = tuple(state.get("extra_names", ()))
        self._set_names()
        self._set_kinds(self.targets_valid)
        self.held.load_state_dict(state.get("group_results"))
        self.outputs = [dict(output) for output in state.get("outputs", [])]
        self.output_sizes = [int(size) for size in state.get("output_sizes", [])]
        for metric, metric_state in zip(self.epoch_metrics, state["epoch_metrics"]):
            metric.load_state_dict(metric_state)
        for metric_state_holder, metric_state in zip(self._states, state.get("batch_metric_states", [])):
            metric_state_holder.load_state_dict(metric_state)

    def load_merged(self, states: Sequence[dict[str, Any]]) -> None:
        """Restores the sum of several :meth:`state_dict` s: every rank's share of a phase, on one rank.

        An elastic resume (a mid-epoch checkpoint of W ranks continued on W' ranks) gives rank 0 the
        merged running sums and epoch-metric states of all the old ranks, and the other ranks zeros laid
        out the same way (the next checkpoint gathers the same structure from every rank); the reduction
        at the end of the phase then adds up the same totals. The sums match the uninterrupted run's to
        float-summation order (the additions are grouped differently).
        """
        totals: list[torch.Tensor] | None = None
        count = numel = 0
        epoch_states: list[list[Any]] = [[] for _ in self.epoch_metrics]
        batch_states: list[list[Any]] = []
        outputs: list[dict[str, Any]] = []
        sizes: list[int] = []
        for state in states:
            self.load_state_dict(state)
            sums = self._folded()
            if sums is not None:
                totals = list(sums) if totals is None else [a + b for a, b in zip(totals, sums)]
            count += self.count
            numel += self._numel_so_far()
            # Copies: a metric's state_dict may hold its live buffers, which the next load overwrites.
            for collected, metric in zip(epoch_states, self.epoch_metrics):
                collected.append(torch_apply(metric.state_dict(), torch.Tensor.clone))
            batch_states.append([torch_apply(holder.state_dict(), torch.Tensor.clone) for holder in self._states])
            outputs += self.outputs
            sizes += self.output_sizes
        self._sums, self.count, self._numel_total = totals, count, numel
        self._pending, self._pending_sizes, self._pending_numels = [], [], []
        self.held.clear_results()
        self.outputs, self.output_sizes = outputs, sizes
        for metric, collected in zip(self.epoch_metrics, epoch_states):
            metric.load_state_dict(_merged(metric, collected))
        for index, holder in enumerate(self._states):
            holder.load_state_dict(_merged(holder, [states_of_rank[index] for states_of_rank in batch_states]))
        if distributed.rank() != 0:  # the totals are rank 0's to carry
            self._sums = None if totals is None else [torch.zeros_like(total) for total in totals]
            self.count = self._numel_total = 0
            self.outputs, self.output_sizes = [], []
            for metric in [*self.epoch_metrics, *self._states]:
                metric.reset()


def _merged(metric: Any, states: list[Any]) -> Any:
    merge = getattr(metric, "merge_states", None)
    if merge is None:
        raise ValueError(
            f"The metric {type(metric).__name__} has no merge_states(), so its mid-epoch state cannot move to another "
            "number of processes. Resume with the same number of processes, or from an end-of-epoch checkpoint."
        )
    return merge(states)
