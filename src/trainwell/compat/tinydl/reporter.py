"""tinydl's reporters: they hold metrics and write the values the runner measured (console, TensorBoard).

A reporter is given to a ``Trainer`` or ``Validator`` as a batch or epoch reporter, or to a ``Runner`` as a
run reporter; the runner measures its metrics at that moment and calls :meth:`Reporter.report`.

The TensorBoard reporters open their ``SummaryWriter`` on first use, in one run directory per grid
point: reporters given the same ``hparam`` dict (one experiment of ``get_experiments()``) share
``runs/<date>_<host>_<hparams>``, so a grid point's training scalars, validation scalars and HParams
entry are one TensorBoard run (tinydl gave each reporter a directory of its own). Reporters without
``hparam`` join the directory of the other reporters of their ``Trainer``/``Validator``/``Runner``;
``log_dir=`` chooses a directory outright.
"""

from __future__ import annotations

import os
import socket
import sys
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, TextIO

import torch

from trainwell.compat.tinydl.metric import Metric, measure
from trainwell.compat.tinydl.report import Report
from trainwell.compat.tinydl.stage import Stage

__all__ = [
    "ConsoleReporter",
    "Reporter",
    "TensorboardHparamReporter",
    "TensorboardReporter",
    "TensorboardScalarReporter",
    "new_run_directory",
    "share_run_directory",
]

RUNS_ROOT = "runs"  # where TensorBoard runs go, as with SummaryWriter's default (`tensorboard --logdir=runs`)


class Reporter(ABC):
    """Base class of reporters: a set of metrics (one per name), and the reports waiting to be written.

    Args:
        name: the reporter's name (default: the class name).

    Attributes:
        reports: the :class:`~trainwell.compat.tinydl.report.Report` objects not yet written.
    """

    def __init__(self, name: str | None = None) -> None:
        self.name = type(self).__name__ if name is None else name
        self._metrics: dict[str, Metric] = {}
        self.reports: list[Report] = []

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, metrics={self.metrics})"

    @property
    def metrics(self) -> list[Metric]:
        """The metrics, in the order they were added."""
        return list(self._metrics.values())

    def add_metrics(self, metrics: Metric | Iterable[Metric]) -> None:
        """Adds a metric or a list of metrics; a metric whose name is already there is not added twice."""
        for metric in _metric_list(metrics, "metrics"):
            self._metrics.setdefault(metric.name, metric)

    def remove_metrics(self, metrics: Metric | Iterable[Metric]) -> None:
        """Removes a metric or a list of metrics (by name); a metric that is not there is ignored."""
        for metric in _metric_list(metrics, "metrics"):
            self._metrics.pop(metric.name, None)

    def flush_metrics(self) -> None:
        """Removes every metric."""
        self._metrics = {}

    def calculate_metrics(self, stage: Stage, scores: torch.Tensor, targets: torch.Tensor, *args: Any) -> None:
        """Calculates every metric on ``scores`` and ``targets`` now and keeps the values as reports."""
        for metric in self.metrics:
            self.add_report(stage, metric.name, measure(metric, scores, targets))

    def add_report(self, stage: Stage, metric_name: str, value: Any) -> None:
        """Keeps a value measured elsewhere (the runner reads it from trainwell's logs) for :meth:`report`."""
        tensor = value.detach().reshape(()).cpu() if isinstance(value, torch.Tensor) else torch.tensor(float(value))
        self.reports.append(Report(metric_name, tensor, stage))

    @abstractmethod
    def report(self) -> None:
        """Writes the waiting reports, then forgets them."""

    def flush(self) -> None:  # noqa: B027 (optional: most reporters hold nothing open)
        """Makes what was written visible to readers (a file reporter flushes its file)."""

    def close(self) -> None:  # noqa: B027
        """Releases what the reporter holds open."""


class ConsoleReporter(Reporter):
    """Prints one line per value: ``(name) stage: TRAIN, metric: CE, value: 0.123456``.

    Args:
        name: printed first on every line.
        file: where to print (default: standard output).

    >>> reporter = ConsoleReporter()
    >>> reporter.add_report(Stage.TRAIN, 'CE', 0.5)
    >>> reporter.report()
    (ConsoleReporter) stage: TRAIN, metric: CE, value: 0.500000
    """

    def __init__(self, name: str | None = None, file: TextIO | None = None) -> None:
        super().__init__(name)
        self.file = file

    def report(self) -> None:
        """Prints the waiting reports."""
        out = self.file if self.file is not None else sys.stdout
        for item in self.reports:
            value = float(item.metric_value)
            print(f"({self.name}) stage: {item.stage.name}, metric: {item.metric_name}, value: {value:.6f}", file=out)
        self.reports = []


class TensorboardReporter(Reporter):
    """What both TensorBoard reporters share: the hyperparameters, the run directory and a lazy writer.

    Args:
        name: the reporter's name.
        hparam: the hyperparameters of this run (one grid point): they name the run directory and fill
            the HParams entry.
        log_dir: the TensorBoard run directory; None lets a ``Runner`` choose one shared by all its
            reporters (else a new ``runs/<date>_<host>_<hparams>`` when the reporter first writes).
    """

    def __init__(self, name: str | None = None, hparam: Mapping[str, Any] | None = None, log_dir: str | None = None):
        super().__init__(name)
        if hparam is not None and not isinstance(hparam, Mapping):
            raise TypeError(
                "`hparam` must be a dict of hyperparameters, such as one experiment of get_experiments(). "
                f"Received: hparam of type {type(hparam).__name__}."
            )
        self._hparam_source = hparam  # its identity ties the reporters of one grid point together
        self.hparam = dict(hparam or {})
        self.hparam_string = "_".join(f"{key}_{value}" for key, value in self.hparam.items())
        self.log_dir = None if log_dir is None else os.fspath(log_dir)
        self._writer: Any = None

    @property
    def writer(self) -> Any:
        """The ``torch.utils.tensorboard.SummaryWriter``, opened on first use."""
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            if self.log_dir is None:
                self.log_dir = _grid_point_directory(self) or new_run_directory(self.hparam_string)
            self._writer = SummaryWriter(log_dir=self.log_dir)
        return self._writer

    def flush(self) -> None:
        """Flushes the writer's event file (when it was opened)."""
        if self._writer is not None:
            self._writer.flush()

    def close(self) -> None:
        """Closes the writer; a later report opens a new one in the same directory."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None


class TensorboardScalarReporter(TensorboardReporter):
    """Writes each value as a TensorBoard scalar tagged ``<metric>_<STAGE>``, one step per :meth:`report`.

    As a batch reporter a step is a batch; as an epoch reporter, an epoch.
    """

    def __init__(self, name: str | None = None, hparam: Mapping[str, Any] | None = None, log_dir: str | None = None):
        super().__init__(name, hparam, log_dir)
        self.step = 0

    def report(self) -> None:
        """Writes the waiting reports at the current step, then advances the step."""
        for item in self.reports:
            tag = f"{item.metric_name}_{item.stage.name}"
            self.writer.add_scalar(tag, float(item.metric_value), global_step=self.step)
        self.step += 1
        self.reports = []


class TensorboardHparamReporter(TensorboardReporter):
    """Writes the run's HParams entry: its hyperparameters with the final value of each metric.

    Use it as a run reporter. All the run's values go in one ``add_hparams`` call (TensorBoard needs them
    together), written in a ``hparams`` sub-run of the run directory so that they do not mix with the
    run's own scalar charts.
    """

    def __init__(self, name: str | None = None, hparam: Mapping[str, Any] | None = None, log_dir: str | None = None):
        super().__init__(name, hparam, log_dir)
        self._entries = 0

    def report(self) -> None:
        """Writes one HParams entry with the waiting reports (nothing when there are none)."""
        values = {f"{item.metric_name}_{item.stage.name}": float(item.metric_value) for item in self.reports}
        self.reports = []
        if not values:
            return
        self._entries += 1
        run_name = "hparams" if self._entries == 1 else f"hparams_{self._entries}"
        hparams = {key: _hparam_value(value) for key, value in self.hparam.items()}
        self.writer.add_hparams(hparam_dict=hparams, metric_dict=values, run_name=run_name)
        self.writer.flush()


def new_run_directory(hparam_string: str = "", root: str = RUNS_ROOT) -> str:
    """Creates and returns a new run directory, ``<root>/<date>_<host>[_<hparams>]`` (suffixed if taken).

    >>> import tempfile; root = tempfile.mkdtemp()
    >>> first, second = new_run_directory('lr_0.1', root), new_run_directory('lr_0.1', root)
    >>> first != second and first.endswith('_lr_0.1')
    True
    """
    stamp = f"{datetime.now():%b%d_%H-%M-%S}_{socket.gethostname()}"
    base = os.path.join(root, f"{stamp}_{hparam_string}" if hparam_string else stamp)
    candidate, number = base, 1
    while True:
        try:
            os.makedirs(candidate)
            return candidate
        except FileExistsError:
            number += 1
            candidate = f"{base}_{number}"


def share_run_directory(reporters: Iterable[Reporter]) -> str | None:
    """Gives every TensorBoard reporter of one runner that has no directory yet the run directory it belongs in.

    A reporter with ``hparam`` goes to its grid point's directory; one without joins the directory of the
    others (a new one when none has any). Returns that directory, or None when there is no TensorBoard
    reporter.
    """
    tensorboard = list({id(item): item for item in reporters if isinstance(item, TensorboardReporter)}.values())
    if not tensorboard:
        return None
    for reporter in tensorboard:
        if reporter.log_dir is None and reporter._writer is None:
            reporter.log_dir = _grid_point_directory(reporter)
    directory = next((reporter.log_dir for reporter in tensorboard if reporter.log_dir is not None), None)
    if directory is None:
        hparam_string = next((reporter.hparam_string for reporter in tensorboard if reporter.hparam_string), "")
        directory = new_run_directory(hparam_string)
    for reporter in tensorboard:
        if reporter.log_dir is None and reporter._writer is None:
            reporter.log_dir = directory
    return directory


# Run directories by grid point: id(hparam dict) -> (the dict, kept alive so that its id stays its own; directory).
_GRID_POINTS: dict[int, tuple[Any, str]] = {}


def _grid_point_directory(reporter: TensorboardReporter) -> str | None:
    """The run directory of the reporter's ``hparam`` dict (made on first use), or None without one."""
    source = reporter._hparam_source
    if source is None:
        return None
    entry = _GRID_POINTS.get(id(source))
    if entry is None or entry[0] is not source or not os.path.isdir(entry[1]):
        entry = (source, new_run_directory(reporter.hparam_string))
        _GRID_POINTS[id(source)] = entry
    return entry[1]


def _hparam_value(value: Any) -> Any:
    """A hyperparameter as TensorBoard's HParams accept it: a number, string or bool (else its text)."""
    if isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return value.item()
    return str(value)


def _metric_list(metrics: Any, argument: str) -> list[Metric]:
    items = [metrics] if isinstance(metrics, Metric) else metrics
    if not isinstance(items, Iterable) or isinstance(items, (str, bytes)):
        raise TypeError(f"`{argument}` must be a Metric or a list of Metrics. Received: {argument}={metrics!r}.")
    items = list(items)
    wrong = [item for item in items if not isinstance(item, Metric)]
    if wrong:
        raise TypeError(
            f"`{argument}` must hold Metric objects (subclasses of trainwell.compat.tinydl.metric.Metric). "
            f"Received: {wrong[0]!r} (type {type(wrong[0]).__name__})."
        )
    return items
