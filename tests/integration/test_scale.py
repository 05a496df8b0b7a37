"""Real ``torchrun`` runs on the CPU (gloo) past DDP's basics: ``no_sync`` accumulation, FSDP, and exact
resume on another number of processes. See scale_script.py for what each mode does."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.integration.torchrun import ENVIRONMENT, failure, free_port, run, torchrun

SCRIPT = Path(__file__).with_name("scale_script.py")


def _agents(mode, directory, processes, env=None, nodes=1):
    """One torchrun agent per "node" (``nodes=2``: two agents on 127.0.0.1), ``processes`` workers each."""
    options = [f"--nproc_per_node={processes}"]
    if nodes == 1:
        return [torchrun(SCRIPT, mode, str(directory), options=options, env=env)]
    where = [*options, f"--nnodes={nodes}", "--master_addr=127.0.0.1", f"--master_port={free_port()}"]
    return [
        torchrun(SCRIPT, mode, str(directory), options=[*where, f"--node_rank={node}"], env=env)
        for node in range(nodes)
    ]


def _run(mode, directory, processes, env=None, nodes=1):
    """Runs to its end, once more on the worker abort (see torchrun.py); returns the agents' stderr."""
    return run(lambda: _agents(mode, directory, processes, env, nodes), mode)[1]


def _json(path):
    return json.loads(Path(path).read_text())


def _assert_weights_close(one, other, tolerance):
    assert one.keys() == other.keys()
    for name in one:
        np.testing.assert_allclose(np.array(one[name]), np.array(other[name]), rtol=0, atol=tolerance, err_msg=name)


# -- one launch of 2 processes: no_sync, then FSDP ---------------------------------------------------------
@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    directory = tmp_path_factory.mktemp("two")
    _run("two", directory, 2)
    return [_json(directory / f"two{rank}.json") for rank in (0, 1)]


def test_accumulation_skips_the_all_reduce_of_micro_batches_that_do_not_step(two_ranks):
    for result in two_ranks:
        nosync = result["nosync"]
        # 6 batches per rank, batches_per_step=3: 2 optimizer steps. One all-reduce per step instead of
        # one per micro-batch: batches_per_step - 1 = 2 fewer per step (the tiny network is one bucket).
        assert nosync["steps"] == 2
        assert (nosync["known"], nosync["unknown"]) == (2, 6)
        # The same weights as reducing every micro-batch (the generator's run, whose length is unknown).
        _assert_weights_close(nosync["known_weights"], nosync["unknown_weights"], 1e-6)


def test_fsdp_shards_parameters_and_optimizer_state_and_trains_like_ddp(two_ranks):
    shares = [result["fsdp"]["shares"] for result in two_ranks]
    for kind in ("parameters", "optimizer"):
        held = [share[kind][0] for share in shares]
        total = shares[0][kind][1]
        assert sum(held) == total  # every element on exactly one rank
        assert max(held) <= 0.55 * total, (kind, held, total)  # about 1/W each (rows split 2 ways)
    for result in two_ranks:
        fsdp = result["fsdp"]
        assert fsdp["wrapped"] == "FSDPSequential"  # fully_shard, in place: no DDP wrapper
        fits = fsdp["fits"]
        np.testing.assert_allclose(fits["fsdp"]["history"], fits["ddp"]["history"], rtol=0, atol=1e-5)
        _assert_weights_close(fits["fsdp"]["weights"], fits["ddp"]["weights"], 1e-5)
    assert two_ranks[0]["fsdp"]["fits"] == two_ranks[1]["fsdp"]["fits"]  # whole weights gathered on every rank
    # A checkpoint's snapshot holds the whole tensors on rank 0 alone (one host copy of the model).
    whole = {"0.weight": [16, 8], "0.bias": [16], "2.weight": [3, 16], "2.bias": [3]}
    assert two_ranks[0]["fsdp"]["snapshot"] == {"network": whole, "optimizer": 12}  # step, exp_avg, exp_avg_sq x 4
    assert two_ranks[1]["fsdp"]["snapshot"] == {"network": {}, "optimizer": 0}


def test_fsdp_bf16_computes_in_bfloat16_over_float32_shards(two_ranks):
    bf16 = two_ranks[0]["fsdp"]["bf16"]
    assert bf16["compute_dtypes"] == ["torch.bfloat16"]
    assert (bf16["shard_dtype"], bf16["output_dtype"]) == ("torch.float32", "float32")
    assert bf16["losses"][1] < bf16["losses"][0]


def test_fsdp_refuses_bad_input_naming_the_argument(two_ranks):
    errors = two_ranks[0]["fsdp"]["errors"]
    assert errors["instance"].startswith("ValueError: `optimizer` is an instance (SGD)")
    assert "pass it by name: optimizer='adam'" in errors["instance"]
    assert errors["nothing"].startswith("ValueError: `strategy='fsdp'` has nothing to shard")
    assert errors["fp16"].startswith("ValueError: `precision='16'` with strategy='fsdp'")
    assert errors["strategy"].startswith("ValueError: `strategy` must be 'ddp', 'fsdp'")


def test_fsdp_outside_a_process_group_is_refused():
    from torch import nn

    from trainwell import Model

    with pytest.raises(ValueError, match=r"`strategy='fsdp'` shards the network over the processes of a process group"):
        Model(nn.Linear(2, 2), "sgd", "mse", strategy="fsdp")


# -- elastic exact resume ----------------------------------------------------------------------------------
def _global_batches(directory, leg):
    """{step: the global batch's sample indices in order} of one leg: its ranks' batches interleaved."""
    files = sorted(Path(directory).glob(f"seen_{leg}_*.txt"))
    per_rank = []
    for path in files:
        lines = [line.split() for line in path.read_text().splitlines()]
        per_rank.append({int(step): [int(i) for i in indices.split(",")] for step, indices in lines})
    batches = {}
    for step in per_rank[0]:
        parts = [rank[step] for rank in per_rank]
        batches[step] = [part[j] for j in range(len(parts[0])) for part in parts if j < len(part)]
    return batches


def _log_rows(directory):
    with open(Path(directory) / "log.tsv", newline="") as handle:
        return [
            {k: float(v) for k, v in row.items() if k != "time" and v} for row in csv.DictReader(handle, delimiter="\t")
        ]


def _killed(directory, leg, processes, strategy, kill_at, nodes=1):
    env = {"LEG": leg, "STRATEGY": strategy, "KILL_AT": str(kill_at)}
    agents = _agents("elastic", directory, processes, env, nodes)
    for agent in agents:
        _, err = agent.communicate(timeout=150)
        # Every worker killed itself with SIGKILL after step kill_at: torchrun reports the signal.
        assert agent.returncode != 0 and "(SIGKILL)" in err, failure(err)


def test_a_run_killed_and_resumed_on_other_numbers_of_processes_ends_like_the_uninterrupted_one(tmp_path):
    """2 nodes x 1 process (FSDP), killed mid-epoch 1 -> 1 process (FSDP), killed mid-epoch 2 -> 2 processes
    (DDP) to the end, against one uninterrupted process; the global batch stays 16 throughout."""
    reference, chain = tmp_path / "reference", tmp_path / "chain"
    reference.mkdir()
    chain.mkdir()
    alone = subprocess.run(
        [sys.executable, str(SCRIPT), "elastic", str(reference)],
        env={**ENVIRONMENT, "LEG": "ref"},
        capture_output=True,
        text=True,
        timeout=150,
    )
    assert alone.returncode == 0, failure(alone.stderr)
    _killed(chain, "a", 1, "fsdp", kill_at=4, nodes=2)  # the checkpoint of step 3 is the last written
    _killed(chain, "b", 1, "fsdp", kill_at=10)  # resumes step 3 (2 nodes -> 1 process)
    _run("elastic", chain, 2, env={"LEG": "c", "STRATEGY": "ddp"})  # resumes step 9 (1 -> 2; FSDP's files, DDP)
    resumed_from = [call["resumed_from"] for call in _json(chain / "run.json")["trainings"]]
    assert resumed_from == [None, "step_000000003", "step_000000009"]
    # Every step of every leg trained the uninterrupted run's global batch: the same samples, same order.
    expected = _global_batches(reference, "ref")
    assert sorted(expected) == list(range(1, 13)) and all(len(batch) == 16 for batch in expected.values())
    legs = {leg: _global_batches(chain, leg) for leg in "abc"}
    assert [sorted(legs[leg]) for leg in "abc"] == [[1, 2, 3, 4], list(range(4, 11)), [10, 11, 12]]
    for batches in legs.values():
        for step, batch in batches.items():
            assert batch == expected[step], step
    # The final weights and every epoch's logs equal the uninterrupted run's to float-summation order.
    _assert_weights_close(_json(chain / "weights.json"), _json(reference / "weights.json"), 1e-5)
    rows, expected_rows = _log_rows(chain), _log_rows(reference)
    assert [row["epoch"] for row in rows] == [1.0, 2.0]
    for row, expected_row in zip(rows, expected_rows):
        assert row.keys() == expected_row.keys()
        np.testing.assert_allclose(list(row.values()), list(expected_row.values()), rtol=0, atol=1e-5)
