"""Where the time of a training step goes: data loading, copy to the device, forward, backward, optimizer...

:class:`StepProfiler` installs a timer in the model's steps (``Steps.timer``) for the training batches.
The loop and the step call it at each section boundary with the name of the section that just ended;
the profiler adds the time since the previous boundary to that section. The sections cover the whole
training loop, so they add up to the time the training batches took, and a table shows at a glance
whether a run is input-bound (``data`` dominates) or compute-bound.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from typing import Any, TextIO

import torch

from trainwell.callbacks.base import Callback

__all__ = ["SECTIONS", "StepProfiler"]

# In the order a training batch goes through them.
SECTIONS = ("data", "copy", "forward", "backward", "optimizer", "metrics", "callbacks")

_DESCRIPTIONS = {
    "data": "waiting for the next batch (data loading)",
    "copy": "host -> device copy of the batch",
    "forward": "forward pass and loss",
    "backward": "backward pass",
    "optimizer": "optimizer step (and gradient hooks)",
    "metrics": "running loss and metric sums",
    "callbacks": "callbacks around the batch",
}


class StepProfiler(Callback):
    """Measures where the time of each training step goes and reports it as a table when training ends.

    Sections (see :data:`SECTIONS`): ``data`` (from the end of one batch to the arrival of the next:
    the DataLoader, its workers, the sampler), ``copy`` (host -> device), ``forward`` (forward pass and
    loss), ``backward``, ``optimizer`` (gradient hooks such as clipping, and the update), ``metrics``
    (the running sums) and ``callbacks`` (every callback's batch hooks, this one's included). With a
    custom ``train_step``, its own work between the library's ``backward``/``optimizer_step`` calls counts
    as ``forward``.

    On CUDA, the device is synchronized at each boundary (profiling is opt-in: it slows training
    slightly), so that asynchronous kernels are charged to the section that launched them.

    Args:
        verbose: print the table at the end of training.
        synchronize: synchronize CUDA at each boundary (None: when the model runs on CUDA).
        file: where to print (default: standard output).

    Attributes:
        totals: seconds per section, summed over the profiled batches.
        steps: how many training batches were profiled.

    >>> import torch, io
    >>> from torch import nn
    >>> from trainwell import Model
    >>> profiler = StepProfiler(verbose=False)
    >>> model = Model(nn.Linear(4, 2), 'sgd', 'cross_entropy')
    >>> _ = model.fit(torch.randn(64, 4), torch.randint(2, (64,)), epochs=1, batch_size=16, verbose=False,
    ...               callbacks=[profiler])
    >>> profiler.steps, [row['section'] for row in profiler.rows()][:3]
    (4, ['data', 'copy', 'forward'])
    """

    reads_gradients = False  # its on_train_batch_end never looks at gradients

    def __init__(self, *, verbose: bool = True, synchronize: bool | None = None, file: TextIO | None = None) -> None:
        self.verbose = verbose
        self.synchronize = synchronize
        self.file = file
        self.totals: dict[str, float] = dict.fromkeys(SECTIONS, 0.0)
        self.steps = 0
        self._last: float | None = None
        self._sync = False
        self._steps_object: Any = None

    # -- the timer the steps call ---------------------------------------------------------------------
    def _mark(self, section: str) -> None:
        if self._sync:
            torch.cuda.synchronize()
        now = time.perf_counter()
        if self._last is not None:
            self.totals[section] = self.totals.get(section, 0.0) + now - self._last
        self._last = now

    def _install(self) -> None:
        self._steps_object.timer = self._mark
        self._last = time.perf_counter()

    def _remove(self) -> None:
        if self._steps_object is not None and self._steps_object.timer == self._mark:
            self._steps_object.timer = None
        self._last = None

    # -- hooks --------------------------------------------------------------------------------------------
    def on_train_begin(self, logs: Mapping[str, Any]) -> None:
        """Starts a new profile for this run."""
        self.totals = dict.fromkeys(SECTIONS, 0.0)
        self.steps = 0
        self._steps_object = self.model._steps
        device = getattr(self._steps_object, "device", None)
        on_cuda = device is not None and torch.device(device).type == "cuda"
        self._sync = on_cuda if self.synchronize is None else bool(self.synchronize and torch.cuda.is_available())

    def on_epoch_begin(self, epoch_number: int, logs: Mapping[str, Any]) -> None:
        """Times the epoch's training batches (validation is not a training step)."""
        self._install()

    def on_train_batch_end(self, batch_number: int, logs: Mapping[str, Any]) -> None:
        """Counts the batch."""
        self.steps += 1

    def on_valid_begin(self, logs: Mapping[str, Any]) -> None:
        """Stops timing for the validation batches."""
        self._remove()

    def on_epoch_end(self, epoch_number: int, logs: Mapping[str, Any]) -> None:
        """Stops timing until the next epoch's training batches."""
        self._remove()

    def on_train_end(self, logs: Mapping[str, Any]) -> None:
        """Prints the table (with ``verbose``)."""
        self._remove()
        if self.verbose:
            print(self.table(), file=self.file if self.file is not None else sys.stdout)

    def on_exception(self, exception: BaseException) -> None:
        """Takes the timer out of the steps when training fails."""
        self._remove()

    # -- the report ---------------------------------------------------------------------------------------
    @property
    def total(self) -> float:
        """Seconds spent in the profiled training batches, all sections together."""
        return sum(self.totals.values())

    def rows(self) -> list[dict[str, Any]]:
        """One dict per section: ``section``, ``seconds``, ``ms_per_step``, ``percent``, ``description``.

        ``pandas.DataFrame(profiler.rows())`` gives the table as a DataFrame.
        """
        total = self.total
        steps = max(self.steps, 1)
        return [
            {
                "section": section,
                "seconds": seconds,
                "ms_per_step": 1000 * seconds / steps,
                "percent": 100 * seconds / total if total > 0 else 0.0,
                "description": _DESCRIPTIONS.get(section, ""),
            }
            for section, seconds in self.totals.items()
        ]

    def table(self) -> str:
        """The profile as a text table, with a hint when data loading dominates."""
        rows = self.rows()
        lines = [f"Step profile: {self.steps} training steps, {self.total:.3f} s", ""]
        lines.append(f"{'section':<10} {'ms/step':>9} {'%':>6}  what")
        for row in rows:
            lines.append(
                f"{row['section']:<10} {row['ms_per_step']:>9.3f} {row['percent']:>6.1f}  {row['description']}"
            )
        lines.append(f"{'total':<10} {1000 * self.total / max(self.steps, 1):>9.3f} {100.0:>6.1f}")
        data = next(row for row in rows if row["section"] == "data")
        if data["percent"] >= 50:
            lines.append(
                "\nInput-bound: most of the step waits for data. Try DataLoader(num_workers=..., pin_memory=True, "
                "persistent_workers=True), in-memory tensors (fit(x, y)), or cheaper per-sample transforms."
            )
        return "\n".join(lines)
