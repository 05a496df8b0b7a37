"""``trainwell search``, in-process: a grid over a fit config's own keys, one run directory per trial (each
with its resolved config, its own scheduler), a rerun that trains nothing, and config mistakes (exit 2)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import yaml

from tests.cli.helpers import TINY_CONFIG
from trainwell.cli import main

SEARCH = """\
search:
  objective: val_loss
  sampler: grid
  n_trials: 2
  space:
    optimizer.lr: [0.05, 0.01]
"""


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    path = tmp_path / "search.yaml"
    # Two epochs, so that each trial's own StepLR (gamma 0.5 every epoch) shows in its second epoch.
    text = TINY_CONFIG.replace("directory: runs/reference", "directory: runs/search").replace("epochs: 1", "epochs: 2")
    path.write_text(text.replace("    init_args: {seconds: 0.05}", "    init_args: {seconds: 0.0}") + SEARCH)
    return path


def _epochs(directory: Path) -> list[dict[str, str]]:
    with open(directory / "log.tsv", newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def test_a_grid_over_the_configs_keys_runs_each_trial_as_a_run(config, capsys) -> None:
    assert main(["search", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "Best parameters: {'optimizer.lr':" in out
    trials = sorted(Path("runs/search/trials").iterdir())
    assert [path.name for path in trials] == ["trial_0000", "trial_0001"]
    for directory, lr in zip(trials, [0.05, 0.01]):  # the grid's order
        saved = yaml.safe_load((directory / "config.yaml").read_text())
        assert saved["optimizer"]["lr"] == lr and saved["directory"] == str(directory)
        rows = _epochs(directory)
        # Each trial's scheduler is its own, on its own optimizer: lr, then lr * 0.5.
        assert [float(row["lr"]) for row in rows] == pytest.approx([lr, lr * 0.5])
    assert main(["show", *map(str, trials)]) == 0  # a trial is a run like any other
    assert main(["search", "--config", str(config)]) == 0  # finished: nothing is trained again
    assert [len(_epochs(directory)) for directory in trials] == [2, 2]


def test_search_config_mistakes_name_the_key(config, capsys) -> None:
    assert main(["search", "--config", str(config), "--search.space", "{optimzer.lr: [0.1]}"]) == 2
    err = capsys.readouterr().err
    assert "`search.space` does not fit the config" in err and "optimzer" in err
    assert main(["search", "--config", str(config), "--search.sampler", "gird"]) == 2
    assert "sampler" in capsys.readouterr().err
    plain = config.with_name("plain.yaml")
    plain.write_text(TINY_CONFIG)
    assert main(["search", "--config", str(plain)]) == 2
    assert "has no `search:` section" in capsys.readouterr().err
