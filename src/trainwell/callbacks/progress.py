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

from trainwell.callbacks.base import Callback, with_learning_rates

__all__ = ["EpochProgressionCallback", "ProgressionCallback"]


def format_logs(logs: Mapping[str, Any], skip: tuple[str, ...] = ("epoch", "batch", "size", "time")) -> str:
    """Formats numeric logs as ``name: value`` pairs, learning rates last and in short scientific form.

    >>> format_logs({'epoch': 1, 'lr': 3e-05, 'loss': 0.123456, 'acc': 97.5})
    'loss: 0.123456 acc: 97.500000 lr: 3e-05'
    """
    parts, rates = [], []
    for key, value in logs.items():
        if key in skip or not isinstance(value, (int, float)):
            continue
        if key == "lr" or key.startswith("lr_group_"):
            rates.append(f"{key}: {value:.4g}")
        else:
            parts.append(f"{key}: {value:.6f}")
    return " ".join(parts + rates)


class ProgressionCallback(Callback):
    """Shows training, evaluation and prediction progress.

    Args:
        coloring: colour the output (only on a terminal).
        progress_bar: draw the per-step bar with ETA (only on a terminal).
        refresh_per_second: how often the bar and its running averages are refreshed.
        show_on_valid: show a bar during validation too.
        show_every_n_train_steps: ``'all'`` refreshes the bar by time (``refresh_per_second``); an int n
            refreshes it every n training steps instead and, when the output is not a terminal (CI and
            cluster logs), prints one plain line every n steps with the running averages.
        show_every_n_valid_steps: the same for validation steps.
        show_every_n_test_steps: the same for evaluation steps.
        file: where to write; defaults to ``sys.stdout`` at the time of the first write.

    >>> import io, torch
    >>> from trainwell import Model
    >>> out = io.StringIO()
    >>> model = Model(torch.nn.Linear(2, 2), 'sgd', 'cross_entropy')
    >>> x, y = torch.randn(32, 2), torch.zeros(32, dtype=torch.long)
    >>> progress = ProgressionCallback(show_every_n_train_steps=2, coloring=False, file=out)
    >>> _ = model.fit(x, y, batch_size=8, epochs=1, verbose=False, callbacks=[progress])
    >>> out.getvalue().splitlines()[0].startswith('Epoch 1/1 step 2/4 ')
    True
    """

    reads_gradients = False  # its on_train_batch_end never looks at gradients

    def __init__(
        self,
        *,
        coloring: bool = True,
        progress_bar: bool = True,
        refresh_per_second: float = 4.0,
        show_on_valid: bool = True,
        show_every_n_train_steps: int | str = "all",
        show_every_n_valid_steps: int | str = "all",
        show_every_n_test_steps: int | str = "all",
        file: IO[str] | None = None,
    ) -> None:
        if not isinstance(refresh_per_second, (int, float)) or refresh_per_second <= 0:
            raise ValueError(
                f"`refresh_per_second` must be a positive number. Received: refresh_per_second={refresh_per_second!r}."
            )
        self.coloring = coloring
        self.progress_bar = progress_bar
        self.interval = 1.0 / refresh_per_second
        self.show_on_valid = show_on_valid
        self.every = {
            "train": _steps_option(show_every_n_train_steps, "show_every_n_train_steps"),
            "valid": _steps_option(show_every_n_valid_steps, "show_every_n_valid_steps"),
            "test": _steps_option(show_every_n_test_steps, "show_every_n_test_steps"),
            "predict": None,
        }
        self._phase = "train"
        self._label = ""
        self._total: int | None = None
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

    def _start_bar(self, description: str, total: int | None, phase: str, label: str = "") -> None:
        self._phase_started = time.perf_counter()
        self._last_refresh = 0.0
        self._phase, self._label, self._total = phase, label or description, total
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
        every = self.every[self._phase]
        if self._progress is None:
            if every is not None and batch_number % every == 0:
                # No bar (not a terminal, or progress_bar=False): a plain line every n steps.
                total = f"/{self._total}" if self._total is not None else ""
                self._print(f"{self._label} step {batch_number}{total} {self._running()}".rstrip(), "")
            return
        if every is None:
            now = time.perf_counter()
            if now - self._last_refresh < self.interval:
                return
            self._last_refresh = now
        elif batch_number % every:
            return
        self._progress.update(self._task, completed=batch_number, metrics=self._running())
        self._progress.refresh()

    def _running(self) -> str:
        # One host transfer for all the running averages of the phase.
        tracker = self.model.state.tracker if self.model is not None else None
        return format_logs(tracker.running_logs()) if tracker is not None else ""

    def _stop_bar(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def _print(self, text: str, style: str) -> None:
        self.console.print(text, style=style if self.coloring and style else None)

    # -- training -------------------------------------------------------------------------------------------
    def on_epoch_begin(self, epoch_number: int, logs: Mapping[str, Any]) -> None:  # noqa: D102
        self._epoch_started = time.perf_counter()
        self._epoch = epoch_number
        label = f"Epoch {epoch_number}/{self.params.get('epochs', '?')}"
        self._start_bar(label, self.params.get("steps"), "train")

    def on_train_batch_end(self, batch_number: int, logs: Mapping[str, Any]) -> None:  # noqa: D102
        self._advance(batch_number)

    def on_valid_begin(self, logs: Mapping[str, Any]) -> None:  # noqa: D102
        self._stop_bar()
        if self.show_on_valid:
            self._start_bar("  validating", self.params.get("valid_steps"), "valid", f"{self._label} validation")

    def on_valid_batch_end(self, batch_number: int, logs: Mapping[str, Any]) -> None:  # noqa: D102
        if self.show_on_valid:
            self._advance(batch_number)

    def on_epoch_end(self, epoch_number: int, logs: Mapping[str, Any]) -> None:  # noqa: D102
        self._stop_bar()
        elapsed = time.perf_counter() - self._epoch_started
        self._print(
            f"Epoch {epoch_number}/{self.params.get('epochs', '?')} {elapsed:.2f}s "
            f"{format_logs(with_learning_rates(self.model, logs))}",
            "green",
        )

    def on_train_end(self, logs: Mapping[str, Any]) -> None:  # noqa: D102
        self._stop_bar()

    # -- evaluation and prediction --------------------------------------------------------------------------
    def on_test_begin(self, logs: Mapping[str, Any]) -> None:  # noqa: D102
        self._start_bar("Evaluating", self.params.get("steps"), "test", "Test")

    def on_test_batch_end(self, batch_number: int, logs: Mapping[str, Any]) -> None:  # noqa: D102
        self._advance(batch_number)

    def on_test_end(self, logs: Mapping[str, Any]) -> None:  # noqa: D102
        self._stop_bar()
        elapsed = time.perf_counter() - self._phase_started
        self._print(f"Test {elapsed:.2f}s {format_logs(logs)}", "cyan")

    def on_predict_begin(self, logs: Mapping[str, Any]) -> None:  # noqa: D102
        self._start_bar("Predicting", self.params.get("steps"), "predict")

    def on_predict_batch_end(self, batch_number: int, logs: Mapping[str, Any]) -> None:  # noqa: D102
        self._advance(batch_number)

    def on_predict_end(self, logs: Mapping[str, Any]) -> None:  # noqa: D102
        self._stop_bar()


class EpochProgressionCallback(ProgressionCallback):
    """One summary line every ``show_every_n_epochs`` epochs, and no per-step bar: for logs and notebooks.

    Args:
        coloring: colour the output (only on a terminal).
        show_every_n_epochs: ``'all'`` or an int n: print epochs n, 2n... and the last one.
        file: where to write; defaults to ``sys.stdout``.
    """

    def __init__(
        self, *, coloring: bool = True, show_every_n_epochs: int | str = "all", file: IO[str] | None = None
    ) -> None:
        super().__init__(coloring=coloring, progress_bar=False, show_on_valid=False, file=file)
        self.show_every_n_epochs = _steps_option(show_every_n_epochs, "show_every_n_epochs")

    def on_epoch_end(self, epoch_number: int, logs: Mapping[str, Any]) -> None:  # noqa: D102
        every = self.show_every_n_epochs
        last = epoch_number == self.params.get("epochs") or self.model.stop_training
        if every is None or epoch_number % every == 0 or last:
            super().on_epoch_end(epoch_number, logs)


def _steps_option(value: int | str, argument: str) -> int | None:
    """``'all'`` -> None; a positive int stays; anything else is refused with the fix."""
    if value == "all":
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    raise ValueError(f"`{argument}` must be 'all' or a positive int. Received: {argument}={value!r}.")
