"""The progress display: a live bar per phase on a terminal, one summary line per epoch everywhere.

Running averages are read from the loop's tracker at most ``refresh_per_second`` times a second, so
the display costs one host-device transfer per refresh, not one per batch. When stdout is not a
terminal (CI logs, files), no bar is drawn and only the summary lines are printed: no carriage returns.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from typing import IO, Any

from trainwell.callbacks.base import Callback

__all__ = ["ProgressionCallback"]


def format_logs(logs: Mapping[str, Any], skip: tuple[str, ...] = ("epoch", "batch", "size", "time")) -> str:
    """Formats numeric logs as ``name: value`` pairs.

    >>> format_logs({'epoch': 1, 'loss': 0.123456, 'acc': 97.5})
    'loss: 0.123456 acc: 97.500000'
    """
    parts = []
    for key, value in logs.items():
        if key in skip or not isinstance(value, (int, float)):
            continue
        parts.append(f"{key}: {value:.6f}")
    return " ".join(parts)


class ProgressionCallback(Callback):
    """Shows training, evaluation and prediction progress.

    Args:
        coloring: colour the output (only on a terminal).
        progress_bar: draw the per-step bar with ETA (only on a terminal).
        refresh_per_second: how often the bar and its running averages are refreshed.
        file: where to write; defaults to ``sys.stdout`` at the time of the first write.
    """

    def __init__(
        self,
        *,
        coloring: bool = True,
        progress_bar: bool = True,
        refresh_per_second: float = 4.0,
        file: IO[str] | None = None,
    ) -> None:
        self.coloring = coloring
        self.progress_bar = progress_bar
        self.interval = 1.0 / refresh_per_second
        self.file = file
        self._console: Any = None
        self._progress: Any = None
        self._task: Any = None
        self._last_refresh = 0.0
        self._epoch_started = 0.0
        self._phase_started = 0.0

    # -- output ---------------------------------------------------------------------------------------------
    @property
    def console(self) -> Any:
        """The rich console everything is printed through (created on first use: rich is imported lazily)."""
        if self._console is None:
            from rich.console import Console

            self._console = Console(
                file=self.file or sys.stdout, no_color=not self.coloring, highlight=False, soft_wrap=True
            )
        return self._console

    def _start_bar(self, description: str, total: int | None) -> None:
        self._phase_started = time.perf_counter()
        self._last_refresh = 0.0
        if not (self.progress_bar and self.console.is_terminal):
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[metrics]}"),
            console=self.console,
            auto_refresh=False,  # refreshed from the loop, at most refresh_per_second, never from a thread
            transient=True,
        )
        self._progress.start()
        self._task = self._progress.add_task(description, total=total, metrics="")

    def _advance(self, batch_number: int) -> None:
        if self._progress is None:
            return
        now = time.perf_counter()
        if now - self._last_refresh < self.interval:
            return
        self._last_refresh = now
        tracker = self.model.state.tracker if self.model is not None else None
        running = format_logs(tracker.running_logs()) if tracker is not None else ""
        self._progress.update(self._task, completed=batch_number, metrics=running)
        self._progress.refresh()

    def _stop_bar(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def _print(self, text: str, style: str) -> None:
        self.console.print(text, style=style if self.coloring else None)

    # -- training -------------------------------------------------------------------------------------------
    def on_epoch_begin(self, epoch_number: int, logs: Mapping[str, Any]) -> None:  # noqa: D102
        self._epoch_started = time.perf_counter()
        self._epoch = epoch_number
        self._start_bar(f"Epoch {epoch_number}/{self.params.get('epochs', '?')}", self.params.get("steps"))

    def on_train_batch_end(self, batch_number: int, logs: Mapping[str, Any]) -> None:  # noqa: D102
        self._advance(batch_number)

    def on_valid_begin(self, logs: Mapping[str, Any]) -> None:  # noqa: D102
        self._stop_bar()
        self._start_bar("  validating", self.params.get("valid_steps"))

    def on_valid_batch_end(self, batch_number: int, logs: Mapping[str, Any]) -> None:  # noqa: D102
        self._advance(batch_number)

    def on_epoch_end(self, epoch_number: int, logs: Mapping[str, Any]) -> None:  # noqa: D102
        self._stop_bar()
        elapsed = time.perf_counter() - self._epoch_started
        self._print(
            f"Epoch {epoch_number}/{self.params.get('epochs', '?')} {elapsed:.2f}s {format_logs(logs)}",
            "green",
        )

    def on_train_end(self, logs: Mapping[str, Any]) -> None:  # noqa: D102
        self._stop_bar()

    # -- evaluation and prediction --------------------------------------------------------------------------
    def on_test_begin(self, logs: Mapping[str, Any]) -> None:  # noqa: D102
        self._start_bar("Evaluating", self.params.get("steps"))

    def on_test_batch_end(self, batch_number: int, logs: Mapping[str, Any]) -> None:  # noqa: D102
        self._advance(batch_number)

    def on_test_end(self, logs: Mapping[str, Any]) -> None:  # noqa: D102
        self._stop_bar()
        elapsed = time.perf_counter() - self._phase_started
        self._print(f"Test {elapsed:.2f}s {format_logs(logs)}", "cyan")

    def on_predict_begin(self, logs: Mapping[str, Any]) -> None:  # noqa: D102
        self._start_bar("Predicting", self.params.get("steps"))

    def on_predict_batch_end(self, batch_number: int, logs: Mapping[str, Any]) -> None:  # noqa: D102
        self._advance(batch_number)

    def on_predict_end(self, logs: Mapping[str, Any]) -> None:  # noqa: D102
        self._stop_bar()
