"""History plots: one figure per metric, training and validation values over the epochs (Poutyne's API).

matplotlib is an optional dependency (``pip install 'trainwell[plots]'``), imported when a plot is made.
A history is what ``fit`` returned (a list of epoch logs) or a pandas DataFrame (``Experiment.get_stats()``).
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["history_frame", "metric_names", "plot_history", "plot_metric"]

_NOT_PLOTTED = ("epoch",)


def _records(history: Any) -> list[Mapping[str, Any]]:
    """The history as a list of epoch logs; a DataFrame (anything with ``to_dict('records')``) is converted."""
    if hasattr(history, "to_dict") and hasattr(history, "columns"):
        return list(history.to_dict("records"))
    if not isinstance(history, Sequence) or isinstance(history, (str, bytes)):
        raise TypeError(
            f"`history` must be the list of epoch logs that fit returned, or a pandas DataFrame. Received: history "
            f"of type {type(history).__name__}."
        )
    if not history:
        raise ValueError("`history` is empty: train for at least one epoch before plotting.")
    return list(history)


def metric_names(history: Any) -> list[str]:
    """The values a history can plot: every numeric key but the epoch, ``val_`` ones folded in.

    >>> metric_names([{'epoch': 1, 'time': 0.1, 'loss': 1.0, 'acc': 50.0, 'val_loss': 1.2, 'lr': 0.1}])
    ['time', 'loss', 'acc', 'lr']
    """
    names: list[str] = []
    for entry in _records(history):
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
    if "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")  # files only: no window, works on servers without a display
    import matplotlib.pyplot as plt

    return plt


def _in_notebook() -> bool:
    """Whether this runs in a Jupyter kernel (figures stay open there, to be displayed)."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    shell = getattr(ipython, "get_ipython", lambda: None)()
    return type(shell).__name__ in ("ZMQInteractiveShell", "Shell")


def plot_metric(history: Any, metric: str, *, label: str | None = None, title: str = "", ax: Any = None) -> Any:
    """Draws ``metric`` (and ``val_<metric>`` when logged) against the epochs; returns the axes.

    Args:
        history: the epoch logs (``fit``'s return value) or a DataFrame of them.
        metric: the logged name to draw.
        label: the lines are named 'Training <label>' and 'Validation <label>' (default: the logged names,
            ``metric`` and ``val_<metric>``); also the y axis' label (default: ``metric``).
        title: the plot's title (default: none).
        ax: the matplotlib axes to draw on (default: the current ones, ``plt.gca()``).

    An epoch without the value leaves a gap in the line.

    Raises:
        ValueError: ``history`` is empty, or logs neither ``metric`` nor ``val_<metric>``.

    >>> history = [{'epoch': 1, 'loss': 1.0, 'val_loss': 1.2}, {'epoch': 2, 'loss': 0.5, 'val_loss': 0.9}]
    >>> [line.get_ydata().tolist() for line in plot_metric(history, 'loss').get_lines()]
    [[1.0, 0.5], [1.2, 0.9]]
    """
    records = _records(history)
    _check_metric(records, metric)
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    if ax is None:
        ax = plt.gca()
    names = (metric, f"val_{metric}") if label is None else (f"Training {label}", f"Validation {label}")
    epochs = [entry["epoch"] for entry in records]
    for key, name in zip((metric, f"val_{metric}"), names, strict=True):
        values = [entry.get(key) for entry in records]
        if any(value is not None for value in values):
            ax.plot(epochs, [float("nan") if value is None else value for value in values], marker="o", label=name)
    ax.set_xlabel("Epochs")
    ax.set_ylabel(metric if label is None else label)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title(title)
    return ax


def _check_metric(records: Sequence[Mapping[str, Any]], metric: str) -> None:
    if not any(key in entry for entry in records for key in (metric, f"val_{metric}")):
        raise ValueError(
            f"`history` has no value for the metric {metric!r}. Received: metric={metric!r}. "
            f"Plottable metrics: {', '.join(map(repr, metric_names(records)))}."
        )


def _one_per_metric(values: Any, metrics: Sequence[str], argument: str) -> list[Any]:
    if values is None:
        return [None] * len(metrics)
    values = list(values)
    if len(values) != len(metrics):
        raise ValueError(
            f"`{argument}` must give one entry per plotted metric: {len(metrics)} metrics ({list(metrics)}). "
            f"Received: {len(values)} {argument}."
        )
    return values


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
    history: Any,
    *,
    metrics: Sequence[str] | None = None,
    labels: Sequence[str] | None = None,
    titles: Sequence[str] | str | None = None,
    axes: Sequence[Any] | None = None,
    show: bool = True,
    save: bool = False,
    save_filename_template: str = "{metric}",
    save_directory: str | os.PathLike[str] | None = None,
    save_extensions: Sequence[str] = ("png",),
    close: bool | None = None,
    fig_kwargs: Mapping[str, Any] | None = None,
) -> tuple[list[Any], list[Any]]:
    """One figure per metric of a history, training and validation together (see :func:`plot_metric`).

    Args:
        history: what ``fit`` returned, or a pandas DataFrame such as ``Experiment.get_stats()``.
        metrics: the metrics to plot (default: every logged one, ``time`` included, see :func:`metric_names`).
        labels: one label per metric (default: the logged names).
        titles: one title per metric, or one title for all (default: none).
        axes: one matplotlib axes per metric to draw on; then no figure is created (and none returned).
        show: show each new figure (skipped, silently, on a non-interactive backend such as Agg).
        save: save each new figure as ``save_filename_template.format(metric=...)`` plus each extension.
        save_filename_template: the file name without extension; keep ``{metric}`` in it.
        save_directory: where to save (created when needed; default: the working directory).
        save_extensions: the formats to save in ('png', 'pdf', 'svg'...).
        close: close the new figures at the end (default: yes, except in a Jupyter notebook).
        fig_kwargs: keyword arguments of ``plt.subplots`` for each new figure (``figsize``...).

    Returns:
        ``(figures, axes)``: the figures created (empty when ``axes`` was given) and the axes drawn on.

    >>> history = [{'epoch': 1, 'loss': 1.0, 'val_loss': 1.2}, {'epoch': 2, 'loss': 0.5, 'val_loss': 0.9}]
    >>> figures, axes = plot_history(history, metrics=['loss'], show=False)
    >>> len(figures), axes[0].get_legend_handles_labels()[1]
    (1, ['loss', 'val_loss'])
    """
    records = _records(history)
    plt = _pyplot()
    chosen = list(metrics) if metrics is not None else metric_names(records)
    for metric in chosen:  # all checked before any figure is made, so an error leaks no figure
        _check_metric(records, metric)
    chosen_labels = _one_per_metric(labels, chosen, "labels")
    chosen_titles = [titles] * len(chosen) if isinstance(titles, str) else _one_per_metric(titles, chosen, "titles")
    extensions = [extension.lstrip(".").lower() for extension in save_extensions] if save else []
    if save:
        _check_extensions(extensions, save_extensions)
    figures: list[Any] = []
    if axes is None:
        for _ in chosen:
            figure, ax = plt.subplots(**dict(fig_kwargs or {}))
            figures.append(figure)
        drawn = [figure.axes[0] for figure in figures]
    else:
        drawn = _one_per_metric(axes, chosen, "axes")
    for metric, label, title, ax in zip(chosen, chosen_labels, chosen_titles, drawn, strict=True):
        plot_metric(records, metric, label=label, title=title or "", ax=ax)
    if save and figures:
        directory = Path(save_directory) if save_directory is not None else Path(".")
        directory.mkdir(parents=True, exist_ok=True)
        for figure, metric in zip(figures, chosen, strict=True):
            for extension in extensions:
                figure.savefig(directory / f"{save_filename_template.format(metric=metric)}.{extension}")
    if show:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*non-interactive.*")  # Agg: nothing to show
            for figure in figures:
                figure.show()
    if close if close is not None else not _in_notebook():
        for figure in figures:
            plt.close(figure)
    return figures, list(drawn) if axes is None else axes  # type: ignore[return-value]


def _check_extensions(extensions: Sequence[str], given: Sequence[str]) -> None:
    from matplotlib.backend_bases import FigureCanvasBase

    supported = FigureCanvasBase.get_supported_filetypes()
    unknown = [extension for extension in extensions if extension not in supported]
    if isinstance(given, str) or unknown:
        raise ValueError(
            f"`save_extensions` must be a list of file formats matplotlib writes. Received: "
            f"save_extensions={given!r}. Supported: {', '.join(sorted(supported))}."
        )
