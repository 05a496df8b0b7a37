"""The progress display: Poutyne's lines, written to a real stream, read back."""

import io
import re

import pytest
import torch
from torch import nn

import trainwell.callbacks.color_progress as color_progress
from trainwell import EpochProgressionCallback, Model, ProgressionCallback
from trainwell.engine.tracking import MetricTracker

TIME = r"((([0-9]+d)?[0-9]{1,2}h)?[0-9]{1,2}m)?[0-9]{1,2}\.[0-9]{2}s"


def _model():
    torch.manual_seed(0)
    return Model(nn.Linear(3, 2), "sgd", "cross_entropy", batch_metrics=["accuracy"])


def _fit(model=None, **kwargs):
    model = model or _model()
    x, y = torch.randn(40, 3), torch.randint(0, 2, (40,))
    return model, model.fit(x, y, validation_data=(x, y), epochs=2, batch_size=8, **kwargs)


def _updates(text):
    """The successive contents of the rewritten line: the text between carriage returns."""
    return [part for part in text.strip().split("\r") if part]


def test_verbose_false_prints_nothing(capsys):
    _fit(verbose=False)
    model = _model()
    model.evaluate(torch.randn(4, 3), torch.zeros(4, dtype=torch.long), verbose=False)
    model.predict(torch.randn(4, 3), verbose=False)
    assert capsys.readouterr().out == ""


def test_each_step_rewrites_the_line_and_the_epoch_ends_it(capsys):
    _, history = _fit(progress_options={"coloring": False})
    out = capsys.readouterr().out
    assert "\x1b[" not in out
    lines = out.strip().split("\n")
    assert len(lines) == 2  # one line per epoch, rewritten in place by carriage returns
    updates = _updates(lines[0])
    assert len(updates) == 5 + 5 + 1  # 5 training steps, 5 validation steps, the summary
    for step, update in enumerate(updates[:5], 1):
        bar = "\u2588" * (4 * step) + " " * (20 - 4 * step)
        assert re.match(rf"Epoch: 1/2 Step: {step}/5 {step * 20:6.2f}% \|{bar}\|ETA: {TIME} loss: \d", update)
        assert " acc: " in update
    assert re.match(r"Epoch: 1/2 Step: 1/5 +20.00% .*ETA: .*val_loss: \d+\.\d{6} val_acc:", updates[5])
    summary = updates[-1].rstrip()
    assert re.match(rf"Epoch: 1/2 Train steps: 5 Val steps: 5 {TIME} loss: ", summary)
    assert f"val_acc: {history[0]['val_acc']:f}" in summary and summary.endswith(" lr: 0.01")


def test_colours_by_default_and_none_with_no_color(capsys, monkeypatch):
    pytest.importorskip("colorama")
    _fit()
    out = capsys.readouterr().out
    assert all(code in out for code in ("\x1b[35m", "\x1b[36m", "\x1b[94m", "\x1b[32m", "\x1b[0m"))
    _fit(progress_options={"coloring": {"text_color": "BLACK"}})
    out = capsys.readouterr().out
    assert "\x1b[30mEpoch: " in out and "\x1b[36m" in out  # the other parts keep their colours
    monkeypatch.setenv("NO_COLOR", "1")
    _fit()
    assert "\x1b[" not in capsys.readouterr().out


def test_coloring_errors_name_the_fix(monkeypatch):
    with pytest.raises(KeyError, match=r"unknown key\(s\) 'bar_colour'.*text_color, ratio_color"):
        ProgressionCallback(coloring={"bar_colour": "RED"})
    pytest.importorskip("colorama")
    with pytest.raises(ValueError, match=r"`coloring\['time_color'\]` must be a colorama Fore colour name"):
        ProgressionCallback(coloring={"time_color": "PINKISH"})
    monkeypatch.setattr(color_progress, "colorama", None)  # as if colorama were not installed
    with pytest.warns(ImportWarning, match="needs the colorama package"):
        progress = ProgressionCallback(coloring=True)
    assert not progress.color_progress.coloring_enabled


def test_evaluate_and_predict_have_their_own_line(capsys):
    model = _model()
    x, y = torch.randn(20, 3), torch.zeros(20, dtype=torch.long)
    loss, _ = model.evaluate(x, y, batch_size=8, progress_options={"coloring": False})
    updates = _updates(capsys.readouterr().out)
    assert re.match(r"Step: 1/3 +33.33% \|", updates[0]) and len(updates) == 4
    assert re.match(rf"Test steps: 3 {TIME} test_loss: {loss:f}", updates[-1])
    model.predict(x, batch_size=8, progress_options={"coloring": False, "progress_bar": False})
    updates = _updates(capsys.readouterr().out)
    assert "%" not in updates[0] and re.match(rf"Prediction steps: 3 {TIME}\s*$", updates[-1])


def test_unknown_step_counts_show_the_time_per_step():
    out = io.StringIO()
    model = _model()
    batches = [(torch.randn(4, 3), torch.zeros(4, dtype=torch.long))] * 3
    progress = ProgressionCallback(coloring=False, file=out)
    progress.set_model(model)
    progress.set_params({"epochs": 1, "steps": None})
    progress.on_epoch_begin(1, {})
    for batch in range(1, 4):
        progress.on_train_batch_end(batch, {"batch": batch, "size": 4, "time": 0.01, "loss": 0.5})
    progress.on_epoch_end(1, {"epoch": 1, "time": 0.03, "loss": 0.5})
    updates = _updates(out.getvalue())
    assert updates[0].startswith("Epoch: 1/1 Step: 1 0.01s/step loss: 0.500000")
    assert "%" not in out.getvalue() and len(batches) == 3
    assert updates[-1].startswith("Epoch: 1/1 Train steps: 3 0.03s loss: 0.500000")


def test_every_n_steps_and_none():
    out = io.StringIO()
    progress = ProgressionCallback(
        coloring=False, file=out, show_every_n_train_steps=2, show_every_n_valid_steps="none"
    )
    _fit(callbacks=[progress], verbose=False)
    updates = _updates(out.getvalue().split("\n")[0])
    assert [update.split(" ")[3] for update in updates[:-1]] == ["2/5", "4/5"]  # steps 2 and 4, no validation
    assert " 80.00% |" in updates[1]  # the bar counts every step, shown or not
    assert "Train steps: 5 Val steps: 5" in updates[-1]


def test_running_values_are_read_a_few_times_a_second_not_every_step(monkeypatch):
    reads = []
    original = MetricTracker.running_logs
    monkeypatch.setattr(MetricTracker, "running_logs", lambda self: reads.append(1) or original(self))
    model = _model()
    x, y = torch.randn(160, 3), torch.randint(0, 2, (160,))
    out = io.StringIO()
    progress = ProgressionCallback(coloring=False, file=out, refresh_per_second=1e-3)
    model.fit(x, y, epochs=1, batch_size=8, verbose=False, callbacks=[progress])
    # 20 steps, every one written; the running values (one device-to-host transfer each time) are read
    # at the first step and the last only.
    assert len(_updates(out.getvalue())) == 21 and len(reads) == 2


def test_a_display_passed_by_the_user_replaces_the_default(capsys):
    buffer = io.StringIO()
    _fit(callbacks=[EpochProgressionCallback(coloring=False, file=buffer)])
    assert capsys.readouterr().out == ""  # verbose=True, but no second display on stdout
    assert buffer.getvalue().count("Epoch: ") == 2


def test_epoch_progression_every_n_epochs_and_the_last():
    buffer = io.StringIO()
    model = _model()
    x, y = torch.randn(16, 3), torch.randint(0, 2, (16,))
    model.fit(x, y, epochs=7, callbacks=[EpochProgressionCallback(show_every_n_epochs=3, file=buffer, coloring=False)])
    summaries = _updates(buffer.getvalue())
    assert [line.split()[1] for line in summaries] == ["3/7", "6/7", "7/7"]
    assert summaries[0].startswith("Epoch: 3/7 Train steps: 1 ")


def test_progress_options_are_checked():
    with pytest.raises(ValueError, match=r"`show_every_n_train_steps` must be 'all', 'none' or a positive int"):
        ProgressionCallback(show_every_n_train_steps=0)
    with pytest.raises(ValueError, match=r"`refresh_per_second` must be a positive number"):
        ProgressionCallback(refresh_per_second=0)
    with pytest.raises(TypeError, match=r"`coloring` must be True, False or a dict"):
        ProgressionCallback(coloring="yes")


def test_jupyter_rewrites_the_line_at_most_every_tenth_of_a_second(monkeypatch):
    monkeypatch.setattr(color_progress, "jupyter", True)
    clock = iter([1.0, 1.05, 1.2])
    monkeypatch.setattr(color_progress.time, "time", lambda: next(clock))
    out = io.StringIO()
    progress = color_progress.ColorProgress(coloring=False, file=out)
    for step in (1, 2, 3):
        progress.on_batch_end(step, 3, 0.0, [])
    assert [update.split()[1] for update in _updates(out.getvalue())] == ["1/3", "3/3"]  # 1.05 came too soon
