"""Worker processes running the same search share one study's trials: every trial runs once, in one worker,
on the default SQLite storage and on a real PostgreSQL server started by the test. The two workers are a
child process and the test's own process (one interpreter start less on a loaded machine)."""

from __future__ import annotations

import json

import pytest
import torch

from tests.search import search_script
from tests.search.postgres import server_binaries, temporary_server
from tests.search.workers import finish, start, trainings

GRID = {"SAMPLER": "grid", "N_TRIALS": 4, "EPOCHS": 1, "SLOW": 0.01}


def _two_workers_share_the_trials(directory, monkeypatch, capsys, storage=None):
    """Two workers: a child process and this test's own process, started together on one search."""
    env = {**GRID, "BARRIER": directory.parent / f"{directory.name}-barrier", "BARRIER_N": 2}
    if storage:
        env["STORAGE"] = storage
    child = start(directory, **env)
    for key, value in {**env, "NO_PLOTS": ""}.items():
        monkeypatch.setenv(key, str(value))
    outputs = [_search_here(directory, capsys), finish(child)]
    started = [_started(out) for _, out in outputs]

    # Each worker ran some trials, none ran one the other ran, and together they ran all four, once each.
    assert all(started), started
    assert sorted(started[0] + started[1]) == list(range(4)), started
    # A worker returns as soon as no trial is left to claim, and its table may then show the other's last
    # trial still running: the table to check is read by one more run once both have finished.
    final, out = _search_here(directory, capsys)
    assert _started(out) == [], out  # nothing was left to run
    assert [row["state"] for row in final] == ["complete"] * 4
    assert [(row["lr"], row["width"]) for row in final] == [(lr, w) for lr in (0.003, 0.03) for w in (4, 8)]
    for row in final:
        calls = trainings(directory / f"trials/trial_{row['trial']:04d}")
        assert len(calls) == 1 and calls[0]["resumed_from"] is None
        params = json.loads((directory / f"trials/trial_{row['trial']:04d}/run.json").read_text())["search"]["params"]
        assert params == {"lr": row["lr"], "width": row["width"]}
    return final


def _search_here(directory, capsys):
    """Runs the search in this process; returns its table (without directories) and what it printed."""
    threads = torch.get_num_threads()
    try:
        capsys.readouterr()
        table = [{k: v for k, v in row.items() if k != "directory"} for row in search_script.main(directory)]
        return table, capsys.readouterr().out
    finally:
        torch.set_num_threads(threads)


def _started(out):
    return [int(line.split()[1]) for line in out.splitlines() if line.endswith(" starts")]


def test_two_workers_on_the_default_sqlite_storage(tmp_path, monkeypatch, capsys):
    directory = tmp_path / "search"
    _two_workers_share_the_trials(directory, monkeypatch, capsys)
    assert (directory / "study.db").is_file()


@pytest.mark.skipif(
    server_binaries() is None,
    reason="PostgreSQL's server binaries (initdb, pg_ctl) are not installed: apt-get install postgresql "
    "(make test installs it as root: scripts/ensure-postgresql.sh)",
)
def test_two_workers_on_a_postgresql_server(tmp_path, monkeypatch, capsys):
    import optuna

    with temporary_server() as url:
        directory = tmp_path / "search"
        _two_workers_share_the_trials(directory, monkeypatch, capsys, storage=url)
        assert not (directory / "study.db").exists()
        study = optuna.load_study(study_name="search", storage=url)
        assert len(study.trials) == 4  # no trial was created twice
