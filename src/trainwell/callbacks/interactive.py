"""Asking the person at the terminal whether training should go on.

``ContinuePrompt`` pauses every few epochs and asks. It only ever asks a terminal: when standard input
is a pipe, a file or closed (a scheduled job, CI, a notebook kernel without a console), it does
nothing at all, so a script that uses it still runs unattended.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any, TextIO

from trainwell.callbacks.base import Callback
from trainwell.utils.checks import check_positive_int

__all__ = ["ContinuePrompt"]

_YES = ("y", "yes")
_NO = ("n", "no")


class ContinuePrompt(Callback):
    """Every ``every_n_epochs`` epochs, asks on the terminal whether to continue training.

    Answers: ``y``/``yes`` continues, ``n``/``no`` stops after this epoch, and an empty answer (Enter)
    takes the default. With ``ask_epochs=True`` a number is accepted too: train that many more epochs
    (without asking in between), then ask again, 0 stops; the run still ends at ``fit``'s ``epochs``. Nothing is
    asked after the last epoch. If the terminal closes (end of input), training continues unattended.

    Args:
        every_n_epochs: ask after epochs ``n``, ``2n``, ``3n``...
        ask_epochs: also accept a number of epochs as the answer.
        default: what Enter alone means: True continues, False stops.
        stdin: where answers are read (default: ``sys.stdin``); asking needs it to be a terminal.
        stdout: where the question is written (default: ``sys.stdout``).

    >>> prompt = ContinuePrompt(every_n_epochs=5, ask_epochs=True)
    >>> # model.fit(x, y, epochs=100, callbacks=[prompt]) asks after epochs 5, 10...
    """

    def __init__(
        self,
        every_n_epochs: int = 1,
        *,
        ask_epochs: bool = False,
        default: bool = True,
        stdin: TextIO | None = None,
        stdout: TextIO | None = None,
    ) -> None:
        check_positive_int(every_n_epochs, "every_n_epochs")
        self.every_n_epochs = every_n_epochs
        self.ask_epochs = ask_epochs
        self.default = default
        self._stdin = stdin
        self._stdout = stdout
        self.next_prompt = every_n_epochs
        self._interactive = False

    @property
    def stdin(self) -> TextIO:
        """The stream answers are read from."""
        return self._stdin if self._stdin is not None else sys.stdin

    @property
    def stdout(self) -> TextIO:
        """The stream the question is written to."""
        return self._stdout if self._stdout is not None else sys.stdout

    def state_dict(self) -> dict[str, Any]:
        """The epoch of the next question, so that a resumed run keeps the schedule."""
        return {"next_prompt": self.next_prompt}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restores :meth:`state_dict`."""
        self.next_prompt = int(state["next_prompt"])

    def on_train_begin(self, logs: Mapping[str, Any]) -> None:
        """Decides once per run whether there is a terminal to ask."""
        self._interactive = _is_terminal(self.stdin)

    def on_epoch_end(self, epoch_number: int, logs: Mapping[str, Any]) -> None:
        """Asks when the epoch is on the schedule; a 'no' stops training after this epoch."""
        if not self._interactive or epoch_number < self.next_prompt:
            return
        last = self.params.get("epochs")
        if last is not None and epoch_number >= last:
            return  # training ends here anyway: nothing to decide
        more = self._ask(epoch_number, last)
        if more is None:
            self.model.stop_training = True
        else:
            self.next_prompt = epoch_number + more

    def _ask(self, epoch_number: int, last: int | None) -> int | None:
        """The number of epochs to train before asking again, or None to stop."""
        choices = "[Y/n" if self.default else "[y/N"
        choices += ", or a number of epochs]" if self.ask_epochs else "]"
        remaining = f" ({last - epoch_number} left)" if last is not None else ""
        question = f"Epoch {epoch_number} done{remaining}. Continue training? {choices} "
        while True:
            self.stdout.write(question)
            self.stdout.flush()
            line = self.stdin.readline()
            if not line:  # end of input: nobody is there to answer any more
                self.stdout.write("\nNo answer (end of input): training continues without asking again.\n")
                self.stdout.flush()
                self._interactive = False
                return self.every_n_epochs
            answer = line.strip().lower()
            if answer == "":
                return self.every_n_epochs if self.default else None
            if answer in _YES:
                return self.every_n_epochs
            if answer in _NO:
                return None
            if self.ask_epochs and answer.isdigit():
                epochs = int(answer)
                return epochs if epochs > 0 else None
            expected = "y, n or a number of epochs" if self.ask_epochs else "y or n"
            self.stdout.write(f"Please answer {expected}. Received: {line.strip()!r}.\n")


def _is_terminal(stream: Any) -> bool:
    isatty = getattr(stream, "isatty", None)
    if isatty is None:
        return False
    try:
        return bool(isatty())
    except (ValueError, OSError):  # a closed or detached stream
        return False
