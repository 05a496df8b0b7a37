"""Per-layer gradient statistics of every optimizer step (Poutyne's gradient loggers).

``MemoryGradientLogger`` keeps them, ``CSVGradientLogger`` and ``AtomicCSVGradientLogger`` write one
CSV file per layer, ``TensorBoardGradientLogger`` writes TensorBoard scalars; a subclass of
``GradientLoggerBase`` that implements :meth:`~GradientLoggerBase.log_stats` sends them anywhere else.

For each watched parameter with gradient ``g`` the statistics are Poutyne's: ``mean`` and ``var``
(unbiased) of ``|g|``, ``min`` and ``max`` of ``g``, ``abs_min`` and ``abs_max`` of ``|g|``, and the
p-norms ``l<p>`` of ``g``. They are computed on the gradients' device when the step's gradients are final
(just before ``optimizer.step()``, after the averaging of ``batches_per_step``) and kept there; the
host reads them in one transfer at the end of each epoch (or every ``flush_every`` steps), when
``log_stats`` is called for each step in order. So logging every step costs no synchronization per step.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from trainwell.callbacks.csv_logger import CSVFile, check_csv_arguments
from trainwell.callbacks.gradients import GradientReader
from trainwell.callbacks.tensorboard import resolve_writer

__all__ = [
    "AtomicCSVGradientLogger",
    "CSVGradientLogger",
    "GradientLoggerBase",
    "MemoryGradientLogger",
    "TensorBoardGradientLogger",
]


def _norm_types(norm_type: float | Sequence[float]) -> list[float]:
    values = [norm_type] if isinstance(norm_type, (int, float)) and not isinstance(norm_type, bool) else norm_type
    if (
        not isinstance(values, Sequence)
        or not values
        or not all(isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0 for value in values)
    ):
        raise ValueError(
            "`norm_type` must be a positive number (float('inf') for the largest absolute value) or a list of them. "
            f"Received: norm_type={norm_type!r}."
        )
    return list(values)


class GradientLoggerBase(GradientReader):
    """Computes Poutyne's gradient statistics at every optimizer step; :meth:`log_stats` receives them.

    Args:
        keep_bias: also watch biases (parameters whose own name starts with 'bias').
        norm_type: the p of the ``l<p>`` norm, or a list of them (each gives a column ``l<p>``).
        flush_every: read the statistics from the device every this many steps instead of once per epoch.

    Attributes:
        layers: the names of the watched parameters, set when training begins.
        stats_names: the statistics, in column order.

    >>> import torch
    >>> from trainwell import Model
    >>> class Printer(GradientLoggerBase):
    ...     def log_stats(self, epoch_number, batch_number, logs, layer_stats):
    ...         print(epoch_number, batch_number, sorted(layer_stats), list(layer_stats['weight'])[:3])
    >>> _ = Model(torch.nn.Linear(2, 1), 'sgd', 'mse').fit(torch.ones(4, 2), torch.ones(4, 1), epochs=1,
    ...                                                    verbose=False, callbacks=[Printer()])
    1 1 ['weight'] ['mean', 'var', 'min']
    """

    def __init__(
        self, keep_bias: bool = False, norm_type: float | Sequence[float] = 2.0, *, flush_every: int | None = None
    ) -> None:
        super().__init__(keep_bias)
        if flush_every is not None and (
            isinstance(flush_every, bool) or not isinstance(flush_every, int) or flush_every < 1
        ):
            raise ValueError(f"`flush_every` must be a positive int or None. Received: flush_every={flush_every!r}.")
        self.norm_type = _norm_types(norm_type)
        self.stats_names = ["mean", "var", "min", "abs_min", "max", "abs_max", *(f"l{p}" for p in self.norm_type)]
        self.flush_every = flush_every
        self._pending: list[tuple[int, int, tuple[int, ...], torch.Tensor]] = []

    @property
    def layers(self) -> list[str]:
        """The names of the watched parameters."""
        return self.layer_names

    def on_train_begin(self, logs: Mapping[str, Any]) -> None:  # noqa: D102
        super().on_train_begin(logs)
        self._pending = []

    def _read_gradients(self) -> None:
        gradients, positions = self._gradients(dense=True)
        if not gradients:
            return
        with torch.no_grad():
            rows = []
            for gradient in gradients:
                values = gradient.detach().float()
                absolute = values.abs()
                rows.append(
                    torch.stack(
                        [
                            absolute.mean(),
                            absolute.var() if absolute.numel() > 1 else torch.zeros((), device=values.device),
                            values.min(),
                            absolute.min(),
                            values.max(),
                            absolute.max(),
                            *(torch.linalg.vector_norm(values, p) for p in self.norm_type),
                        ]
                    )
                )
            state = self.model.state
            self._pending.append((state.epoch, state.batch, positions, torch.stack(rows)))
        if self.flush_every is not None and len(self._pending) >= self.flush_every:
            self.flush()

    def flush(self) -> None:
        """Reads the pending statistics from the device (one transfer) and calls :meth:`log_stats` per step."""
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        tables = torch.cat([table for *_, table in pending]).tolist()
        row = 0
        for epoch, batch, positions, _ in pending:
            layer_stats = {}
            for position in positions:
                layer_stats[self.layer_names[position]] = dict(zip(self.stats_names, tables[row]))
                row += 1
            self.log_stats(epoch, batch, {}, layer_stats)

    def on_epoch_end(self, epoch_number: int, logs: Mapping[str, Any]) -> None:  # noqa: D102
        self.flush()

    def on_train_end(self, logs: Mapping[str, Any]) -> None:  # noqa: D102
        self.flush()
        super().on_train_end(logs)

    def log_stats(
        self, epoch_number: int, batch_number: int, logs: Mapping[str, Any], layer_stats: dict[str, dict[str, float]]
    ) -> None:
        """Receives one optimizer step's statistics, ``{layer: {'mean': ..., 'var': ..., ...}}``.

        Args:
            epoch_number: the step's epoch.
            batch_number: the batch that completed the step.
            logs: empty: the statistics are handed over after the step, when its batch logs are gone.
            layer_stats: the statistics of each watched layer that had a gradient at that step.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement log_stats(...) to receive the statistics.")


class MemoryGradientLogger(GradientLoggerBase):
    """Keeps every step's statistics in ``history``: ``{layer: [{'mean': ..., 'epoch': 1, 'batch': 1}, ...]}``.

    Args:
        **kwargs: those of :class:`GradientLoggerBase` (``keep_bias``, ``norm_type``, ``flush_every``).
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.history: dict[str, list[dict[str, float]]] = {}

    def on_train_begin(self, logs: Mapping[str, Any]) -> None:  # noqa: D102
        super().on_train_begin(logs)
        self.history = {layer: [] for layer in self.layers}

    def log_stats(  # noqa: D102
        self, epoch_number: int, batch_number: int, logs: Mapping[str, Any], layer_stats: dict[str, dict[str, float]]
    ) -> None:
        for layer, stats in layer_stats.items():
            self.history[layer].append({**stats, "epoch": epoch_number, "batch": batch_number})


class CSVGradientLogger(GradientLoggerBase):
    """Writes each layer's statistics to its own CSV file, one row per optimizer step.

    Columns: ``epoch``, ``batch``, then :attr:`stats_names`. Rows are written when the statistics are
    read (each epoch end, or every ``flush_every`` steps).

    Args:
        filename: the file name, with ``{}`` where the layer's name goes (``'grads_{}.csv'``).
        separator: the cell delimiter.
        append: continue existing files instead of overwriting them.
        **kwargs: those of :class:`GradientLoggerBase` (``keep_bias``, ``norm_type``, ``flush_every``).
    """

    _atomic = False

    def __init__(
        self, filename: str | os.PathLike[str], *, separator: str = ",", append: bool = False, **kwargs: Any
    ) -> None:
        check_csv_arguments(filename, separator, {"append": append})
        if "{}" not in os.fspath(filename):
            raise ValueError(
                "`filename` must hold '{}' where each layer's name goes, such as 'gradients_{}.csv'. "
                f"Received: filename={os.fspath(filename)!r}."
            )
        super().__init__(**kwargs)
        self.filename = os.fspath(filename)
        self.separator = separator
        self.append = append
        self.temporary_filename: str | None = None
        self._files: dict[str, CSVFile] = {}
        self._rows_by_layer: dict[str, list[dict[str, Any]]] = {}  # handed to log_stats, written by flush

    def on_train_begin(self, logs: Mapping[str, Any]) -> None:  # noqa: D102
        super().on_train_begin(logs)
        self._close()
        header = ["epoch", "batch", *self.stats_names]
        for layer in self.layers:
            file = CSVFile(self.filename.format(layer), self.separator, self._atomic, self.temporary_filename)
            file.open(header, append=self.append)
            self._files[layer] = file

    def log_stats(  # noqa: D102
        self, epoch_number: int, batch_number: int, logs: Mapping[str, Any], layer_stats: dict[str, dict[str, float]]
    ) -> None:
        for layer, stats in layer_stats.items():
            self._rows_by_layer.setdefault(layer, []).append({"epoch": epoch_number, "batch": batch_number, **stats})

    def flush(self) -> None:
        """Reads the pending statistics and writes them, one write (or atomic rewrite) per file."""
        super().flush()
        for layer, rows in self._rows_by_layer.items():
            self._files[layer].write_rows(rows, sync=True)
        self._rows_by_layer = {}

    def on_train_end(self, logs: Mapping[str, Any]) -> None:  # noqa: D102
        super().on_train_end(logs)
        self._close()

    def on_exception(self, exception: BaseException) -> None:  # noqa: D102
        self._close()

    def _close(self) -> None:
        for file in self._files.values():
            file.close()
        self._files = {}


class AtomicCSVGradientLogger(CSVGradientLogger):
    """A :class:`CSVGradientLogger` whose files are rewritten atomically (temporary file, fsync, rename).

    Each read of the statistics rewrites each layer's file once, so a reader never sees a torn file.

    Args:
        filename: the file name, with ``{}`` where the layer's name goes.
        separator: the cell delimiter.
        append: continue existing files instead of overwriting them.
        temporary_filename: the temporary file written before each rename; by default a unique name
            beside each file. It must be on the same file system.
        **kwargs: those of :class:`GradientLoggerBase` (``keep_bias``, ``norm_type``, ``flush_every``).
    """

    _atomic = True

    def __init__(
        self,
        filename: str | os.PathLike[str],
        *,
        separator: str = ",",
        append: bool = False,
        temporary_filename: str | os.PathLike[str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(filename, separator=separator, append=append, **kwargs)
        if temporary_filename is not None and not isinstance(temporary_filename, (str, os.PathLike)):
            raise TypeError(
                "`temporary_filename` must be a path or None. Received: temporary_filename of type "
                f"{type(temporary_filename).__name__}."
            )
        self.temporary_filename = None if temporary_filename is None else os.fspath(temporary_filename)


class TensorBoardGradientLogger(GradientLoggerBase):
    """Writes each step's statistics to TensorBoard: chart ``gradient_stats/<layer>``, one series per statistic.

    Args:
        writer: a ``torch.utils.tensorboard.SummaryWriter``, or a log directory for which one is created
            (and flushed and closed by the callback).
        initial_step: the TensorBoard step before the first logged step (each logged step adds 1).
        **kwargs: those of :class:`GradientLoggerBase` (``keep_bias``, ``norm_type``, ``flush_every``).
    """

    def __init__(self, writer: Any, initial_step: int = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if isinstance(initial_step, bool) or not isinstance(initial_step, int) or initial_step < 0:
            raise ValueError(f"`initial_step` must be an int >= 0. Received: initial_step={initial_step!r}.")
        self.writer, self._owns_writer = resolve_writer(writer, type(self).__name__)
        self.current_step = initial_step

    def log_stats(  # noqa: D102
        self, epoch_number: int, batch_number: int, logs: Mapping[str, Any], layer_stats: dict[str, dict[str, float]]
    ) -> None:
        self.current_step += 1
        for layer, stats in layer_stats.items():
            for name, value in stats.items():
                self.writer.add_scalars(f"gradient_stats/{layer}", {name: value}, self.current_step)

    def flush(self) -> None:  # noqa: D102
        super().flush()
        if self._owns_writer:  # a writer passed in flushes on its own schedule
            self.writer.flush()

    def on_train_end(self, logs: Mapping[str, Any]) -> None:  # noqa: D102
        super().on_train_end(logs)
        if self._owns_writer:
            self.writer.close()
