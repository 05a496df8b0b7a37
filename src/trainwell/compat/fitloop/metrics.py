"""fitloop's ``M``: every value the stage functions returned, by phase, stage, name and run, and its plots.

``floop.M.train['loss']`` is a list with one entry per run (a ``fit`` call; a ``test`` call for the test
phase), each a NumPy array of that run's values, one per epoch for an epoch-end value or one per batch
for a batch-step value. ``floop.M.train.epoch_end``, ``.batch_step`` and ``.epoch_start`` hold each
stage's values. ``plot(metric)`` draws training and validation together and saves the figure.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import torch

__all__ = ["FitLoopMetrics", "PhaseMetrics"]

STAGES = ("epoch_end", "batch_step", "epoch_start")  # the order `phase[name]` looks them up in


class PhaseMetrics:
    """The values one phase recorded.

    Attributes:
        stages: the stages that recorded something, in the order they first did.
        epoch_end, batch_step, epoch_start: ``{name: [run values, ...]}``.

    >>> phase = PhaseMetrics('train')
    >>> phase.start_run(); phase.append('epoch_end', {'loss': 0.5}); phase.append('epoch_end', {'loss': 0.25})
    >>> phase.complete_run(); phase['loss']
    [array([0.5 , 0.25])]
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.stages: list[str] = []
        self.epoch_end: dict[str, list[Any]] = {}
        self.batch_step: dict[str, list[Any]] = {}
        self.epoch_start: dict[str, list[Any]] = {}
        self.runs = 0

    def __repr__(self) -> str:
        return f"<PhaseMetrics({self.name}) stages={self.stages} runs={self.runs}>"

    def start_run(self) -> None:
        """Values recorded from now on belong to a new run."""
        self.runs += 1

    def _values(self, stage: str, name: str) -> list[Any]:
        if stage not in self.stages:
            self.stages.append(stage)
        runs = getattr(self, stage).setdefault(name, [])
        while len(runs) < self.runs:
            runs.append([])
        return runs[self.runs - 1]

    def append(self, stage: str, values: Mapping[str, Any], no_float: bool = False) -> None:
        """Records one value per name (an epoch's, or a batch's)."""
        for name, value in values.items():
            self._values(stage, name).append(value if no_float else _as_float(value))

    def extend(self, stage: str, name: str, values: Iterable[Any]) -> None:
        """Records several values of one name (an epoch's batches)."""
        self._values(stage, name).extend(values)

    def complete_run(self) -> None:
        """Turns the run's lists into NumPy arrays where they hold numbers."""
        for stage in STAGES:
            for runs in getattr(self, stage).values():
                if len(runs) == self.runs and isinstance(runs[-1], list):
                    with contextlib.suppress(TypeError, ValueError):  # non-numbers stay a list
                        runs[-1] = np.array(runs[-1], dtype=float)

    def clear(self) -> None:
        """Forgets every value."""
        for stage in STAGES:
            getattr(self, stage).clear()
        self.stages = []
        self.runs = 0

    def __getitem__(self, name: str) -> list[Any]:
        for stage in STAGES:
            if name in getattr(self, stage):
                return getattr(self, stage)[name]
        known = sorted({key for stage in STAGES for key in getattr(self, stage)})
        raise KeyError(f"The {self.name} phase recorded no value named {name!r}; it recorded {known}.")

    def __contains__(self, name: object) -> bool:
        return any(name in getattr(self, stage) for stage in STAGES)

    def stage_of(self, name: str) -> str:
        """The stage a name was recorded in (the first of epoch_end, batch_step, epoch_start)."""
        return next(stage for stage in STAGES if name in getattr(self, stage))

    def plot(self, metric: str, run_number: int | str | None = None, path: str | os.PathLike[str] | None = None) -> Any:
        """Draws ``metric`` of this phase (see :meth:`FitLoopMetrics.plot`); returns the figure."""
        return _draw(metric, {self.name: _run_values(self[metric], run_number)}, self.stage_of(metric), path)


class FitLoopMetrics:
    """``FitLoop.M``: the recorded values of the train, valid and test phases.

    Attributes:
        train, valid, test: each phase's :class:`PhaseMetrics`.
        train_runs, test_runs: the number of ``fit`` and ``test`` runs recorded.
    """

    def __init__(self) -> None:
        self.train = PhaseMetrics("train")
        self.valid = PhaseMetrics("valid")
        self.test = PhaseMetrics("test")
        self.train_runs = 0
        self.test_runs = 0

    def __repr__(self) -> str:
        return f"<FitLoopMetrics train_runs={self.train_runs} test_runs={self.test_runs}>"

    @property
    def phases(self) -> list[str]:
        """The phases that recorded something."""
        return [name for name in ("train", "valid", "test") if getattr(self, name).stages]

    def start_run(self, is_test: bool) -> None:
        """A ``fit`` (train and valid phases) or a ``test`` starts recording."""
        if is_test:
            self.test_runs += 1
            self.test.start_run()
        else:
            self.train_runs += 1
            self.train.start_run()
            self.valid.start_run()

    def complete_run(self, is_test: bool) -> None:
        """The run is over: its values become arrays."""
        for phase in (self.test,) if is_test else (self.train, self.valid):
            phase.complete_run()

    def clear(self) -> None:
        """Forgets every value of every phase."""
        for phase in (self.train, self.valid, self.test):
            phase.clear()
        self.train_runs = self.test_runs = 0

    def state_dict(self) -> dict[str, Any]:
        """Every recorded value, storable in a checkpoint (a finished run's array becomes a tagged list)."""

        def runs_state(runs: list[Any]) -> list[Any]:
            return [{"array": run.tolist()} if isinstance(run, np.ndarray) else list(run) for run in runs]

        phases = {
            phase.name: {
                "stages": list(phase.stages),
                "runs": phase.runs,
                **{stage: {name: runs_state(runs) for name, runs in getattr(phase, stage).items()} for stage in STAGES},
            }
            for phase in (self.train, self.valid, self.test)
        }
        return {"phases": phases, "train_runs": self.train_runs, "test_runs": self.test_runs}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Puts back what :meth:`state_dict` returned."""

        def runs_of(runs: list[Any]) -> list[Any]:
            return [np.array(run["array"], dtype=float) if isinstance(run, dict) else list(run) for run in runs]

        for phase in (self.train, self.valid, self.test):
            saved = state["phases"][phase.name]
            phase.stages, phase.runs = list(saved["stages"]), int(saved["runs"])
            for stage in STAGES:
                setattr(phase, stage, {name: runs_of(runs) for name, runs in saved[stage].items()})
        self.train_runs, self.test_runs = int(state["train_runs"]), int(state["test_runs"])

    def plot(self, metric: str, run_number: int | str | None = None, path: str | os.PathLike[str] | None = None) -> Any:
        """Draws ``metric`` for training and validation against the epochs (or batches, for a batch value).

        Args:
            metric: a name returned by the epoch-end (or batch-step) functions, such as ``'loss'``.
            run_number: which ``fit`` to draw: None for the last one, an index, or ``'all'`` for every run
                one after the other.
            path: where to save the figure (PNG, PDF, SVG... from the extension); None only returns it.

        Returns:
            The matplotlib figure.
        """
        series = {}
        stage = None
        for phase in (self.train, self.valid):
            if metric in phase:
                series[phase.name] = _run_values(phase[metric], run_number)
                stage = stage or phase.stage_of(metric)
        if stage is None:
            recorded = sorted({key for phase in (self.train, self.valid) for s in STAGES for key in getattr(phase, s)})
            raise KeyError(f"No training or validation value named {metric!r} was recorded; there are {recorded}.")
        return _draw(metric, series, stage, path)


def _as_float(value: Any) -> Any:
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return value.item()
    try:
        return float(value)
    except (TypeError, ValueError):
        return value


def _run_values(runs: list[Any], run_number: int | str | None) -> list[float]:
    if not runs:
        return []
    if run_number is None:
        chosen = [runs[-1]]
    elif run_number == "all":
        chosen = runs
    elif isinstance(run_number, int) and not isinstance(run_number, bool):
        chosen = [runs[run_number]]
    else:
        raise TypeError(f"`run_number` must be None, an int or 'all'. Received: run_number={run_number!r}.")
    return [float(value) for run in chosen for value in run]


def _draw(metric: str, series: Mapping[str, list[float]], stage: str, path: str | os.PathLike[str] | None) -> Any:
    from trainwell.tools.plotting import plot_metric

    length = max((len(values) for values in series.values()), default=0)
    if length == 0:
        raise ValueError(f"{metric!r} has no recorded value in this run to plot.")
    keys = {"train": metric, "valid": f"val_{metric}", "test": metric}
    history = [
        {"epoch": index + 1, **{keys[name]: values[index] for name, values in series.items() if index < len(values)}}
        for index in range(length)
    ]
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots()  # a figure of its own: plot_metric draws on the current axes (Poutyne's)
    plot_metric(history, metric, ax=axes)
    # fitloop names the lines by phase; plot_metric (Poutyne's) names them by logged key.
    names = {metric: "train", f"val_{metric}": "validation"}
    for line in axes.get_lines():
        label = str(line.get_label())
        line.set_label(names.get(label, label))
    axes.legend()
    axes.set_xlabel("batch" if stage == "batch_step" else "epoch")
    if path is not None:
        figure.savefig(os.fspath(path))
    return figure
