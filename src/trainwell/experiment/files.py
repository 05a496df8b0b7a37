"""What an experiment writes beside its checkpoints, and the checks it makes before resuming."""

from __future__ import annotations

import csv
import datetime
import json
import os
import platform
import signal
import subprocess
import sys
import threading
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch.nn.parameter import UninitializedBuffer, UninitializedParameter

from trainwell.storage.files import atomic_write

__all__ = [
    "check_same_configuration",
    "configuration",
    "directory_argument",
    "interrupt_handlers",
    "make_tensorboard_logger",
    "read_epoch_logs",
    "write_plots",
    "write_run_file",
    "write_test_log",
]


def configuration(model: Any) -> dict[str, Any]:
    """What a directory's checkpoints must agree with: parameter shapes, optimizer, loss and metrics."""
    optimizer = model.optimizer
    loss = model.loss_function
    # Before the first batch a lazy network has shapeless parameters and its named optimizer waits: the
    # same on a resumed run, so the record still matches (trainwell.model.lazy_layers).
    pending = getattr(model, "_pending_optimizer", None)
    return {
        "network": {name: _shape(tensor) for name, tensor in model.network.state_dict().items()},
        "optimizer": pending.describe()
        if pending is not None
        else None
        if optimizer is None
        else {"class": type(optimizer).__name__, "groups": [len(group["params"]) for group in optimizer.param_groups]},
        "loss": None if loss is None else getattr(loss, "__name__", type(loss).__name__),
        "metrics": list(model.metrics_names),
    }


def _shape(tensor: Any) -> list[int] | None:
    return None if isinstance(tensor, (UninitializedParameter, UninitializedBuffer)) else list(tensor.shape)


def _optimizer_differs(saved: Any, current: Any) -> bool:
    if isinstance(saved, Mapping) and isinstance(current, Mapping) and None in (saved["groups"], current["groups"]):
        return bool(saved["class"] != current["class"])  # one of them was still waiting for lazy shapes
    return bool(saved != current)


def check_same_configuration(saved: Mapping[str, Any], current: Mapping[str, Any], directory: Path) -> None:
    """Refuses to resume a directory made by another network or optimizer, saying what differs."""
    if not saved:
        return
    differences: list[str] = []
    before, now = saved.get("network", {}), current.get("network", {})
    for name in before.keys() - now.keys():
        differences.append(f"parameter {name!r} exists there, not here")
    for name in now.keys() - before.keys():
        differences.append(f"parameter {name!r} exists here, not there")
    for name in before.keys() & now.keys():
        if before[name] is None or now[name] is None:
            continue  # a lazy layer before its first batch: its shape is not known yet (trainwell.model.lazy_layers)
        if list(before[name]) != list(now[name]):
            differences.append(f"parameter {name!r} has shape {tuple(before[name])} there, {tuple(now[name])} here")
    if _optimizer_differs(saved.get("optimizer"), current.get("optimizer")):
        differences.append(f"the optimizer is {saved.get('optimizer')} there, {current.get('optimizer')} here")
    if differences:
        shown = "; ".join(sorted(differences)[:6]) + ("; ..." if len(differences) > 6 else "")
        raise ValueError(
            f"The directory {directory} holds a run of another configuration: {shown}. Use another directory, "
            "or delete this one to start over."
        )


@contextmanager
def interrupt_handlers(checkpointer: Any) -> Iterator[None]:
    """While training: SIGINT or SIGTERM asks the checkpointer to save after the current step and exit.

    A second SIGINT stops at once (Python's usual KeyboardInterrupt). Handlers can only be set from the
    main thread; elsewhere training runs without them.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}

    def ask_to_stop(number: int, frame: Any) -> None:
        checkpointer.interrupted = number
        signal.signal(signal.SIGINT, signal.default_int_handler)  # the next Ctrl-C aborts
        print(f"\nReceived signal {number}: finishing the current step, then saving a checkpoint and exiting.")

    for number in previous:
        signal.signal(number, ask_to_stop)
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def make_tensorboard_logger(directory: Path, purge_step: int) -> Any:
    """A TensorBoard logger writing to ``directory``, or None (with a warning) without tensorboard."""
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        warnings.warn(
            "tensorboard is not installed, so the experiment writes no tensorboard/ logs: "
            "pip install 'trainwell[tensorboard]', or pass disable_tensorboard=True to silence this.",
            stacklevel=4,
        )
        return None
    from torch.utils.tensorboard import SummaryWriter

    from trainwell.callbacks.tensorboard import TensorBoardLogger

    # purge_step drops the events a crashed run wrote after its checkpoint, so no epoch shows twice.
    writer = SummaryWriter(str(directory), purge_step=purge_step if purge_step > 1 else None)
    return TensorBoardLogger(writer)


def read_epoch_logs(log_path: Path) -> list[dict[str, Any]]:
    r"""The rows of a ``log.tsv``, numbers as numbers (the epoch an int), a value left empty left out.

    The training's own readers use this rather than pandas: a process that trained, plotted or searched
    need not load pandas and pyarrow (heavy, and pyarrow's native threads at interpreter exit are a known
    source of aborts, apache/arrow#34314), and empty cells (a validation value on an epoch without
    validation) must not read as text.

    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / 'log.tsv'
    >>> _ = path.write_text('epoch\tloss\tval_loss\n1\t0.5\t\n')
    >>> read_epoch_logs(path)
    [{'epoch': 1, 'loss': 0.5}]
    """
    if not log_path.exists():
        return []
    with open(log_path, newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    return [{key: _number(value) for key, value in row.items() if value not in ("", None)} for row in rows]


def _number(value: str) -> Any:
    for kind in (int, float):
        try:
            return kind(value)
        except (TypeError, ValueError):
            continue
    return value


def write_plots(history: Any, directory: Path) -> None:
    """``<metric>.png`` and ``<metric>.pdf`` per logged value in ``directory`` (Poutyne's ``plots/``).

    ``history`` is a list of epoch logs or the DataFrame of ``log.tsv``. Skipped with a warning without
    matplotlib.
    """
    if len(history) == 0:
        return
    try:
        from trainwell.tools.plotting import plot_history

        plot_history(
            history, save=True, save_directory=directory, save_extensions=("png", "pdf"), show=False, close=True
        )
    except ImportError:
        warnings.warn(
            "matplotlib is not installed, so the experiment writes no plots/: pip install 'trainwell[plots]'.",
            stacklevel=4,
        )


def _code_directories() -> list[Path]:
    """Where the training code may live: the running script's folder first, then the working directory.

    A script inside the Python installation (``pytest``, ``python -m some_tool``) is a tool, not the
    training code, and its folder may belong to another repository (pyenv's own, say): skipped.
    """
    main = sys.modules.get("__main__")
    script = getattr(main, "__file__", None)
    if not script:
        return [Path.cwd()]
    folder = Path(script).resolve().parent
    installation = {Path(prefix).resolve() for prefix in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
    if any(folder == prefix or prefix in folder.parents for prefix in installation):
        return [Path.cwd()]
    return [folder, Path.cwd()]


def _git_commit() -> str | None:
    """The commit of the repository holding the training script, else of the working directory."""
    for directory in _code_directories():
        try:
            result = subprocess.run(
                ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False, cwd=directory
            )
        except (OSError, subprocess.SubprocessError):
            continue
        if result.returncode == 0 and result.stdout.strip():
            return result.stdout.strip()
    return None


def _jsonable(value: Any) -> Any:
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    if isinstance(value, Mapping):
        return {str(key): _jsonable(item) for key, item in value.items()}
    return repr(value)


def write_run_file(
    directory: Path,
    config: Mapping[str, Any],
    options: Mapping[str, Any],
    epochs: int,
    arguments: Mapping[str, Any],
    *,
    resumed_from: str | None,
) -> None:
    """``run.json``: versions, the configuration, and one entry per ``train`` call (arguments, seed, git)."""
    from trainwell.version import __version__

    path = directory / "run.json"
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        record = {"created": datetime.datetime.now().isoformat(timespec="seconds")}
    record.update(
        {
            "trainwell": __version__,
            "torch": torch.__version__,
            "python": platform.python_version(),
            "configuration": _jsonable(config),
        }
    )
    call = {
        "started": datetime.datetime.now().isoformat(timespec="seconds"),
        "epochs": epochs,
        "seed": options.get("seed"),
        "resumed_from": resumed_from,
        "git_commit": _git_commit(),
        "callbacks": [type(callback).__name__ for callback in options.get("callbacks", [])],
        "lr_schedulers": [type(callback).__name__ for callback in options.get("lr_schedulers", [])],
        "options": _jsonable(
            {key: value for key, value in options.items() if key not in ("callbacks", "lr_schedulers")}
        ),
        "arguments": _jsonable(dict(arguments)),
    }
    record.setdefault("trainings", []).append(call)
    atomic_write(path, (json.dumps(record, indent=2) + "\n").encode())


def write_test_log(path: Path, logs: Mapping[str, Any], epoch_row: Mapping[str, Any] | None) -> None:
    """``{name}_log.tsv``: a header and one row, Poutyne's layout.

    The row is the tested epoch's ``log.tsv`` row (``epoch_row``, None when a weights file was tested),
    then the test values but the time.
    """
    row: dict[str, Any] = dict(epoch_row or {})
    row.update({key: value for key, value in logs.items() if key != "time"})
    header = "\t".join(row)
    values = "\t".join(str(value) for value in row.values())
    atomic_write(path, f"{header}\n{values}\n".encode())


def directory_argument(directory: Any) -> Path:
    """The experiment's directory as a Path: a path that is not a file (a new one is created when training)."""
    if not isinstance(directory, (str, os.PathLike)):
        raise TypeError(
            f"`directory` must be a path (str or os.PathLike) to the experiment's directory. "
            f"Received: directory of type {type(directory).__name__}."
        )
    path = Path(directory)
    if path.exists() and not path.is_dir():
        raise ValueError(
            f"`directory` is a file, not a directory: {str(path)!r}. Pass a new or existing directory's path; "
            "the file is left as it is."
        )
    return path
