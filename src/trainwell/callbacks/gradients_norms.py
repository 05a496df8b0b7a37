"""Gradient norms of every optimizer step, kept in memory, written to CSV or to TensorBoard.

The norms are read when a step's gradients are final (after the averaging of ``batches_per_step``,
just before ``optimizer.step()``), computed on the device with one multi-tensor kernel, and moved to
the host once per epoch, or every ``flush_every`` steps.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import torch

from trainwell.callbacks.csv_logger import CSVFile, check_csv_arguments
from trainwell.callbacks.gradients import GradientReader
from trainwell.callbacks.tensorboard import resolve_writer

__all__ = [
    "CSVGradientNormLogger",
    "GradientNormLogger",
    "MemoryGradientNormLogger",
    "TensorBoardGradientNormLogger",
]


class GradientNormLogger(GradientReader):
    """Records the total and per-layer gradient norms of every optimizer step; subclasses store them.

    The total norm is the one ``torch.nn.utils.clip_grad_norm_`` and ``get_total_norm`` compute over
    the watched parameters. The norms stay on the device and are read in one transfer at the end of
    each epoch (or every ``flush_every`` steps), then handed to :meth:`_on_gradient_norms` as records
    ``{'epoch', 'batch', 'step', 'total_norm', 'layer_norms': {layer: norm}}``; ``step`` counts optimizer
    steps since the model was created (from 1), ``batch`` is the batch that completed the step, and a
    layer without a gradient at that step has norm 0.

    Args:
        keep_bias: also watch biases (by default every trainable parameter is watched, so that the total
            is the norm the optimizer and clipping see).
        norm_type: the p of the p-norm (``float('inf')`` for the largest absolute value).
        flush_every: read the norms from the device every this many steps instead of once per epoch.
    """

    def __init__(self, *, keep_bias: bool = True, norm_type: float = 2.0, flush_every: int | None = None) -> None:
        super().__init__(keep_bias)
        if isinstance(norm_type, bool) or not isinstance(norm_type, (int, float)) or norm_type <= 0:
            raise ValueError(
                f"`norm_type` must be a positive number or float('inf'). Received: norm_type={norm_type!r}."
            )
        if flush_every is not None and (
            isinstance(flush_every, bool) or not isinstance(flush_every, int) or flush_every < 1
        ):
            raise ValueError(f"`flush_every` must be a positive int or None. Received: flush_every={flush_every!r}.")
        self.norm_type = float(norm_type)
        self.flush_every = flush_every
        self._pending: list[tuple[tuple[int, int, int], torch.Tensor]] = []

    def on_train_begin(self, logs: Mapping[str, Any]) -> None:  # noqa: D102
        super().on_train_begin(logs)
        self._pending = []

    def _read_gradients(self) -> None:
        gradients, positions = self._gradients(dense=False)
        if not gradients:
            return
        state = self.model.state
        with torch.no_grad():
            layer_norms, _ = self._scatter(list(torch._foreach_norm(gradients, self.norm_type)), positions)
            total = torch.linalg.vector_norm(layer_norms, self.norm_type)
            # The optimizer step being prepared is counted just after this hook runs.
            where = (state.epoch, state.batch, state.optimizer_steps + 1)
            self._pending.append((where, torch.cat([total.reshape(1), layer_norms])))
        if self.flush_every is not None and len(self._pending) >= self.flush_every:
            self.flush()

    def flush(self) -> None:
        """Reads the pending norms from the device (one transfer) and hands them to the subclass."""
        if not self._pending:
            return
        values = torch.stack([norms for _, norms in self._pending]).tolist()
        records = [
            {
                "epoch": epoch,
                "batch": batch,
                "step": step,
                "total_norm": row[0],
                "layer_norms": dict(zip(self.layer_names, row[1:])),
            }
            for ((epoch, batch, step), _), row in zip(self._pending, values)
        ]
        self._pending = []
        self._on_gradient_norms(records)

    def on_epoch_end(self, epoch_number: int, logs: Mapping[str, Any]) -> None:  # noqa: D102
        self.flush()

    def on_train_end(self, logs: Mapping[str, Any]) -> None:  # noqa: D102
        self.flush()
        super().on_train_end(logs)

    def _on_gradient_norms(self, records: list[dict[str, Any]]) -> None:
        raise NotImplementedError


class MemoryGradientNormLogger(GradientNormLogger):
    """Keeps the gradient norms of every optimizer step in ``history`` (see :class:`GradientNormLogger`).

    >>> import torch
    >>> from trainwell import Model
    >>> norms = MemoryGradientNormLogger()
    >>> _ = Model(torch.nn.Linear(2, 1), 'sgd', 'mse').fit(torch.ones(8, 2), torch.ones(8, 1), batch_size=4,
    ...                                                    epochs=1, verbose=False, callbacks=[norms])
    >>> len(norms.total_norms), sorted(norms.history[0]['layer_norms'])
    (2, ['bias', 'weight'])
    """

    def __init__(self, *, keep_bias: bool = True, norm_type: float = 2.0, flush_every: int | None = None) -> None:
        super().__init__(keep_bias=keep_bias, norm_type=norm_type, flush_every=flush_every)
        self.history: list[dict[str, Any]] = []

    @property
    def total_norms(self) -> list[float]:
        """The total norm of every recorded step, in order."""
        return [record["total_norm"] for record in self.history]

    def _on_gradient_norms(self, records: list[dict[str, Any]]) -> None:
        self.history.extend(records)


class CSVGradientNormLogger(GradientNormLogger):
    """Writes the gradient norms of every optimizer step to a CSV file, one row per step.

    Columns: ``epoch``, ``batch``, ``step``, ``total_norm``, then one per watched parameter. Rows are
    written when the norms are read (each epoch end, or every ``flush_every`` steps). Like
    :class:`~trainwell.callbacks.csv_logger.CSVLogger`, its state lets a resumed run drop the rows
    written after the checkpoint.

    Args:
        filename: the CSV file.
        separator: the cell delimiter.
        append: continue an existing file instead of overwriting it.
        keep_bias: also watch biases.
        norm_type: the p of the p-norm.
        flush_every: read and write the norms every this many steps instead of once per epoch.
    """

    def __init__(
        self,
        filename: str | os.PathLike[str],
        *,
        separator: str = ",",
        append: bool = False,
        keep_bias: bool = True,
        norm_type: float = 2.0,
        flush_every: int | None = None,
    ) -> None:
        check_csv_arguments(filename, separator, {"append": append})
        super().__init__(keep_bias=keep_bias, norm_type=norm_type, flush_every=flush_every)
        self.filename = filename
        self.separator = separator
        self.append = append
        self._file = CSVFile(filename, separator, atomic=False)
        self._last_epoch = 0
        self._resuming = False
        self._opened = False

    def on_train_begin(self, logs: Mapping[str, Any]) -> None:  # noqa: D102
        super().on_train_begin(logs)
        self._file.close()
        self._opened = False

    def on_epoch_begin(self, epoch_number: int, logs: Mapping[str, Any]) -> None:  # noqa: D102
        if self._opened:
            return
        header = ["epoch", "batch", "step", "total_norm", *self.layer_names]
        keep_before = epoch_number if self._resuming else None
        self._file.open(header, append=self.append or self._resuming, keep_before_epoch=keep_before)
        self._resuming = False
        self._opened = True

    def _on_gradient_norms(self, records: list[dict[str, Any]]) -> None:
        for index, record in enumerate(records):
            row = {key: value for key, value in record.items() if key != "layer_norms"}
            self._file.write({**row, **record["layer_norms"]}, sync=index == len(records) - 1)

    def on_epoch_end(self, epoch_number: int, logs: Mapping[str, Any]) -> None:  # noqa: D102
        super().on_epoch_end(epoch_number, logs)
        self._last_epoch = epoch_number

    def on_train_end(self, logs: Mapping[str, Any]) -> None:  # noqa: D102
        super().on_train_end(logs)
        self._file.close()
        self._opened = False

    def state_dict(self) -> dict[str, Any]:
        """The last epoch written and the number of rows in the file."""
        return {"epoch": self._last_epoch, "rows": self._file.rows_written}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continues the file: the next run drops the rows of its first epoch and later ones first."""
        self._last_epoch = int(state["epoch"])
        self._file.rows_written = int(state["rows"])
        self._resuming = True


class TensorBoardGradientNormLogger(GradientNormLogger):
    """Writes the gradient norms of every optimizer step to TensorBoard, at step = optimizer step.

    Charts: ``gradient_norm/total`` and ``gradient_norm/<layer>``. See :class:`GradientNormLogger`.

    Args:
        writer: a ``torch.utils.tensorboard.SummaryWriter``, or a log directory.
        keep_bias: also watch biases.
        norm_type: the p of the p-norm.
        flush_every: read and write the norms every this many steps instead of once per epoch.
    """

    def __init__(
        self, writer: Any, *, keep_bias: bool = True, norm_type: float = 2.0, flush_every: int | None = None
    ) -> None:
        super().__init__(keep_bias=keep_bias, norm_type=norm_type, flush_every=flush_every)
        self.writer, self._owns_writer = resolve_writer(writer, type(self).__name__)

    def _on_gradient_norms(self, records: list[dict[str, Any]]) -> None:
        for record in records:
            step = record["step"]
            self.writer.add_scalar("gradient_norm/total", record["total_norm"], step)
            for layer, norm in record["layer_norms"].items():
                self.writer.add_scalar(f"gradient_norm/{layer}", norm, step)
        self.writer.flush()

    def on_train_end(self, logs: Mapping[str, Any]) -> None:  # noqa: D102
        super().on_train_end(logs)
        if self._owns_writer:
            self.writer.close()
