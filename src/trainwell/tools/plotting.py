"""History plots: one figure per metric, training and validation values over the epochs.

matplotlib is an optional dependency (``pip install 'trainwell[plots]'``), imported when a plot is made.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["history_frame", "metric_names", "plot_history", "plot_metric"]

_NOT_PLOTTED = ("epoch", "time")


def metric_names(history: Sequence[Mapping[str, Any]]) -> list[str]:
    """The values a history can plot: every numeric key but epoch and time, ``val_`` ones folded in.

    >>> metric_names([{'epoch': 1, 'time': 0.1, 'loss': 1.0, 'acc': 50.0, 'val_loss': 1.2, 'lr': 0.1}])
    ['loss', 'acc', 'lr']
    """
    names: list[str] = []
    for entry in history:
        for key, value in entry.items():
            base = key[len("val_") :] if key.startswith("val_") else key
            if base not in _NOT_PLOTTED and isinstance(value, (int, float)) and base not in names:
                names.append(base)
    return names


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError as error:
        raise ImportError(
            "Plotting needs matplotlib: pip install 'trainwell[plots]' (or pip install matplotlib)."
        ) from error
    if "matplotlib.pyplot" not in __import__("sys").modules:
        matplotlib.use("Agg")  # files only: no window, works on servers without a display
    import matplotlib.pyplot as plt

    return plt


def plot_metric(history: Sequence[Mapping[str, Any]], metric: str, *, title: str | None = None, ax: Any = None) -> Any:
    """Draws ``metric`` (and ``val_<metric>`` when logged) against the epochs; returns the axes.

    The lines are labelled 'train' and 'validation'; an epoch without the value leaves a gap.

    Raises:
        ValueError: ``history`` is empty, or logs neither ``metric`` nor ``val_<metric>``.

    >>> history = [{'epoch': 1, 'loss': 1.0, 'val_loss': 1.2}, {'epoch': 2, 'loss': 0.5, 'val_loss': 0.9}]
    >>> [line.get_ydata().tolist() for line in plot_metric(history, 'loss').get_lines()]
    [[1.0, 0.5], [1.2, 0.9]]
    """
    _check_history(history)
    _check_metric(history, metric)
    keys = (metric, f"val_{metric}")
    plt = _pyplot()
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4))
    epochs = [entry["epoch"] for entry in history]
    for key, label in zip(keys, ("train", "validation"), strict=True):
        values = [entry.get(key) for entry in history]
        if any(value is not None for value in values):
            ax.plot(epochs, [float("nan") if value is None else value for value in values], marker="o", label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric)
    ax.set_title(title or metric)
    ax.grid(alpha=0.3)
    ax.legend()
    return ax


def _check_history(history: Any) -> None:
    if not isinstance(history, Sequence) or isinstance(history, (str, bytes)):
        raise TypeError(
            f"`history` must be the list of epoch logs that fit returned. Received: history of type "
            f"{type(history).__name__}. For a DataFrame, pass frame.to_dict('records')."
        )
    if not history:
        raise ValueError("`history` is empty: train for at least one epoch before plotting.")


def _check_metric(history: Sequence[Mapping[str, Any]], metric: str) -> None:
    if not any(key in entry for entry in history for key in (metric, f"val_{metric}")):
        raise ValueError(
            f"`history` has no value for the metric {metric!r}. Received: metric={metric!r}. "
            f"Plottable metrics: {', '.join(map(repr, metric_names(history)))}."
        )


def history_frame(history: Sequence[Mapping[str, Any]]) -> Any:
    """The history as a pandas DataFrame indexed by epoch, one column per logged value.

    pandas is imported when called (``pip install pandas``).

    >>> history_frame([{'epoch': 1, 'loss': 1.0}, {'epoch': 2, 'loss': 0.5}])['loss'].tolist()
    [1.0, 0.5]
    """
    try:
        import pandas
    except ImportError as error:
        raise ImportError("history_frame needs pandas: pip install pandas.") from error
    return pandas.DataFrame.from_records(list(history), index="epoch")


def plot_history(
    history: Sequence[Mapping[str, Any]],
    *,
    metrics: Sequence[str] | None = None,
    directory: str | os.PathLike[str] | None = None,
    extension: str = "png",
    show: bool = False,
) -> dict[str, Any]:
    """One figure per metric of a ``fit`` history (training and validation together).

    Args:
        history: what ``fit`` returned (or ``Experiment.get_stats().to_dict('records')``).
        metrics: the metrics to plot (default: every logged one, see :func:`metric_names`).
        directory: when given, each figure is saved there as ``<metric>.<extension>`` ('png', 'pdf'...).
        extension: the file format.
        show: call ``plt.show()`` at the end (notebooks display the figures anyway).

    Returns:
        ``{metric: figure}``.
    """
    _check_history(history)
    plt = _pyplot()
    from matplotlib.backend_bases import FigureCanvasBase

    supported = FigureCanvasBase.get_supported_filetypes()
    if extension.lstrip(".").lower() not in supported:
        raise ValueError(
            f"`extension` must be a file format matplotlib writes. Received: extension={extension!r}. "
            f"Supported: {', '.join(sorted(supported))}."
        )
    extension = extension.lstrip(".").lower()
    chosen = list(metrics or metric_names(history))
    for metric in chosen:  # all checked before any figure is made, so an error leaks no figure
        _check_metric(history, metric)
    figures = {}
    for metric in chosen:
        figure, ax = plt.subplots(figsize=(6, 4))
        plot_metric(history, metric, ax=ax)
        figure.tight_layout()
        if directory is not None:
            Path(directory).mkdir(parents=True, exist_ok=True)
            figure.savefig(Path(directory) / f"{metric}.{extension}")
        figures[metric] = figure
    if show:
        plt.show()
    elif directory is not None:
        for figure in figures.values():
            plt.close(figure)
    return figures
