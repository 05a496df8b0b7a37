import io
import os
import pty
import subprocess
import sys
import textwrap

import torch
from torch import nn

from trainwell import Model


def _fit(**kwargs):
    torch.manual_seed(0)
    model = Model(nn.Linear(3, 2), "sgd", "cross_entropy", batch_metrics=["accuracy"])
    x, y = torch.randn(40, 3), torch.randint(0, 2, (40,))
    return model, model.fit(x, y, validation_data=(x, y), epochs=2, batch_size=8, **kwargs)


def test_verbose_false_prints_nothing(capsys):
    _fit(verbose=False)
    model = Model(nn.Linear(3, 2), "sgd", "cross_entropy")
    model.evaluate(torch.randn(4, 3), torch.zeros(4, dtype=torch.long), verbose=False)
    model.predict(torch.randn(4, 3), verbose=False)
    assert capsys.readouterr().out == ""


def test_without_a_terminal_one_plain_line_per_epoch(capsys):
    _, history = _fit()
    out = capsys.readouterr().out
    assert "\r" not in out and "\x1b[" not in out  # no carriage-return spam, no colour codes in CI logs
    lines = out.strip().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("Epoch 1/2 ") and f"val_acc: {history[0]['val_acc']:.6f}" in lines[0]


def test_progress_options_reach_the_callback():
    buffer = io.StringIO()
    _fit(progress_options={"file": buffer, "coloring": False})
    assert buffer.getvalue().count("Epoch") == 2


def test_evaluate_prints_a_test_line(capsys):
    model = Model(nn.Linear(3, 2), "sgd", "cross_entropy")
    loss = model.evaluate(torch.randn(4, 3), torch.zeros(4, dtype=torch.long))
    assert f"test_loss: {loss:.6f}" in capsys.readouterr().out


def test_a_terminal_gets_a_live_bar_with_eta_and_running_metrics():
    script = textwrap.dedent(
        """
        import time, torch
        from torch import nn
        from trainwell import Model, Callback

        class Slow(Callback):
            def on_train_batch_end(self, batch_number, logs):
                time.sleep(0.01)

        model = Model(nn.Linear(3, 2), "sgd", "cross_entropy", batch_metrics=["accuracy"])
        x, y = torch.randn(800, 3), torch.randint(0, 2, (800,))
        model.fit(x, y, epochs=1, batch_size=8, callbacks=[Slow()])
        """
    )
    leader, follower = pty.openpty()
    env = {**os.environ, "COLUMNS": "150", "TERM": "xterm"}
    process = subprocess.Popen([sys.executable, "-c", script], stdout=follower, stderr=subprocess.PIPE, env=env)
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    process.wait(timeout=60)
    os.close(leader)
    output = b"".join(chunks).decode(errors="replace")
    assert process.returncode == 0, process.stderr.read().decode()
    assert "━" in output  # the bar
    assert "/100" in output  # steps done out of the total
    assert "0:00:0" in output  # the ETA column
    assert "acc: " in output and "loss: " in output  # running averages on the bar
    assert "Epoch 1/1" in output


def test_plain_step_lines_every_n_steps_without_a_terminal():
    from trainwell import ProgressionCallback

    buffer = io.StringIO()
    progress = ProgressionCallback(coloring=False, file=buffer, show_every_n_train_steps=2, show_every_n_valid_steps=5)
    _, history = _fit(callbacks=[progress])  # 5 batches of 8 per epoch, validation too
    lines = buffer.getvalue().splitlines()
    assert [line.split("loss")[0] for line in lines[:4]] == [
        "Epoch 1/2 step 2/5 ",
        "Epoch 1/2 step 4/5 ",
        "Epoch 1/2 validation step 5/5 ",
        f"Epoch 1/2 {lines[3].split()[2]} ",  # the epoch line: elapsed time, then the epoch logs
    ]
    assert lines[3].endswith(" lr: 0.01")
    assert "acc: " in lines[0] and "\r" not in buffer.getvalue()
    assert f"val_acc: {history[1]['val_acc']:.6f}" in lines[-1]


def test_a_display_passed_by_the_user_replaces_the_default(capsys):
    from trainwell import EpochProgressionCallback

    buffer = io.StringIO()
    _fit(callbacks=[EpochProgressionCallback(coloring=False, file=buffer)])
    assert capsys.readouterr().out == ""  # verbose=True, but no second display on stdout
    assert buffer.getvalue().count("Epoch ") == 2


def test_epoch_progression_every_n_epochs_and_the_last():
    from trainwell import EpochProgressionCallback

    buffer = io.StringIO()
    model = Model(nn.Linear(3, 2), "sgd", "cross_entropy")
    x, y = torch.randn(16, 3), torch.randint(0, 2, (16,))
    model.fit(x, y, epochs=7, callbacks=[EpochProgressionCallback(show_every_n_epochs=3, file=buffer)])
    assert [line.split()[1] for line in buffer.getvalue().splitlines()] == ["3/7", "6/7", "7/7"]


def test_progress_options_are_checked():
    import pytest

    from trainwell import ProgressionCallback

    with pytest.raises(ValueError, match=r"`show_every_n_train_steps` must be 'all' or a positive int. Received: .*=0"):
        ProgressionCallback(show_every_n_train_steps=0)
