"""Epoch (and batch) logs as CSV files: ``CSVLogger`` streams rows, ``AtomicCSVLogger`` rewrites atomically.

Both write one row per epoch (and one per training batch with ``batch_granularity=True``) and can
continue a file after a resume: :meth:`~CSVLogger.load_state_dict` arms a cut, and at the first epoch of
the resumed run every row of that epoch or later (written after the checkpoint, before the crash) is
dropped, so each epoch appears exactly once. The cut goes by the ``epoch`` column rather than by a row
count, so it is right whichever order the checkpoint callback and the logger run in.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from trainwell.callbacks.base import Callback, epoch_learning_rates, with_learning_rates
from trainwell.storage.files import atomic_write

__all__ = ["AtomicCSVLogger", "CSVLogger"]

_LINE_END = "\n"


def check_csv_arguments(filename: Any, separator: Any, flags: Mapping[str, Any]) -> None:
    """Validates the arguments shared by the CSV writers (file name, separator, boolean flags)."""
    if not isinstance(filename, (str, os.PathLike)):
        raise TypeError(
            f"`filename` must be a path (str or os.PathLike). Received: filename of type {type(filename).__name__}."
        )
    if not isinstance(separator, str) or len(separator) != 1 or separator in '\r\n"':
        raise ValueError(
            f"`separator` must be a single character other than a quote or a line break, such as ',' or '\\t'. "
            f"Received: separator={separator!r}."
        )
    for name, value in flags.items():
        if not isinstance(value, bool):
            raise TypeError(f"`{name}` must be True or False. Received: {name}={value!r}.")


def format_row(fieldnames: Sequence[str], row: Mapping[str, Any]) -> list[str]:
    """The cells of ``row`` in header order: '' for a missing key; floats keep every digit (``repr``)."""
    return ["" if row.get(name) is None else str(row[name]) for name in fieldnames]


def read_csv(path: Path, separator: str) -> tuple[list[str] | None, list[list[str]]]:
    """The header and data rows of an existing CSV file; ``(None, [])`` when it is missing or empty."""
    if not path.exists():
        return None, []
    with path.open(newline="", encoding="utf-8") as handle:
        lines = list(csv.reader(handle, delimiter=separator))
    if not lines:
        return None, []
    return lines[0], lines[1:]


def rows_before_epoch(header: Sequence[str], rows: list[list[str]], epoch: int) -> list[list[str]]:
    """The rows of the epochs before ``epoch``.

    A row with an empty ``epoch`` cell is a batch row (``batch_granularity``): it belongs to the epoch of the
    next epoch row, and batch rows after the last epoch row (an epoch cut short) are dropped. Rows whose
    epoch cell is not a number are kept.
    """
    if "epoch" not in header:
        return rows
    column = list(header).index("epoch")
    kept: list[list[str]] = []
    pending: list[list[str]] = []  # batch rows waiting for their epoch's row
    for row in rows:
        cell = row[column] if column < len(row) else ""
        if cell == "":
            pending.append(row)
            continue
        try:
            row_epoch = int(float(cell))
        except ValueError:
            kept.append(row)
            continue
        if row_epoch >= epoch:
            break
        kept.extend(pending)
        kept.append(row)
        pending = []
    return kept


def render_csv(header: Sequence[str], rows: Sequence[Sequence[str]], separator: str) -> bytes:
    """A whole CSV file as bytes, formatted exactly as :class:`CSVFile` writes it row by row."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=separator, lineterminator=_LINE_END)
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8")


class CSVFile:
    """A CSV file written row by row, flushed after every row, that can resume an existing file.

    Used by the CSV loggers here and by the gradient-norm CSV logger. The header is fixed by
    :meth:`open` (when known in advance) or by the first row's keys.

    Args:
        filename: the file to write.
        separator: the cell delimiter.
        atomic: rewrite the whole file through a temporary file and a rename at every row (never torn)
            instead of appending to an open file.
        temporary_filename: with ``atomic``, the temporary file to write before the rename (by default
            a unique name beside ``filename``). It must be on the same file system.
    """

    def __init__(
        self, filename: str | os.PathLike[str], separator: str, atomic: bool, temporary_filename: str | None = None
    ) -> None:
        self.path = Path(filename)
        self.separator = separator
        self.atomic = atomic
        self.temporary_filename = temporary_filename
        self.fieldnames: list[str] | None = None
        self.rows_written = 0  # data rows in the file, including the ones kept from an earlier run
        self._handle: IO[str] | None = None
        self._writer: Any = None
        self._rows: list[list[str]] = []  # atomic mode: the whole file's rows, rewritten each time

    def open(self, fieldnames: Sequence[str] | None, *, append: bool, keep_before_epoch: int | None = None) -> None:
        """Starts writing.

        Args:
            fieldnames: the header, or None to take the first row's keys.
            append: continue an existing file: its header is kept and no second one is written.
            keep_before_epoch: when resuming, drop the existing rows of this epoch and later.
        """
        header, rows = read_csv(self.path, self.separator) if append or keep_before_epoch is not None else (None, [])
        if header is not None and keep_before_epoch is not None:
            rows = rows_before_epoch(header, rows, keep_before_epoch)
            self._replace(render_csv(header, rows, self.separator))
        self.fieldnames = header if header is not None else (list(fieldnames) if fieldnames is not None else None)
        self.rows_written = len(rows)
        self._rows = rows
        if not self.atomic:
            self._handle = self.path.open("a" if header is not None else "w", newline="", encoding="utf-8")
            self._writer = csv.writer(self._handle, delimiter=self.separator, lineterminator=_LINE_END)
        if header is None and self.fieldnames is not None:
            self.write_header()

    def write_header(self) -> None:
        """Writes the header (``fieldnames``) of a file opened without one."""
        assert self.fieldnames is not None
        if self.atomic:
            self._replace(render_csv(self.fieldnames, self._rows, self.separator))
        else:
            self._writer.writerow(self.fieldnames)
            self._flush(sync=False)

    def write(self, row: Mapping[str, Any], *, sync: bool = False) -> None:
        """Appends one row (keys outside the header are left out) and flushes it to the OS.

        Args:
            row: the values by column name.
            sync: also ``fsync`` the file, so that the row survives a power loss, not only a crash.
        """
        if self._writer is None and not self.atomic:
            raise RuntimeError(f"The CSV file {str(self.path)!r} is not open: a row came before on_train_begin.")
        if self.fieldnames is None:
            self.fieldnames = list(row)
            self.write_header()
        cells = format_row(self.fieldnames, row)
        self.rows_written += 1
        if self.atomic:
            self._rows.append(cells)
            self._replace(render_csv(self.fieldnames, self._rows, self.separator))
        else:
            self._writer.writerow(cells)
            self._flush(sync)

    def write_rows(self, rows: Sequence[Mapping[str, Any]], *, sync: bool = False) -> None:
        """Appends several rows at once: in the atomic mode, with one rewrite of the file instead of one per row."""
        if not self.atomic:
            for index, row in enumerate(rows):
                self.write(row, sync=sync and index == len(rows) - 1)
            return
        if not rows:
            return
        if self.fieldnames is None:
            self.fieldnames = list(rows[0])
        self._rows.extend(format_row(self.fieldnames, row) for row in rows)
        self.rows_written += len(rows)
        self._replace(render_csv(self.fieldnames, self._rows, self.separator))

    def _flush(self, sync: bool) -> None:
        assert self._handle is not None
        self._handle.flush()
        if sync:
            os.fsync(self._handle.fileno())

    def _replace(self, data: bytes) -> None:
        if self.temporary_filename is None:
            atomic_write(self.path, data)
            return
        # A caller-chosen temporary name (Poutyne's argument): same write, fsync and rename, by hand.
        with open(self.temporary_filename, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(self.temporary_filename, self.path)

    def close(self) -> None:
        """Closes the file (the atomic mode holds none open)."""
        if self._handle is not None:
            self._handle.close()
        self._handle = None
        self._writer = None


class CSVLogger(Callback):
    r"""Writes the logs of every epoch (and optionally every batch) to a CSV file, one row at a time.

    The header is Poutyne's, fixed when training begins: ``epoch``, ``time``, the learning rates (``lr``, or
    ``lr_group_<i>`` for several parameter groups), ``loss``, the model's metrics, then their ``val_``
    versions (empty without validation data); keys of the logs outside it are not written. With
    ``batch_granularity``, ``batch`` and ``size`` follow ``epoch`` and each training batch adds a row whose
    epoch-only cells (``epoch`` included) are empty. Each row is flushed when written, so a crash loses
    at most the row being written, and every epoch row is also fsync'd.

    Args:
        filename: the CSV file.
        batch_granularity: also write one row per training batch (each reads the batch's values from
            the device, so it costs a synchronization per batch).
        separator: the cell delimiter (``'\t'`` for a TSV file).
        append: continue an existing file, keeping its header, instead of overwriting it.
        extra_keys: (trainwell) also write the keys outside Poutyne's header that the first epoch's logs
            carry (a value a callback adds, for example), as columns after it; ignored with
            ``batch_granularity``. The experiment's ``log.tsv`` is written this way.

    >>> import tempfile, pathlib, torch
    >>> from trainwell import Model
    >>> path = pathlib.Path(tempfile.mkdtemp()) / 'log.csv'
    >>> model = Model(torch.nn.Linear(2, 1), 'sgd', 'mse')
    >>> _ = model.fit(torch.ones(4, 2), torch.ones(4, 1), epochs=2, verbose=False, callbacks=[CSVLogger(path)])
    >>> path.read_text().splitlines()[0]
    'epoch,time,lr,loss,val_loss'
    """

    reads_gradients = False  # its on_train_batch_end never looks at gradients

    def __init__(
        self,
        filename: str | os.PathLike[str],
        *,
        batch_granularity: bool = False,
        separator: str = ",",
        append: bool = False,
        extra_keys: bool = False,
    ) -> None:
        check_csv_arguments(
            filename,
            separator,
            {"batch_granularity": batch_granularity, "append": append, "extra_keys": extra_keys},
        )
        self.extra_keys = extra_keys and not batch_granularity
        self.filename = filename
        self.batch_granularity = batch_granularity
        self.separator = separator
        self.append = append
        self._file = self._make_file()
        self._epoch = 0  # the epoch in progress: batch rows carry it
        self._last_epoch = 0  # the last epoch whose row was written
        self._resuming = False
        self._resume_fieldnames: list[str] | None = None
        self._opened = False
        self._fieldnames: list[str] = []

    def _make_file(self) -> CSVFile:
        return CSVFile(self.filename, self.separator, atomic=False)

    def _header(self) -> list[str]:
        # Poutyne's header, fixed when training begins from what the model will log.
        rates = list(epoch_learning_rates(self.model))  # the keys the epoch rows will carry
        values = ["loss", *getattr(self.model, "metrics_names", [])]
        counters = ["epoch", "batch", "size", "time"] if self.batch_granularity else ["epoch", "time"]
        return [*counters, *rates, *values, *(f"val_{name}" for name in values)]

    def on_train_begin(self, logs: Mapping[str, Any]) -> None:  # noqa: D102
        # The file opens at the first epoch: a resumed run only knows there which epochs it redoes.
        self._file.close()  # a handle left open by a run that raised
        self._opened = False
        self._fieldnames = self._header()

    def on_epoch_begin(self, epoch_number: int, logs: Mapping[str, Any]) -> None:  # noqa: D102
        self._epoch = epoch_number
        if self._opened:
            return
        if self._resuming:
            # The file's own header wins; the checkpoint's is the fallback when the file is gone.
            self._file.open(self._resume_fieldnames or self._fieldnames, append=True, keep_before_epoch=epoch_number)
            self._resuming = False
        else:
            # With extra_keys, the header waits for the first row, which may carry more keys.
            self._file.open(None if self.extra_keys else self._fieldnames, append=self.append)
        self._opened = True

    def on_train_batch_end(self, batch_number: int, logs: Mapping[str, Any]) -> None:  # noqa: D102
        if self.batch_granularity:
            self._file.write(logs)  # as in Poutyne, a batch row leaves the epoch cell empty

    def on_epoch_end(self, epoch_number: int, logs: Mapping[str, Any]) -> None:  # noqa: D102
        # The logs carry no lr (Poutyne's contract): the epoch's learning rates go beside them.
        row = with_learning_rates(self.model, logs)
        if self._file.fieldnames is None:
            self._file.fieldnames = [*self._fieldnames, *(key for key in row if key not in self._fieldnames)]
            self._file.write_header()
        self._file.write(row, sync=True)
        self._last_epoch = epoch_number

    def on_train_end(self, logs: Mapping[str, Any]) -> None:  # noqa: D102
        self._file.close()
        self._opened = False

    def on_exception(self, exception: BaseException) -> None:  # noqa: D102
        # The rows written so far were synced at their epoch's end; the handle must not outlive the run.
        self._file.close()
        self._opened = False

    def state_dict(self) -> dict[str, Any]:
        """The last epoch written, the number of rows in the file, and the header."""
        return {
            "epoch": self._last_epoch,
            "rows": self._file.rows_written,
            "fieldnames": None if self._file.fieldnames is None else list(self._file.fieldnames),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continues the file of a checkpointed run.

        The next run keeps the file's header, and at its first epoch drops the rows of that epoch and
        later ones, which were written after the checkpoint: every epoch then appears exactly once.
        """
        self._last_epoch = int(state["epoch"])
        self._file.rows_written = int(state["rows"])
        fieldnames = state.get("fieldnames")
        self._resume_fieldnames = None if fieldnames is None else [str(name) for name in fieldnames]
        self._resuming = True


class AtomicCSVLogger(CSVLogger):
    r"""A :class:`CSVLogger` that rewrites the whole file atomically at every row: it is never torn.

    Each row rewrites the file through a temporary file, ``fsync`` and a rename, so a reader (or a
    crash) only ever sees a complete file. The content is the same as :class:`CSVLogger`'s. Rewriting
    costs time proportional to the file's length, so prefer :class:`CSVLogger` with
    ``batch_granularity`` on long runs.

    Args:
        filename: the CSV file.
        batch_granularity: also write one row per training batch.
        separator: the cell delimiter.
        append: continue an existing file instead of overwriting it.
        temporary_filename: the temporary file written before each rename; by default a unique name
            beside ``filename``. It must be on the same file system as ``filename``.

    >>> import tempfile, pathlib, torch
    >>> from trainwell import Model
    >>> path = pathlib.Path(tempfile.mkdtemp()) / 'log.tsv'
    >>> logger = AtomicCSVLogger(path, separator='\t')
    >>> _ = Model(torch.nn.Linear(2, 1), 'sgd', 'mse').fit(torch.ones(4, 2), torch.ones(4, 1), epochs=2,
    ...                                                    verbose=False, callbacks=[logger])
    >>> len(path.read_text().splitlines())
    3
    """

    def __init__(
        self,
        filename: str | os.PathLike[str],
        *,
        batch_granularity: bool = False,
        separator: str = ",",
        append: bool = False,
        temporary_filename: str | None = None,
    ) -> None:
        if temporary_filename is not None and not isinstance(temporary_filename, (str, os.PathLike)):
            raise TypeError(
                "`temporary_filename` must be a path or None. Received: temporary_filename of type "
                f"{type(temporary_filename).__name__}."
            )
        self.temporary_filename = None if temporary_filename is None else os.fspath(temporary_filename)
        super().__init__(filename, batch_granularity=batch_granularity, separator=separator, append=append)

    def _make_file(self) -> CSVFile:
        return CSVFile(self.filename, self.separator, atomic=True, temporary_filename=self.temporary_filename)
