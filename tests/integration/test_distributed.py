"""Real ``torchrun`` runs on the CPU (gloo): the same script as a single process, on 2 processes, on two
"nodes", and killed with SIGKILL then resumed. See ddp_script.py for what the script does."""

import contextlib
import csv
import json
import os
import re
import signal
import socket
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).with_name("ddp_script.py")
ROOT = Path(__file__).resolve().parents[2]
ENVIRONMENT = {
    **os.environ,
    "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)]),
    "OMP_NUM_THREADS": "1",  # torchrun's default too: two processes on two cores
    # A worker that aborts prints the Python stacks of its threads: where the intermittent abort below hits.
    "PYTHONFAULTHANDLER": "1",
}


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _torchrun(mode, directory, *options, env=None):
    command = [sys.executable, "-m", "torch.distributed.run", *options, str(SCRIPT), mode, str(directory)]
    return subprocess.Popen(
        command, env={**ENVIRONMENT, **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _descendants(pid):
    """Every process started below ``pid`` (torchrun puts its workers in sessions of their own)."""
    children = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _kill_all(process):
    for pid in [process.pid, *_descendants(process.pid)]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _finish(process, timeout=150):
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_all(process)  # a hung collective must not outlive the test
        process.communicate()
        raise
    assert process.returncode == 0, _failure(err)
    return out


# An intermittent abort of one gloo worker, not understood yet: "terminate called without an active
# exception" (SIGABRT) on rank 1 of an experiment run, seen in 3 of 5 full-suite runs on fresh clones and in
# none of ~45 runs of the same command alone. Such a run is started once more and the abort is reported as a
# warning, so that it stays visible; any other failure, or a second abort, fails the test.
_ABORT = "terminate called without an active exception"


def _worker_aborted(err):
    """Whether a failed run's stderr shows that abort: its message, or torchrun's report of a SIGABRT."""
    return _ABORT in err or "(SIGABRT)" in err


def _finish_retrying_abort(start, timeout=150):
    process = start()
    out, err = process.communicate(timeout=timeout)
    if process.returncode != 0 and _worker_aborted(err):
        warnings.warn(
            f"a torchrun worker aborted ({_ABORT}); the run was started again. What it said:\n{_failure(err)}",
            stacklevel=2,
        )
        return _finish(start(), timeout)
    assert process.returncode == 0, _failure(err)
    return out


def _failure(err):
    """What a failed run said: the workers' own errors (an abort's ``what()``, a traceback) come before
    torchrun's long summary, which alone would fill the message."""
    lines = err.splitlines()
    markers = ("Traceback", "Error", "terminate called", "what()", "Abort", "Signal")
    first = next((index for index, line in enumerate(lines) if any(mark in line for mark in markers)), len(lines))
    return "\n".join(lines[max(0, first - 5) : first + 60]) + "\n...\n" + err[-3000:]


def _two_processes(mode, directory, env=None):
    return _torchrun(mode, directory, "--nproc_per_node=2", f"--master_port={_free_port()}", env=env)


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
    process = subprocess.Popen(
        [sys.executable, str(SCRIPT), "metrics", str(directory)],
        env=ENVIRONMENT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _finish(process)
    return _results(directory)[0]


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    directory = tmp_path_factory.mktemp("ddp")
    out = _finish(_two_processes("metrics", directory))
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
    port = _free_port()
    nodes = [
        _torchrun(
            "metrics",
            tmp_path,
            "--nnodes=2",
            f"--node_rank={node}",
            "--nproc_per_node=1",
            "--master_addr=127.0.0.1",
            f"--master_port={port}",
        )
        for node in (0, 1)
    ]
    for node in nodes:
        _finish(node)
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

    out = _finish_retrying_abort(start)
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
    try:
        _kill_and_resume(tmp_path / "first", experiment)
    except _AbortedError as aborted:
        warnings.warn(
            f"a torchrun worker aborted ({_ABORT}); the scenario was run again. What it said:\n{aborted}",
            stacklevel=1,
        )
        _kill_and_resume(tmp_path / "again", experiment)


class _AbortedError(Exception):
    pass


def _kill_and_resume(directory, experiment):
    reference, reference_out = experiment
    process = _two_processes("experiment", directory, env={"SLOW": "0.1"})
    for line in process.stdout:
        if line.strip() == "STEP 10":  # mid-epoch 2: the checkpoint of step 9 is written, step 12's is not
            break
    _kill_all(process)  # torchrun and both workers, at once
    process.communicate(timeout=60)
    assert process.returncode == -signal.SIGKILL
    assert "step_000000009" in [path.name for path in (directory / "checkpoints").iterdir()]
    resumed = _two_processes("experiment", directory)
    out, err = resumed.communicate(timeout=150)
    if resumed.returncode != 0 and _worker_aborted(err):
        raise _AbortedError(_failure(err))
    assert resumed.returncode == 0, _failure(err)
    resumed_from = [call["resumed_from"] for call in json.loads((directory / "run.json").read_text())["trainings"]]
    assert resumed_from == [None, "step_000000009"]
    assert _rows(directory) == _rows(reference)  # the same global logs, every epoch once
    assert _weights(out) == _weights(reference_out)
    assert _test_logs(out) == _test_logs(reference_out)


def _test_logs(out):
    logs = json.loads(out.split("TEST ")[1].splitlines()[0])
    logs.pop("time")
    return logs
