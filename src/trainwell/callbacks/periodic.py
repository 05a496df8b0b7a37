"""Writing a file every few epochs, or whenever a monitored value improves.

:class:`PeriodicSaveCallback` holds everything the checkpoint callbacks share: turning the filename
template into a name from the epoch logs, deciding when to save, writing atomically, deleting a
superseded best file, restoring the best file at the end of training, and remembering all of that
across an interrupted run. A subclass only says how to write its content to a file object (and, to
support ``restore_best``, how to read it back).
"""

from __future__ import annotations

import errno
import io
import os
import string
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any, TypedDict

from typing_extensions import Unpack

from trainwell.callbacks.base import Callback
from trainwell.callbacks.monitor import Monitor
from trainwell.storage.files import atomic_write
from trainwell.utils.checks import check_positive_int

__all__ = ["PeriodicSaveCallback", "PeriodicSaveLambda", "PeriodicSaveOptions"]

_ATOMIC_OPEN_MODES = ("wb", "w", "wt")
_READ_MODES = ("rb", "r", "rt")


class PeriodicSaveOptions(TypedDict, total=False):
    """The keyword arguments of :class:`PeriodicSaveCallback`, for subclasses that forward them."""

    monitor: str
    mode: str
    save_best_only: bool
    keep_only_last_best: bool
    restore_best: bool
    period: int
    verbose: bool
    temporary_filename: str | os.PathLike[str] | None
    atomic_write: bool
    open_mode: str
    read_mode: str


class PeriodicSaveCallback(Callback):
    """Base class of callbacks that write a file at the end of some epochs.

    ``filename`` is a :meth:`str.format` template filled with the epoch logs, so
    ``'ckpt_{epoch:02d}_{val_loss:.3f}.safetensors'`` names each file after its epoch and validation
    loss. Every epoch whose number is a multiple of ``period`` is saved; with ``save_best_only``, an
    epoch is saved only when the monitored value improves on the best so far (``period`` is then not
    used, as in Poutyne).

    A file is written under a temporary name in the target's directory (or at ``temporary_filename``),
    fsync'd, then renamed over the target: a crash or a failed write leaves the previous file intact.

    Args:
        filename: the path template of the files to write.
        monitor: the epoch log compared across epochs with ``save_best_only``.
        mode: ``'min'``, ``'max'`` or ``'auto'``: whether a smaller or a larger ``monitor`` is better
            (``'auto'``, the default: from the model's metric, whose ``higher_is_better`` decides, else from
            the name: losses and errors are minimized, accuracies and scores maximized).
        save_best_only: write only when ``monitor`` improves.
        keep_only_last_best: delete the previous best file when a new best is written under another
            name (needs ``save_best_only``).
        restore_best: at the end of training, load back the best file (needs ``save_best_only`` and a
            subclass that implements :meth:`restore`).
        period: save every ``period`` epochs (epochs whose number is a multiple of it).
        verbose: print a line for each file written and restored.
        temporary_filename: where to write before renaming; by default a hidden temporary file beside
            the target. On another file system, the content is copied beside the target first so that
            the final rename stays atomic.
        atomic_write: write through a temporary file and a rename; False writes the target directly.
        open_mode: ``'wb'`` for binary content, ``'w'`` for text (UTF-8). Without ``atomic_write`` any
            writing mode :func:`open` accepts.
        read_mode: ``'rb'`` or ``'r'``: how :meth:`restore` receives the best file.

    Subclasses implement :meth:`save_file` (and optionally :meth:`restore`).

    >>> class EpochNote(PeriodicSaveCallback):
    ...     def save_file(self, fd, epoch_number, logs):
    ...         fd.write(f"epoch {epoch_number}")
    >>> note = EpochNote('note_{epoch}.txt', open_mode='w', period=2)
    """

    def __init__(
        self,
        filename: str | os.PathLike[str],
        *,
        monitor: str = "val_loss",
        mode: str = "auto",
        save_best_only: bool = False,
        keep_only_last_best: bool = False,
        restore_best: bool = False,
        period: int = 1,
        verbose: bool = False,
        temporary_filename: str | os.PathLike[str] | None = None,
        atomic_write: bool = True,
        open_mode: str = "wb",
        read_mode: str = "rb",
    ) -> None:
        if not isinstance(filename, (str, os.PathLike)):
            raise TypeError(
                f"`filename` must be a path or a format string such as 'weights_{{epoch:02d}}.safetensors'. "
                f"Received: filename={filename!r} (type {type(filename).__name__})."
            )
        check_positive_int(period, "period")
        name = type(self).__name__
        if keep_only_last_best and not save_best_only:
            raise ValueError(
                f"`keep_only_last_best=True` needs `save_best_only=True`: only best files are replaced by "
                f"newer ones. Received: keep_only_last_best=True, save_best_only={save_best_only!r}."
            )
        if restore_best and not save_best_only:
            raise ValueError(
                f"`restore_best=True` needs `save_best_only=True`, so that the restored file is the best one. "
                f"Received: restore_best=True, save_best_only={save_best_only!r}."
            )
        if atomic_write and open_mode not in _ATOMIC_OPEN_MODES:
            raise ValueError(
                f"`open_mode` must be one of {list(_ATOMIC_OPEN_MODES)} with `atomic_write=True`: an atomic "
                f"write replaces the whole file. Received: open_mode={open_mode!r}; pass atomic_write=False "
                "to append."
            )
        if read_mode not in _READ_MODES:
            raise ValueError(f"`read_mode` must be one of {list(_READ_MODES)}. Received: read_mode={read_mode!r}.")
        # The Monitor checks `monitor` and `mode` even when only periodic saves are asked for.
        self.monitor = Monitor(monitor, mode, owner=name)
        self.filename = filename
        self.save_best_only = save_best_only
        self.keep_only_last_best = keep_only_last_best
        self.restore_best = restore_best
        self.period = period
        self.verbose = verbose
        self.temporary_filename = temporary_filename
        self.atomic_write = atomic_write
        self.open_mode = open_mode
        self.read_mode = read_mode
        self.best_filename: str | None = None
        self.last_filename: str | None = None
        self.last_saved_epoch: int | None = None
        if restore_best and not self._can_restore():
            raise ValueError(
                f"`restore_best=True` needs a way to read the file back, and {name} has none. "
                "Received: restore_best=True; implement restore() (PeriodicSaveLambda: pass `restore=`) or leave "
                "restore_best=False."
            )

    # -- what subclasses provide ---------------------------------------------------------------------
    def save_file(self, fd: IO[Any], epoch_number: int, logs: Mapping[str, Any]) -> None:
        """Writes the content for ``epoch_number`` to the open file ``fd``."""
        raise NotImplementedError(f"{type(self).__name__} must implement save_file(fd, epoch_number, logs).")

    def restore(self, fd: IO[Any]) -> None:
        """Loads the content of ``fd`` back (used by ``restore_best``)."""
        raise NotImplementedError(f"{type(self).__name__} does not implement restore(fd).")

    def _can_restore(self) -> bool:
        return type(self).restore is not PeriodicSaveCallback.restore

    # -- the hooks -----------------------------------------------------------------------------------
    def set_model(self, model: Any) -> None:  # noqa: D102
        super().set_model(model)
        if self.save_best_only:  # periodic saves compare nothing: no direction to infer
            self.monitor.set_model(model)

    def on_epoch_end(self, epoch_number: int, logs: Mapping[str, Any]) -> None:  # noqa: D102
        # Formatted every epoch, so that a wrong template fails at the first epoch, not at the first save.
        filename = self.format_filename(epoch_number, logs)
        if not self.save_best_only:
            if epoch_number % self.period == 0:
                if self.verbose:
                    print(f"Epoch {epoch_number}: saving {filename}")
                self._save(filename, epoch_number, logs)
            return
        value = self.monitor.value(logs)
        if not self.monitor.is_improvement(value):
            return
        if self.verbose:
            print(
                f"Epoch {epoch_number}: {self.monitor.monitor} improved from {self.monitor.best:.6g} to "
                f"{value:.6g}, saving {filename}"
            )
        # The best value and file change only once the new file is safely written: a failed write
        # leaves both the previous best file and this callback's state as they were.
        self._save(filename, epoch_number, logs)
        self.monitor.update(logs, epoch_number)
        previous, self.best_filename = self.best_filename, filename
        if self.keep_only_last_best and previous is not None and previous != filename:
            Path(previous).unlink(missing_ok=True)

    def on_train_end(self, logs: Mapping[str, Any]) -> None:  # noqa: D102
        if not self.restore_best:
            return
        if self.best_filename is None:
            warnings.warn(
                f"{type(self).__name__}: restore_best found no best file to restore: {self.monitor.monitor} "
                "never improved (it may be NaN) or no epoch was run.",
                stacklevel=2,
            )
            return
        if self.verbose:
            print(f"Restoring {self.best_filename} (epoch {self.monitor.best_epoch})")
        encoding = None if "b" in self.read_mode else "utf-8"
        with open(self.best_filename, self.read_mode, encoding=encoding) as fd:
            self.restore(fd)

    # -- state ---------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The best value, the best and last files, and the last saved epoch."""
        return {
            "monitor": self.monitor.state_dict(),
            "best_filename": self.best_filename,
            "last_filename": self.last_filename,
            "last_saved_epoch": self.last_saved_epoch,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restores :meth:`state_dict`."""
        self.monitor.load_state_dict(state["monitor"])
        self.best_filename = state["best_filename"]
        self.last_filename = state["last_filename"]
        self.last_saved_epoch = state["last_saved_epoch"]

    # -- helpers -------------------------------------------------------------------------------------
    def format_filename(self, epoch_number: int, logs: Mapping[str, Any]) -> str:
        """The file name for an epoch: the template filled with ``epoch`` and the epoch logs."""
        template = os.fspath(self.filename)
        values = {**logs, "epoch": epoch_number}
        try:
            return template.format_map(values)
        except KeyError as error:
            raise ValueError(
                f"`filename` {template!r} uses {{{error.args[0]}}}, which is not in the epoch logs. "
                f"Available keys: {sorted(values)}."
            ) from None
        except (ValueError, TypeError, IndexError, AttributeError) as error:
            fields = [field for _, field, _, _ in string.Formatter().parse(template) if field is not None]
            raise ValueError(
                f"`filename` {template!r} cannot be filled with the epoch logs ({error}). Use named fields "
                f"with formats that fit their values, such as {{epoch:02d}} or {{val_loss:.3f}}. "
                f"Fields used: {fields}."
            ) from None

    def _save(self, filename: str, epoch_number: int, logs: Mapping[str, Any]) -> None:
        directory = os.path.dirname(filename)
        if directory:
            os.makedirs(directory, exist_ok=True)
        text = "b" not in self.open_mode
        if not self.atomic_write:
            with open(filename, self.open_mode, encoding="utf-8" if text else None) as fd:
                self.save_file(fd, epoch_number, logs)
        else:
            # The content is built in memory first: nothing touches the disk until it is complete.
            buffer: io.StringIO | io.BytesIO = io.StringIO() if text else io.BytesIO()
            self.save_file(buffer, epoch_number, logs)
            content = buffer.getvalue()
            data = content.encode("utf-8") if isinstance(content, str) else content
            if self.temporary_filename is None:
                atomic_write(filename, data)
            else:
                _write_through(os.fspath(self.temporary_filename), filename, data)
        self.last_filename = filename
        self.last_saved_epoch = epoch_number


def _write_through(temporary: str, target: str, data: bytes) -> None:
    """Writes ``data`` to ``temporary``, fsyncs it, and renames it over ``target``."""
    try:
        with open(temporary, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    except OSError as error:
        Path(temporary).unlink(missing_ok=True)
        if error.errno != errno.EXDEV:
            raise
        # A rename cannot cross file systems: go through a temporary file beside the target instead,
        # which keeps the replacement atomic.
        atomic_write(target, data)


class PeriodicSaveLambda(PeriodicSaveCallback):
    """Calls ``func(fd, epoch_number, logs)`` to write each file.

    Args:
        func: writes the epoch's content to the open file ``fd``.
        filename: the path template (see :class:`PeriodicSaveCallback`).
        restore: reads a file back, given the open file; needed for ``restore_best``.
        **kwargs: the options of :class:`PeriodicSaveCallback`.

    >>> import json
    >>> save_logs = PeriodicSaveLambda(lambda fd, epoch, logs: json.dump(dict(logs), fd),
    ...                                'logs_{epoch}.json', open_mode='w')
    """

    def __init__(
        self,
        func: Callable[[IO[Any], int, Mapping[str, Any]], Any],
        filename: str | os.PathLike[str],
        *,
        restore: Callable[[IO[Any]], Any] | None = None,
        **kwargs: Unpack[PeriodicSaveOptions],
    ) -> None:
        if not callable(func):
            raise TypeError(
                f"`func` must be callable as func(fd, epoch_number, logs). Received: func={func!r} "
                f"(type {type(func).__name__})."
            )
        if restore is not None and not callable(restore):
            raise TypeError(
                f"`restore` must be callable as restore(fd), or None. Received: restore={restore!r} "
                f"(type {type(restore).__name__})."
            )
        self.func = func
        self.restore_func = restore
        super().__init__(filename, **kwargs)

    def save_file(self, fd: IO[Any], epoch_number: int, logs: Mapping[str, Any]) -> None:  # noqa: D102
        self.func(fd, epoch_number, logs)

    def restore(self, fd: IO[Any]) -> None:  # noqa: D102
        if self.restore_func is not None:
            self.restore_func(fd)

    def _can_restore(self) -> bool:
        return self.restore_func is not None
