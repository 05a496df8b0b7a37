import io
import os
import pty
import select
import subprocess
import sys
import textwrap
import time

import pytest
import torch
from torch import nn

from trainwell import Model
from trainwell.callbacks.interactive import ContinuePrompt

QUESTION = b"Continue training?"

SCRIPT = textwrap.dedent(
    """
    import sys, torch
    from torch import nn
    from trainwell import Model
    from trainwell.callbacks.interactive import ContinuePrompt

    torch.manual_seed(0)
    model = Model(nn.Linear(3, 2), "sgd", "cross_entropy")
    x, y = torch.randn(32, 3), torch.randint(0, 2, (32,))
    for epochs in sys.argv[1:]:  # one fit per argument: one interpreter start for several scenarios
        prompt = ContinuePrompt(every_n_epochs=2, ask_epochs=True)
        history = model.fit(x, y, epochs=int(epochs), batch_size=8, verbose=False, callbacks=[prompt])
        print("EPOCHS", [entry["epoch"] for entry in history], flush=True)
    """
)


def _run_in_terminal(epochs, answers):
    """Runs SCRIPT on a pseudo-terminal, typing the next answer each time the question appears."""
    leader, follower = pty.openpty()
    arguments = [str(number) for number in epochs]
    process = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, *arguments], stdin=follower, stdout=follower, stderr=subprocess.PIPE
    )
    os.close(follower)
    output, answered = b"", 0
    deadline = time.monotonic() + 60
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
        if output.count(QUESTION) > answered:
            os.write(leader, answers[answered].encode() + b"\n")
            answered += 1
        if process.poll() is not None and not ready:
            break
    process.wait(timeout=60)
    os.close(leader)
    assert process.returncode == 0, process.stderr.read().decode()
    return output.decode(errors="replace")


def test_a_person_at_a_terminal_answers_n_y_and_a_number_of_epochs():
    output = _run_in_terminal([6, 6, 9], ["n", "y", "yes", "maybe", "3", "n"])
    first, second, third, _ = output.split("EPOCHS")
    # 'n' after epoch 2 stops the run there.
    assert first.count("Continue training?") == 1
    assert "Epoch 2 done (4 left). Continue training? [Y/n, or a number of epochs]" in first
    assert second.startswith(" [1, 2]")
    # 'y' after epoch 2, 'yes' after epoch 4; epoch 6 ends the run anyway, so no third question.
    assert second.count("Continue training?") == 2 and "Epoch 4 done (2 left)" in second
    assert third.startswith(" [1, 2, 3, 4, 5, 6]")
    # An unclear answer is asked again; '3' trains 3 more epochs before asking again; 'n' stops.
    assert "Please answer y, n or a number of epochs. Received: 'maybe'." in third
    assert "Epoch 5 done (4 left)" in third and "Epoch 4 done" not in third
    assert output.rstrip().endswith("EPOCHS [1, 2, 3, 4, 5]")


def test_never_prompts_when_stdin_is_a_pipe(monkeypatch, capsys):
    # A pipe that would answer 'n' is not a person: every epoch runs and nothing is read or written.
    read_end, write_end = os.pipe()
    os.write(write_end, b"n\nn\n")
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        monkeypatch.setattr(sys, "stdin", pipe)
        model = Model(nn.Linear(3, 2), "sgd", "cross_entropy")
        x, y = torch.randn(16, 3), torch.randint(0, 2, (16,))
        history = model.fit(x, y, epochs=4, verbose=False, callbacks=[ContinuePrompt(every_n_epochs=1)])
        assert pipe.read() == "n\nn\n"  # still unread
    assert len(history) == 4 and capsys.readouterr().out == ""


def test_given_streams_that_are_not_terminals_are_left_alone():
    answers, out = io.StringIO("n\nn\n"), io.StringIO()
    model = Model(nn.Linear(3, 2), "sgd", "cross_entropy")
    x, y = torch.randn(16, 3), torch.randint(0, 2, (16,))
    prompt = ContinuePrompt(1, stdin=answers, stdout=out)
    history = model.fit(x, y, epochs=3, verbose=False, callbacks=[prompt])
    assert len(history) == 3 and answers.tell() == 0 and out.getvalue() == ""


def test_the_schedule_is_part_of_the_state_and_arguments_are_checked():
    prompt = ContinuePrompt(every_n_epochs=4)
    prompt.next_prompt = 10
    restored = ContinuePrompt(every_n_epochs=4)
    restored.load_state_dict(prompt.state_dict())
    assert restored.next_prompt == 10
    with pytest.raises(ValueError, match=r"`every_n_epochs` must be a positive int. Received: every_n_epochs=0"):
        ContinuePrompt(every_n_epochs=0)
