"""A real search process SIGKILLed at random moments, then run again, ends like an uninterrupted search:
the same trials table and the same final weights for every trial, and no finished trial run again."""

import random
import signal
import time

from tests.search import search_script
from tests.search.workers import final_weights, start, trainings


def _kill_inside_a_trial(directory, delay):
    """Starts the search, SIGKILLs it ``delay`` seconds after a trial starts training; returns whether it landed."""
    process = start(directory, SLOW=0.05)
    line = process.stdout.readline()
    while line and line.strip() != "TRAINING":
        line = process.stdout.readline()
    # A trial is 3 epochs of 4 batches (>= 50 ms each) with a checkpoint every 2 steps and at each epoch's end:
    # the kill lands inside an epoch, in a checkpoint write, or between trials.
    time.sleep(delay)
    landed = process.poll() is None
    if landed:
        process.send_signal(signal.SIGKILL)
    process.communicate(timeout=120)
    return landed


def test_sigkill_at_random_moments_then_rerun_matches_the_uninterrupted_search(tmp_path, monkeypatch, capsys):
    reference_directory, directory = tmp_path / "reference", tmp_path / "killed"
    monkeypatch.setenv("SLOW", "0")
    monkeypatch.setenv("NO_PLOTS", "")
    reference = [{k: v for k, v in row.items() if k != "directory"} for row in search_script.main(reference_directory)]
    assert [row["state"] for row in reference] == ["complete"] * 3

    rng = random.Random(5)
    # The first kill comes after the trial's first checkpoints (>= 2 steps) and before its end; the second anywhere.
    landed = sum(_kill_inside_a_trial(directory, delay) for delay in (rng.uniform(0.3, 0.5), rng.uniform(0.05, 1.5)))
    assert landed >= 1, "the runs ended before their kills: the timing of the test needs adjusting"
    # The same command once more, here in the test's own process: it takes up what the killed ones left.
    table = [{k: v for k, v in row.items() if k != "directory"} for row in search_script.main(directory)]

    assert table == reference  # numbers, states, objective values, parameters, epochs, best epochs
    names = [f"trials/trial_{row['trial']:04d}" for row in table]
    for name in names:
        assert final_weights(directory / name) == final_weights(reference_directory / name)
    resumed = [call["resumed_from"] for name in names for call in trainings(directory / name)]
    assert any(resumed), resumed  # an interrupted trial went on from its checkpoint, not from scratch
    # A finished search runs nothing again: no trial starts, none calls train.
    calls = [len(trainings(directory / name)) for name in names]
    capsys.readouterr()
    search_script.main(directory)
    assert " starts" not in capsys.readouterr().out
    assert [len(trainings(directory / name)) for name in names] == calls
