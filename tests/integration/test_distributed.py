"""Real ``torchrun`` runs on the CPU (gloo): the same script as a single process, on 2 processes, on two
"nodes", and killed with SIGKILL then resumed. See ddp_script.py for what the script does."""

import csv
import json
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.integration.torchrun import (
    ENVIRONMENT,
    failure,
    finish,
    free_port,
    kill_all,
    retrying_abort,
    run,
    torchrun,
)

SCRIPT = Path(__file__).with_name("ddp_script.py")


NODES = ["--nnodes=2", "--nproc_per_node=1", "--master_addr=127.0.0.1"]


def _two_processes(mode, directory, env=None):
    return torchrun(SCRIPT, mode, str(directory), env=env)


def _run(start, what):
    """Runs the agents ``start()`` returns to their end (once more on the worker abort, see torchrun.py)."""
    return run(start, what)[0]


def _results(directory):
    return [json.loads(path.read_text()) for path in sorted(Path(directory).glob("rank*.json"))]


def _table(logs):
    return np.array([[epoch[key] for key in sorted(epoch)] for epoch in logs])


def _assert_same_results(one, other, tolerance):
    assert one["history"][0].keys() == other["history"][0].keys()
    for key in ("history", "dataset_history", "loader_history"):
        np.testing.assert_allclose(_table(one[key]), _table(other[key]), rtol=0, atol=tolerance)
    for key in ("evaluate", "evaluate_predictions", "predict", "dataset_predict"):
        np.testing.assert_allclose(one[key], other[key], rtol=0, atol=tolerance)
    assert one["evaluate_truths"] == other["evaluate_truths"]
    for name, weights in one["weights"].items():
        np.testing.assert_allclose(weights, other["weights"][name], rtol=0, atol=tolerance)


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    directory = tmp_path_factory.mktemp("single")
    process = subprocess.run(
        [sys.executable, str(SCRIPT), "metrics", str(directory)],
        env=ENVIRONMENT,
        capture_output=True,
        text=True,
        timeout=150,
    )
    assert process.returncode == 0, failure(process.stderr)
    return _results(directory)[0]


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    directory = tmp_path_factory.mktemp("ddp")
    out = _run(lambda: [_two_processes("metrics", directory)], "the metrics run")
    return _results(directory), out


def test_two_processes_log_the_global_metrics_of_one_process_with_the_same_global_batch(single, two_ranks):
    (rank0, rank1), out = two_ranks
    assert (rank0["world_size"], rank0["wrapped"], single["wrapped"]) == (2, "DistributedDataParallel", "Sequential")
    # Loss, accuracy and F1 (an epoch metric), train and validation, equal one process's, and so do the weights.
    assert {"loss", "acc", "fscore_macro", "val_loss", "val_acc", "val_fscore_macro"} <= rank0["history"][0].keys()
    _assert_same_results(rank0, single, tolerance=1e-5)
    # Every rank logs the same global values, bit for bit.
    assert rank0["history"] == rank1["history"] and rank0["dataset_history"] == rank1["dataset_history"]
    # A DataLoader the user built is sharded like the one fit_dataset builds (the same batches).
    np.testing.assert_allclose(_table(rank0["loader_history"]), _table(rank0["dataset_history"]), rtol=0, atol=1e-6)
    # Only rank 0 shows progress: one line per epoch, not one per process.
    plain = re.sub(r"\x1b\[[0-9;]*m", "", out)  # the display's colours (colorama) left out
    assert plain.count("Epoch: 1/2 Train steps") == 1 and plain.count("Epoch: 2/2 Train steps") == 1, out


def test_evaluate_and_predict_return_every_sample_once_in_order(two_ranks):
    (rank0, rank1), _ = two_ranks
    # 37 validation samples over 2 ranks (19 + 18): nothing padded, nothing lost, the data's order.
    expected = ddp_data_targets()
    assert rank0["evaluate_truths"] == expected
    assert len(rank0["predict"]) == len(rank0["dataset_predict"]) == 37
    np.testing.assert_allclose(rank0["predict"], rank0["evaluate_predictions"], atol=1e-6)
    assert rank0["predict"] == rank1["predict"] and rank0["evaluate"] == rank1["evaluate"]


def ddp_data_targets():
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        from ddp_script import data
    finally:
        sys.path.pop(0)
    return data()[3].tolist()


def test_two_nodes_train_together(tmp_path, two_ranks):
    def start():
        port = f"--master_port={free_port()}"
        return [
            torchrun(SCRIPT, "metrics", str(tmp_path), options=[*NODES, f"--node_rank={node}", port]) for node in (0, 1)
        ]

    _run(start, "the two-node run")
    (rank0, rank1), _ = two_ranks
    two_node = _results(tmp_path)
    assert [result["world_size"] for result in two_node] == [2, 2]
    _assert_same_results(two_node[0], rank0, tolerance=1e-6)
    _assert_same_results(two_node[1], rank1, tolerance=1e-6)


def _rows(directory):
    with open(Path(directory) / "log.tsv", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    return [{key: value for key, value in row.items() if key != "time"} for row in rows]


def _weights(out):
    return out.split("WEIGHTS ")[1].strip()


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    directories = []

    def start():
        directories.append(tmp_path_factory.mktemp("experiment"))  # a retry starts from an empty directory
        return _two_processes("experiment", directories[-1])

    out = _run(lambda: [start()], "the experiment run")
    return directories[-1], out


def test_the_experiment_directory_is_written_once_by_rank_0(experiment):
    directory, out = experiment
    assert [row["epoch"] for row in _rows(directory)] == ["1", "2"]  # one row per epoch, one header
    assert (directory / "log.tsv").read_text().count("epoch\t") == 1
    assert len(json.loads((directory / "run.json").read_text())["trainings"]) == 1
    assert len((directory / "test_log.tsv").read_text().splitlines()) == 2
    names = sorted(path.name for path in (directory / "checkpoints").iterdir())
    assert names == ["epoch_0001", "epoch_0002"], names  # no step checkpoint left, no temporary
    assert out.count("WEIGHTS") == 1 and out.count("STEP 1\n") == 1


def test_a_killed_run_resumed_under_torchrun_ends_like_the_uninterrupted_one(tmp_path, experiment):
    retrying_abort(lambda attempt: _kill_and_resume(tmp_path / f"attempt{attempt}", experiment), "kill and resume")


def _kill_and_resume(directory, experiment):
    reference, reference_out = experiment
    process = _two_processes("experiment", directory, env={"SLOW": "0.1"})
    for line in process.stdout:
        if line.strip() == "STEP 10":  # mid-epoch 2: the checkpoint of step 9 is written, step 12's is not
            break
    kill_all(process)  # torchrun and both workers, at once
    process.communicate(timeout=60)
    assert process.returncode == -signal.SIGKILL
    assert "step_000000009" in [path.name for path in (directory / "checkpoints").iterdir()]
    resumed = _two_processes("experiment", directory)
    out, _ = finish([resumed])
    resumed_from = [call["resumed_from"] for call in json.loads((directory / "run.json").read_text())["trainings"]]
    assert resumed_from == [None, "step_000000009"]
    assert _rows(directory) == _rows(reference)  # the same global logs, every epoch once
    assert _weights(out) == _weights(reference_out)
    assert _test_logs(out) == _test_logs(reference_out)


def _test_logs(out):
    logs = json.loads(out.split("TEST ")[1].splitlines()[0])
    logs.pop("time")
    return logs
