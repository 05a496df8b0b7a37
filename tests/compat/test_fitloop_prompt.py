"""fit(continue_loop=n) asks a person at a real terminal, and never waits on a script (stdin not a terminal)."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import textwrap
import time

QUESTION = b"Continue training?"

SCRIPT = textwrap.dedent(
    """
    import torch
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset
    from trainwell.compat.fitloop import FitLoop

    torch.manual_seed(0)
    x, y = torch.randn(64, 8), torch.randint(0, 3, (64,))
    loader = DataLoader(TensorDataset(x, y), batch_size=16)
    model = nn.Linear(8, 3)
    trainer = FitLoop(model, torch.optim.SGD(model.parameters(), lr=0.1), nn.CrossEntropyLoss(), loader, loader,
                      device="cpu")
    trainer.fit(epochs=6, continue_loop=2)
    print("EPOCHS", trainer.epoch_num, len(trainer.M.train["loss"][0]), flush=True)
    """
)


def _environment():
    return {**os.environ, "OMP_NUM_THREADS": "1"}


def test_a_person_at_a_terminal_stops_the_fit():
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-c", SCRIPT], stdin=follower, stdout=follower, stderr=subprocess.PIPE, env=_environment()
    )
    os.close(follower)
    answers, output = [b"y\n", b"n\n"], b""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            output += chunk
        if answers and output.count(QUESTION) > 2 - len(answers):
            os.write(leader, answers.pop(0))
        if process.poll() is not None and not ready:
            break
    process.wait(timeout=60)
    os.close(leader)
    assert process.returncode == 0, process.stderr.read().decode()
    text = output.decode(errors="replace")
    # Asked after epochs 2 and 4 (fitloop's schedule); 'y' goes on, 'n' stops after epoch 4.
    assert text.count("Continue training?") == 2
    assert "Epoch 2 done (4 left)" in text and "Epoch 4 done (2 left)" in text
    assert "EPOCHS 4 4" in text


def test_a_script_without_a_terminal_runs_every_epoch_unasked(monkeypatch, capsys):
    # fitloop called input(): a job whose stdin is a pipe (or closed) waited for an answer, or crashed on EOF.
    import torch
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset

    from trainwell.compat.fitloop import FitLoop

    read_end, write_end = os.pipe()
    os.write(write_end, b"n\nn\n")  # what a pipe would answer: not a person, so not read
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        monkeypatch.setattr(sys, "stdin", pipe)
        x, y = torch.randn(64, 8), torch.randint(0, 3, (64,))
        loader = DataLoader(TensorDataset(x, y), batch_size=16)
        model = nn.Linear(8, 3)
        trainer = FitLoop(model, torch.optim.SGD(model.parameters(), lr=0.1), nn.CrossEntropyLoss(), loader, loader,
                          device="cpu")  # fmt: skip
        trainer.fit(epochs=6, continue_loop=2)
        assert pipe.read() == "n\nn\n"
    assert trainer.epoch_num == 6 and "Continue training?" not in capsys.readouterr().out
