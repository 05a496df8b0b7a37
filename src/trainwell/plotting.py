"""History plots: one figure per metric, training and validation values over the epochs.

matplotlib is an optional dependency (``pip install 'trainwell[plots]'``), imported when a plot is made.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["metric_names", "plot_history", "plot_metric"]

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
    """Draws ``metric`` (and ``val_<metric>`` when logged) against the epochs; returns the axes."""
    plt = _pyplot()
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4))
    epochs = [entry["epoch"] for entry in history]
    for key, label in ((metric, "train"), (f"val_{metric}", "validation")):
        values = [entry.get(key) for entry in history]
        if any(value is not None for value in values):
            ax.plot(epochs, [float("nan") if value is None else value for value in values], marker="o", label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric)
    ax.set_title(title or metric)
    ax.grid(alpha=0.3)
    ax.legend()
    return ax


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
    if not history:
        raise ValueError("`history` is empty: train for at least one epoch before plotting.")
    plt = _pyplot()
    figures = {}
    for metric in metrics or metric_names(history):
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
