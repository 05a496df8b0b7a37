"""``ProgressBar``: a text bar of a phase's steps, drawn with eighth-block characters (Poutyne's)."""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["EIGHTHS", "ProgressBar"]

# A space, then the left 1/8 to 7/8 blocks: the partly filled cell at the bar's front.
EIGHTHS = (" ", "\u258f", "\u258e", "\u258d", "\u258c", "\u258b", "\u258a", "\u2589")


class ProgressBar:
    """Counts a phase's steps and draws ``{percentage} |{bar}`` from them.

    The bar has ``bar_length`` cells: the done fraction fills whole cells with ``bar_character`` and the
    cell at the front with the partial character of the fraction left over, so a bar of 20 cells shows
    160 positions.

    Args:
        steps: the number of steps of the phase (positive).
        bar_length: the number of cells of the bar.
        bar_format: the text around the bar, a ``str.format`` template with the fields ``{percentage}``
            (such as ``' 50.00%'``) and ``{bar}``; by default ``'{percentage} |{bar}'``.
        bar_character: the character of a full cell.
        partial_bar_characters: the characters of a partly filled cell, from empty to nearly full (by
            default a space, then the 1/8 to 7/8 blocks).

    Attributes:
        total_steps: ``steps``.
        actual_steps: the steps done so far.

    >>> bar = ProgressBar(4, bar_length=8, bar_character='#', partial_bar_characters=[' '])
    >>> bar.update(3)
    >>> str(bar)
    ' 75.00% |######  '
    """

    def __init__(
        self,
        steps: int,
        *,
        bar_length: int = 20,
        bar_format: str | None = None,
        bar_character: str = "\u2588",
        partial_bar_characters: Sequence[str] | None = None,
    ) -> None:
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"`steps` must be a positive int. Received: steps={steps!r}.")
        if isinstance(bar_length, bool) or not isinstance(bar_length, int) or bar_length < 1:
            raise ValueError(f"`bar_length` must be a positive int. Received: bar_length={bar_length!r}.")
        partials = list(EIGHTHS if partial_bar_characters is None else partial_bar_characters)
        if not partials:
            raise ValueError("`partial_bar_characters` must hold at least one character (a space for none).")
        self.total_steps = steps
        self.bar_length = bar_length
        self.bar_format = "{percentage} |{bar}" if bar_format is None else bar_format
        self.bar_character = bar_character
        self.partial_bar_characters = partials
        self.actual_steps = 0

    def reset(self) -> None:
        """Starts counting from 0 again (a new phase)."""
        self.actual_steps = 0

    def update(self, n: int = 1) -> None:
        """Counts ``n`` more steps done."""
        self.actual_steps += n

    def progress_bar_formatting(self) -> str:
        """The bar alone: ``bar_length`` cells (full ones, the partial one at the front, then spaces).

        >>> bar = ProgressBar(16, bar_length=4, bar_character='#', partial_bar_characters='0123')
        >>> bar.update(6)
        >>> bar.progress_bar_formatting()
        '#2  '
        """
        done = self.actual_steps / self.total_steps
        full = min(math.floor(done * self.bar_length), self.bar_length)
        if done >= 1.0:
            return self.bar_character * self.bar_length
        leftover = done * self.bar_length - full
        partial = self.partial_bar_characters[math.floor(leftover * len(self.partial_bar_characters))]
        return self.bar_character * full + partial + " " * (self.bar_length - full - 1)

    def __str__(self) -> str:
        percentage = f"{self.actual_steps / self.total_steps * 100:6.2f}%"
        return self.bar_format.format(percentage=percentage, bar=self.progress_bar_formatting())
