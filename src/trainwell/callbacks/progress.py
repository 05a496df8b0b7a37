"""The progress display: Poutyne's line per phase, rewritten at every step, ended by the phase's summary.

The step, the bar and the ETA are host-side numbers and are written at every step (or every n steps);
the running averages of the loss and metrics come from the loop's tracker, which keeps them on the
device: they are read at most ``refresh_per_second`` times a second (and at a phase's first and last
step), so the display costs a host-device transfer a few times a second, not one per batch.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import IO, Any

from trainwell.callbacks.base import Callback, epoch_learning_rates
from trainwell.callbacks.color_progress import ColorProgress

__all__ = ["EpochProgressionCallback", "ProgressionCallback", "format_logs", "metric_items"]

_SKIPPED = ("epoch", "batch", "size", "time")


def metric_items(logs: Mapping[str, Any], rates: Mapping[str, float] | None = None) -> list[tuple[str, str]]:
    """The ``(name, text)`` pairs shown for numeric logs, Poutyne's ``%f`` format; learning rates last, short.

    >>> metric_items({'epoch': 1, 'loss': 0.123456, 'acc': 97.5}, {'lr': 3e-05})
    [('loss', '0.123456'), ('acc', '97.500000'), ('lr', '3e-05')]
    """
    items = [
        (key, f"{value:f}")
        for key, value in logs.items()
        if key not in _SKIPPED and isinstance(value, (int, float)) and not isinstance(value, bool)
    ]
    return items + [(key, f"{value:.4g}") for key, value in (rates or {}).items()]


def format_logs(logs: Mapping[str, Any], rates: Mapping[str, float] | None = None) -> str:
    """The logs as one ``name: value`` text, as the display shows them.

    >>> format_logs({'epoch': 1, 'loss': 0.123456, 'acc': 97.5}, {'lr': 3e-05})
    'loss: 0.123456 acc: 97.500000 lr: 3e-05'
    """
    return " ".join(f"{name}: {text}" for name, text in metric_items(logs, rates))


def _every_option(value: int | str, argument: str) -> int | str:
    """``'all'``, ``'none'`` or a positive int; anything else is refused with the fix."""
    if value in ("all", "none") or (isinstance(value, int) and not isinstance(value, bool) and value > 0):
        return value
    raise ValueError(f"`{argument}` must be 'all', 'none' or a positive int. Received: {argument}={value!r}.")


def _shown(every: int | str, number: int) -> bool:
    return every == "all" or (isinstance(every, int) and number % every == 0)


class ProgressionCallback(Callback):
    r"""Shows training, evaluation and prediction progress, in Poutyne's format.

    During an epoch one line is rewritten at every step (``Epoch: 1/5 Step: 3/10  30.00% |███   |ETA:
    0.05s loss: ...``); the epoch then ends it with its summary (``Epoch: 1/5 Train steps: 10 Val steps:
    4 0.21s loss: ... val_loss: ... lr: 0.001``). Evaluation and prediction have their own line
    (``Test steps: 4 0.03s test_loss: ...``). The values on the step line are the phase's running
    averages.

    Args:
        coloring: True for colours (colorama), False for plain text, or a dict of colours by part (see
            :class:`~trainwell.ColorProgress`). The ``NO_COLOR`` environment variable turns colours off.
        progress_bar: draw the bar of the phase's steps (when their number is known).
        equal_weights: weigh every step time equally in the ETA; by default recent steps weigh more.
        show_on_valid: show the validation steps too.
        show_every_n_train_steps: ``'all'``, ``'none'`` (only the epoch's summary) or an int n: rewrite the
            line every n training steps.
        show_every_n_valid_steps: the same for validation steps.
        show_every_n_test_steps: the same for evaluation and prediction steps.
        refresh_per_second: how often the running averages are read from the device.
        file: where to write; by default ``sys.stdout`` at the time of each write.

    >>> import io, torch
    >>> from trainwell import Model
    >>> out = io.StringIO()
    >>> model = Model(torch.nn.Linear(2, 2), 'sgd', 'cross_entropy')
    >>> x, y = torch.randn(32, 2), torch.zeros(32, dtype=torch.long)
    >>> progress = ProgressionCallback(coloring=False, file=out)
    >>> _ = model.fit(x, y, batch_size=8, epochs=1, verbose=False, callbacks=[progress])
    >>> out.getvalue().split('\r')[-1].startswith('Epoch: 1/1 Train steps: 4 ')
    True
    """

    reads_gradients = False  # its on_train_batch_end never looks at gradients
    reads_batch_metrics = False  # it shows the tracker's running values, read every `interval` seconds

    def __init__(
        self,
        *,
        coloring: bool | Mapping[str, str] = True,
        progress_bar: bool = True,
        equal_weights: bool = False,
        show_on_valid: bool = True,
        show_every_n_train_steps: int | str = "all",
        show_every_n_valid_steps: int | str = "all",
        show_every_n_test_steps: int | str = "all",
        refresh_per_second: float = 4.0,
        file: IO[str] | None = None,
    ) -> None:
        if not isinstance(refresh_per_second, (int, float)) or refresh_per_second <= 0:
            raise ValueError(
                f"`refresh_per_second` must be a positive number. Received: refresh_per_second={refresh_per_second!r}."
            )
        self.color_progress = ColorProgress(coloring, file=file)
        self.progress_bar = progress_bar
        self.equal_weights = equal_weights
        self.show_on_valid = show_on_valid
        self.show_every_n_train_steps = _every_option(show_every_n_train_steps, "show_every_n_train_steps")
        self.show_every_n_valid_steps = _every_option(show_every_n_valid_steps, "show_every_n_valid_steps")
        self.show_every_n_test_steps = _every_option(show_every_n_test_steps, "show_every_n_test_steps")
        self.interval = 1.0 / refresh_per_second
        self.file = file
        self.steps: int | None = None
        self.train_last_step: int | None = None
        self.valid_last_step: int | None = None
        self._prefix = ""  # 'val_' or 'test_': the running averages' names during that phase
        self._weighted_sum = 0.0
        self._metrics: list[tuple[str, str]] = []
        self._read_at = -float("inf")

    # -- per phase ------------------------------------------------------------------------------------------
    def _begin_phase(self, steps: int | None, prefix: str) -> None:
        self.steps = steps
        self._prefix = prefix
        self._weighted_sum = 0.0
        self._metrics = []
        self._read_at = -float("inf")
        if self.progress_bar:
            self.color_progress.set_progress_bar(steps)  # none when the number of steps is unknown

    def _step_time_rate(self, batch_number: int, step_time: float) -> float:
        # The average step time, by default weighted by step number (recent steps count more).
        if self.equal_weights:
            self._weighted_sum += step_time
            return self._weighted_sum / batch_number
        self._weighted_sum += batch_number * step_time
        return self._weighted_sum / (batch_number * (batch_number + 1) / 2)

    def _running_metrics(self, batch_number: int, logs: Mapping[str, Any]) -> list[tuple[str, str]]:
        # Read from the device at most every `interval` seconds, and at the phase's first and last steps.
        now = time.perf_counter()
        if now - self._read_at >= self.interval or batch_number == 1 or batch_number == self.steps:
            self._read_at = now
            tracker = getattr(getattr(self.model, "state", None), "tracker", None)
            if tracker is not None:
                running = {f"{self._prefix}{name}": value for name, value in tracker.running_logs().items()}
            else:  # hooks called outside the loop: the batch's own logs
                running = {key: value for key, value in logs.items() if key not in _SKIPPED}
            self._metrics = metric_items(running)
        return self._metrics

    def _batch_end(self, batch_number: int, logs: Mapping[str, Any], every: int | str) -> None:
        rate = self._step_time_rate(batch_number, float(logs.get("time", 0.0)))
        shown = _shown(every, batch_number)
        remaining = rate if self.steps is None else rate * (self.steps - batch_number)
        metrics = self._running_metrics(batch_number, logs) if shown else []
        self.color_progress.on_batch_end(batch_number, self.steps, remaining, metrics, do_print=shown)

    # -- training -------------------------------------------------------------------------------------------
    def on_train_begin(self, logs: Mapping[str, Any]) -> None:  # noqa: D102
        self.train_last_step = self.valid_last_step = None

    def on_epoch_begin(self, epoch_number: int, logs: Mapping[str, Any]) -> None:  # noqa: D102
        self._begin_phase(self.params.get("steps"), "")
        self.color_progress.on_epoch_begin(epoch_number, self.params.get("epochs") or epoch_number)

    def on_train_batch_end(self, batch_number: int, logs: Mapping[str, Any]) -> None:  # noqa: D102
        self._batch_end(batch_number, logs, self.show_every_n_train_steps)
        self.train_last_step = batch_number

    def on_valid_begin(self, logs: Mapping[str, Any]) -> None:  # noqa: D102
        if self.show_on_valid:
            self._begin_phase(self.params.get("valid_steps"), "val_")
            self.color_progress.on_phase_begin(keep_prefix=True)

    def on_valid_batch_end(self, batch_number: int, logs: Mapping[str, Any]) -> None:  # noqa: D102
        if self.show_on_valid:
            self._batch_end(batch_number, logs, self.show_every_n_valid_steps)
        self.valid_last_step = batch_number

    def on_epoch_end(self, epoch_number: int, logs: Mapping[str, Any]) -> None:  # noqa: D102
        self.color_progress.on_epoch_end(
            logs.get("time", 0.0),
            self.train_last_step,
            self.valid_last_step,
            metric_items(logs, epoch_learning_rates(self.model)),  # the logs carry no lr (Poutyne's contract)
        )

    # -- evaluation and prediction --------------------------------------------------------------------------
    def on_test_begin(self, logs: Mapping[str, Any]) -> None:  # noqa: D102
        self._begin_phase(self.params.get("steps"), "test_")
        self.color_progress.on_phase_begin()
        self._last_step: int | None = None

    def on_test_batch_end(self, batch_number: int, logs: Mapping[str, Any]) -> None:  # noqa: D102
        self._batch_end(batch_number, logs, self.show_every_n_test_steps)
        self._last_step = batch_number

    def on_test_end(self, logs: Mapping[str, Any]) -> None:  # noqa: D102
        steps = self.steps if self.steps is not None else self._last_step
        self.color_progress.on_phase_end(logs.get("time", 0.0), steps, metric_items(logs), "Test")

    def on_predict_begin(self, logs: Mapping[str, Any]) -> None:  # noqa: D102
        self._begin_phase(self.params.get("steps"), "")
        self.color_progress.on_phase_begin()
        self._last_step = None

    def on_predict_batch_end(self, batch_number: int, logs: Mapping[str, Any]) -> None:  # noqa: D102
        self._batch_end(batch_number, logs, self.show_every_n_test_steps)
        self._last_step = batch_number

    def on_predict_end(self, logs: Mapping[str, Any]) -> None:  # noqa: D102
        steps = self.steps if self.steps is not None else self._last_step
        self.color_progress.on_phase_end(logs.get("time", 0.0), steps, [], "Prediction")


class EpochProgressionCallback(ProgressionCallback):
    r"""One summary line every ``show_every_n_epochs`` epochs (and for the last), no step lines: for logs.

    It listens to the epoch hooks only (no step line, no evaluation or prediction line).

    Args:
        coloring: as for :class:`ProgressionCallback`.
        show_every_n_epochs: ``'all'``, ``'none'`` or an int n: show epochs n, 2n... and the last one.
        file: where to write; by default ``sys.stdout``.

    >>> import io, torch
    >>> from trainwell import Model
    >>> out = io.StringIO()
    >>> progress = EpochProgressionCallback(coloring=False, show_every_n_epochs=2, file=out)
    >>> _ = Model(torch.nn.Linear(2, 1), 'sgd', 'mse').fit(torch.ones(4, 2), torch.ones(4, 1), epochs=3,
    ...                                                    verbose=False, callbacks=[progress])
    >>> [line.split()[1] for line in out.getvalue().strip().split('\r') if line]
    ['2/3', '3/3']
    """

    def __init__(
        self,
        *,
        coloring: bool | Mapping[str, str] = True,
        show_every_n_epochs: int | str = "all",
        file: IO[str] | None = None,
    ) -> None:
        super().__init__(coloring=coloring, progress_bar=False, show_on_valid=False, file=file)
        self.show_every_n_epochs = _every_option(show_every_n_epochs, "show_every_n_epochs")

    def listened_hooks(self) -> list[str]:  # noqa: D102
        return ["on_epoch_begin", "on_epoch_end"]

    def _shown(self, epoch_number: int) -> bool:
        if self.show_every_n_epochs == "none":
            return False
        last = epoch_number == self.params.get("epochs") or bool(getattr(self.model, "stop_training", False))
        return _shown(self.show_every_n_epochs, epoch_number) or last

    def on_epoch_begin(self, epoch_number: int, logs: Mapping[str, Any]) -> None:  # noqa: D102
        self.color_progress.on_epoch_begin(epoch_number, self.params.get("epochs") or epoch_number)

    def on_epoch_end(self, epoch_number: int, logs: Mapping[str, Any]) -> None:  # noqa: D102
        if self._shown(epoch_number):
            self.color_progress.on_epoch_end(
                logs.get("time", 0.0),
                self.params.get("steps"),
                self.params.get("valid_steps"),
                metric_items(logs, epoch_learning_rates(self.model)),
            )
