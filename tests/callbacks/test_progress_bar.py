"""ProgressBar's cells, ColorProgress's durations, and Poutyne's module paths in trainwell.framework."""

import pytest

import trainwell
import trainwell.framework as framework
from trainwell.callbacks.color_progress import EmptyStringAttrClass, format_duration
from trainwell.callbacks.progress_bar import EIGHTHS, ProgressBar


def test_full_cells_then_the_partial_one_then_spaces():
    bar = ProgressBar(16, bar_length=4, bar_character="#", partial_bar_characters="0123")
    drawn = []
    for _ in range(16):
        bar.update()
        drawn.append(bar.progress_bar_formatting())
    assert drawn[:5] == ["1   ", "2   ", "3   ", "#0  ", "#1  "]
    assert drawn[-1] == "####" and all(len(cells) == 4 for cells in drawn)
    assert str(bar) == "100.00% |####"


def test_the_default_bar_uses_eighth_blocks_and_the_format_wraps_it():
    bar = ProgressBar(160, bar_format="[{percentage}] {bar}|")
    bar.update(81)
    assert bar.progress_bar_formatting() == "\u2588" * 10 + EIGHTHS[1] + " " * 9
    assert str(bar).startswith("[ 50.62%] \u2588")
    bar.reset()
    assert bar.actual_steps == 0 and bar.progress_bar_formatting() == " " * 20


def test_one_step_before_the_end_is_never_a_full_bar():
    for steps in range(26, 120):
        bar = ProgressBar(steps, bar_length=25, bar_character="#", partial_bar_characters=[" "])
        bar.update(steps - 1)
        assert bar.progress_bar_formatting() == "#" * 24 + " "


def test_arguments_are_checked():
    with pytest.raises(ValueError, match=r"`steps` must be a positive int. Received: steps=0"):
        ProgressBar(0)
    with pytest.raises(ValueError, match=r"`partial_bar_characters` must hold at least one character"):
        ProgressBar(3, partial_bar_characters=[])


def test_durations_and_plain_colours():
    assert format_duration(2 * 86400) == "2d0h0m0.00s"
    assert format_duration(3600 + 1.5) == "1h0m1.50s"
    assert EmptyStringAttrClass().LIGHTBLUE_EX == ""


def test_framework_leads_to_trainwells_modules():
    assert framework.Model is trainwell.Model and framework.ProgressBar is ProgressBar
    assert framework.color_formatting.__name__ == "trainwell.callbacks.color_progress"
    assert framework.progress_bar.ProgressBar is ProgressBar
    assert "mlflow_logger" in dir(framework)
    with pytest.raises(AttributeError, match="has no attribute 'not_a_name'"):
        framework.not_a_name  # noqa: B018
