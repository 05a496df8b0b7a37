"""``ColorProgress``: the text of the progress display (Poutyne's format), coloured with colorama.

One line per phase, rewritten in place with a carriage return at every step::

    Epoch: 1/5 Step: 3/10  30.00% |██████              |ETA: 0.05s loss: 0.6931 acc: 50.0000

and ended with a newline by the phase's summary (``Epoch: 1/5 Train steps: 10 Val steps: 4 0.21s loss: ...``).
colorama (a dependency) gives the colours; without it, or with the ``NO_COLOR`` environment variable set,
the text is plain. In a Jupyter notebook the line is rewritten at most every ``JUPYTER_PRINT_RATE``
seconds, since each write there costs a cell update.
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from collections.abc import Mapping, Sequence
from typing import IO

from trainwell.callbacks.optional_imports import lazy_optional_names, optional
from trainwell.callbacks.progress_bar import ProgressBar

__all__ = ["DEFAULT_COLORS", "ColorProgress", "EmptyStringAttrClass", "format_duration", "in_jupyter_notebook"]

_OPTIONAL = {"colorama": ("colorama", None)}
__getattr__ = lazy_optional_names(globals(), _OPTIONAL)

# The colour of each part of the line: colorama ``Fore`` names.
DEFAULT_COLORS = {
    "text_color": "MAGENTA",
    "ratio_color": "CYAN",
    "metric_value_color": "LIGHTBLUE_EX",
    "time_color": "GREEN",
    "progress_bar_color": "MAGENTA",
}


def in_jupyter_notebook() -> bool:
    """Whether this process is a Jupyter kernel (IPython's ZMQ shell), without importing IPython.

    >>> in_jupyter_notebook()
    False
    """
    ipython = sys.modules.get("IPython")
    get_ipython = getattr(ipython, "get_ipython", None)
    shell = get_ipython() if callable(get_ipython) else None
    return type(shell).__name__ == "ZMQInteractiveShell"


jupyter = in_jupyter_notebook()


class EmptyStringAttrClass:
    """Stands for colorama's ``Fore`` and ``Style`` when there are no colours: every attribute is ``''``.

    >>> EmptyStringAttrClass().RED
    ''
    """

    def __getattr__(self, name: str) -> str:
        return ""


def format_duration(seconds: float) -> str:
    """A duration as days, hours, minutes and seconds, leaving out the leading zero units.

    >>> format_duration(5.257), format_duration(90), format_duration(36 * 3600 + 30 * 60 + 30)
    ('5.26s', '1m30.00s', '1d12h30m30.00s')
    """
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, rest = divmod(rest, 60)
    units = [(int(days), "d"), (int(hours), "h"), (int(minutes), "m")]
    while units and units[0][0] == 0:
        units.pop(0)
    return "".join(f"{value}{unit}" for value, unit in units) + f"{rest:.2f}s"


def _palette(coloring: bool | Mapping[str, str]) -> dict[str, str] | None:
    """The colour names to use, or None for plain text; warns when colours are asked for without colorama."""
    if isinstance(coloring, Mapping):
        unknown = sorted(set(coloring) - set(DEFAULT_COLORS))
        if unknown:
            raise KeyError(
                f"`coloring` has unknown key(s) {', '.join(map(repr, unknown))}. The parts that can be coloured: "
                f"{', '.join(DEFAULT_COLORS)} (colorama Fore names as values, such as 'RED')."
            )
        wanted: dict[str, str] | None = {**DEFAULT_COLORS, **coloring}
    elif isinstance(coloring, bool):
        wanted = dict(DEFAULT_COLORS) if coloring else None
    else:
        raise TypeError(
            f"`coloring` must be True, False or a dict of colours by part. Received: coloring of type "
            f"{type(coloring).__name__}."
        )
    if wanted is None or os.environ.get("NO_COLOR"):
        return None
    if optional(globals(), "colorama", _OPTIONAL) is None:
        warnings.warn(
            "Coloured progress needs the colorama package, which is not installed: the progress is shown without "
            "colours. Install it with `pip install colorama`, or pass progress_options={'coloring': False}.",
            ImportWarning,
            stacklevel=3,
        )
        return None
    return wanted


class ColorProgress:
    r"""Writes the progress line of a phase, coloured by part.

    Args:
        coloring: True for the default colours, False for plain text, or a dict giving some parts their
            colorama ``Fore`` colour name: ``text_color``, ``ratio_color``, ``metric_value_color``,
            ``time_color``, ``progress_bar_color`` (the others keep their default). An unknown part raises
            a ``KeyError``.
        file: where to write; by default ``sys.stdout`` at the time of each write.

    Attributes:
        coloring_enabled: whether the text carries colour codes.

    >>> import io
    >>> out = io.StringIO()
    >>> progress = ColorProgress(coloring=False, file=out)
    >>> progress.on_epoch_begin(1, 10)
    >>> progress.on_epoch_end(0.5, train_steps=4, valid_steps=None, metrics=[('loss', '0.250000')])
    >>> out.getvalue()
    '\rEpoch:  1/10 Train steps: 4 0.50s loss: 0.250000\n'
    """

    JUPYTER_PRINT_RATE = 0.1  # seconds between two rewrites of the line in a notebook

    def __init__(self, coloring: bool | Mapping[str, str] = True, *, file: IO[str] | None = None) -> None:
        palette = _palette(coloring)
        self.coloring_enabled = palette is not None
        self.style_reset = palette is not None
        if palette is not None:
            package = optional(globals(), "colorama", _OPTIONAL)
            fix_console = getattr(package, "just_fix_windows_console", None)
            if callable(fix_console) and not jupyter:
                fix_console()  # ANSI codes on old Windows consoles; nothing elsewhere
            fore, self._reset = package.Fore, package.Style.RESET_ALL
            colors = {}
            for part, name in palette.items():
                if not isinstance(name, str) or not isinstance(getattr(fore, name, None), str):
                    raise ValueError(
                        f"`coloring[{part!r}]` must be a colorama Fore colour name, such as 'RED' or 'LIGHTBLUE_EX'. "
                        f"Received: {name!r}."
                    )
                colors[part] = getattr(fore, name)
        else:
            self._reset = ""
            colors = dict.fromkeys(DEFAULT_COLORS, "")
        self.text_color = colors["text_color"]
        self.ratio_color = colors["ratio_color"]
        self.metric_value_color = colors["metric_value_color"]
        self.time_color = colors["time_color"]
        self.progress_bar_color = colors["progress_bar_color"]
        self.file = file
        self.steps_progress_bar: ProgressBar | None = None
        self.bar_format = f"{self.text_color}{{percentage}} |{self.progress_bar_color}{{bar}}{self.text_color}|"
        self.prefix = "\r"  # the start of the line: the epoch during training
        self.prev_print_time: float | None = None
        self.prev_message_length = 0

    # -- the parts of the line ------------------------------------------------------------------------------
    def _format_duration(self, seconds: float) -> str:
        return format_duration(seconds)

    def _step_text(self, number: int, steps: int | None, label: str = "Step", ratio: bool = True) -> str:
        if steps is None:
            return f"{self.text_color}{label}: {self.ratio_color}{number:d} "
        total = f"/{steps:d}" if ratio else ""
        return f"{self.text_color}{label}: {self.ratio_color}{number:{len(str(steps))}d}{total} "

    def _metrics_text(self, metrics: Sequence[tuple[str, str]]) -> str:
        return " ".join(f"{self.text_color}{name}:{self.metric_value_color} {value}" for name, value in metrics)

    def _time_text(self, seconds: float) -> str:
        return f"{self.time_color}{format_duration(seconds)} "

    # -- phases ---------------------------------------------------------------------------------------------
    def set_progress_bar(self, steps: int | None) -> None:
        """Draws a bar of ``steps`` steps in the coming lines (none when the number of steps is unknown)."""
        self.steps_progress_bar = None if steps is None else ProgressBar(steps, bar_format=self.bar_format)

    def close_progress_bar(self) -> None:
        """Draws no bar in the coming lines."""
        self.steps_progress_bar = None

    def on_epoch_begin(self, epoch_number: int, epochs: int) -> None:
        """Starts the lines of an epoch (its training, then its validation) with ``Epoch: i/n``."""
        self.prefix = f"\r{self.text_color}Epoch: {self.ratio_color}{epoch_number:{len(str(epochs))}d}/{epochs:d} "
        self.on_phase_begin(keep_prefix=True)

    def on_phase_begin(self, keep_prefix: bool = False) -> None:
        """Starts a phase's lines: the bar starts over; evaluation and prediction lines have no epoch."""
        if self.steps_progress_bar is not None:
            self.steps_progress_bar.reset()
        if not keep_prefix:
            self.prefix = "\r"

    def on_batch_end(
        self,
        batch_number: int,
        steps: int | None,
        remaining_time: float,
        metrics: Sequence[tuple[str, str]],
        do_print: bool = True,
    ) -> None:
        """Rewrites the line after a step: step, bar, ETA (or time per step when ``steps`` is None), metrics."""
        text = self.prefix + self._step_text(batch_number, steps)
        if self.steps_progress_bar is not None:
            self.steps_progress_bar.update()
            text += str(self.steps_progress_bar)
        if not do_print:
            return
        if steps is None:
            text += f"{self.time_color}{format_duration(remaining_time)}/step "
        else:
            text += f"{self.text_color}ETA: {self.time_color}{format_duration(remaining_time)} "
        text += self._metrics_text(metrics)
        if self.style_reset and not jupyter:  # a notebook shows the reset code; a terminal needs it
            text += self._reset
        if self._do_update():
            self._write(self._pad(text))

    def on_epoch_end(
        self, total_time: float, train_steps: int | None, valid_steps: int | None, metrics: Sequence[tuple[str, str]]
    ) -> None:
        """Ends the epoch's line with its steps, duration and logs."""
        text = self.prefix
        if train_steps is not None:
            text += self._step_text(train_steps, train_steps, "Train steps", ratio=False)
        if valid_steps is not None:
            text += self._step_text(valid_steps, valid_steps, "Val steps", ratio=False)
        self._end(text + self._time_text(total_time) + self._metrics_text(metrics))

    def on_phase_end(
        self, total_time: float, steps: int | None, metrics: Sequence[tuple[str, str]], label: str
    ) -> None:
        """Ends an evaluation or prediction line: ``Test steps: n 0.12s test_loss: ...``."""
        text = self.prefix
        if steps is not None:
            text += self._step_text(steps, steps, f"{label} steps", ratio=False)
        self._end(text + self._time_text(total_time) + self._metrics_text(metrics))

    # -- writing --------------------------------------------------------------------------------------------
    def _do_update(self) -> bool:
        """Whether to rewrite the line now: always, but at most every JUPYTER_PRINT_RATE s in a notebook."""
        if not jupyter:
            return True
        now = time.time()
        if self.prev_print_time is None or now - self.prev_print_time >= ColorProgress.JUPYTER_PRINT_RATE:
            self.prev_print_time = now
            return True
        return False

    def _pad(self, text: str) -> str:
        # A shorter line than the previous one is padded with spaces to hide the previous one's end.
        length = len(text)
        if length < self.prev_message_length:
            text = text.ljust(self.prev_message_length)
        self.prev_message_length = length
        return text

    def _write(self, text: str) -> None:
        out = self.file or sys.stdout
        out.write(text)
        out.flush()

    def _end(self, text: str) -> None:
        if self.style_reset:
            text += self._reset
        self._write(self._pad(text) + "\n")
        self.prev_print_time = None
        self.prev_message_length = 0
