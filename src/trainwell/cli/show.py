"""``trainwell show DIR [DIR...]``: a run's epochs, best epoch, test results, config and versions; or runs compared.

Everything is read from the files a run directory holds (``log.tsv``, ``{name}_log.tsv``, the checkpoints'
manifests, ``run.json``, ``config.yaml``, ``plots/``): nothing is built or loaded, so it is quick and works
on a directory written by the Python API too. Several directories give one column per run: the best
epoch's values, the test values, and the config keys on which the runs differ.
"""

from __future__ import annotations

import argparse
import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from trainwell.cli.errors import ConfigError
from trainwell.storage.checkpoints import list_checkpoints

__all__ = ["RunSummary", "format_table", "run_show"]


def _read_tsv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def _number(text: str) -> str:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return text or ""
    return str(int(value)) if value.is_integer() and abs(value) < 1e15 else f"{value:.6g}"


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns aligned on the widest cell, numbers on the right.

    >>> print(format_table(['epoch', 'loss'], [['1', '0.5'], ['2', '0.25']]))
    epoch  loss
        1   0.5
        2  0.25
    """
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            str(cell).rjust(width) if _is_number(str(cell)) else str(cell).ljust(width)
            for cell, width in zip(cells, widths)
        ).rstrip()

    return "\n".join([line(header), *(line(row) for row in rows)])


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


class RunSummary:
    """What a run directory holds, read from its files."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        if not self.directory.is_dir():
            raise ConfigError(f"`DIR` must be a run directory. Received: {str(directory)!r}, which is not a directory.")
        log = self.directory / "log.tsv"
        config = self.directory / "config.yaml"
        run = self.directory / "run.json"
        if not (log.is_file() or config.is_file() or run.is_file()):
            raise ConfigError(
                f"`DIR` must be a run directory (with log.tsv, config.yaml or run.json). Received: {str(directory)!r}."
            )
        self.epochs = _read_tsv(log) if log.is_file() else []
        self.config: dict[str, Any] = (yaml.safe_load(config.read_text()) or {}) if config.is_file() else {}
        self.run: dict[str, Any] = json.loads(run.read_text()) if run.is_file() else {}
        self.tests = {
            path.name.removesuffix("_log.tsv"): rows[-1]
            for path in sorted(self.directory.glob("*_log.tsv"))
            if (rows := _read_tsv(path))
        }
        flagged = [
            int(info.meta["epoch"])
            for info in list_checkpoints(self.directory / "checkpoints")
            if info.meta.get("was_best") and info.meta.get("epoch_complete")
        ]
        self.best_epoch = max(flagged) if flagged else None  # every new best was flagged when written
        plots = self.directory / "plots"
        self.plots = sorted(plots.glob("*.png")) if plots.is_dir() else []

    def best_row(self) -> dict[str, str]:
        """The ``log.tsv`` row of the best epoch (empty when unknown)."""
        return next((row for row in self.epochs if row.get("epoch") == str(self.best_epoch)), {})

    def versions(self) -> str:
        """trainwell, torch and Python versions, from ``run.json``."""
        keys = ("trainwell", "torch", "python")
        return ", ".join(f"{key} {self.run[key]}" for key in keys if key in self.run) or "unknown (no run.json)"

    def test_values(self) -> dict[str, str]:
        """Every test log's values but the tested epoch's own training values, prefixed by the log's name."""
        found = {}
        for name, row in self.tests.items():
            for key, value in row.items():
                if key.startswith(f"{name}_"):
                    found[key] = value
        return found


def _show_one(run: RunSummary) -> str:
    parts = [f"Run {run.directory}", f"  versions: {run.versions()}"]
    trainings = run.run.get("trainings", [])
    if trainings:
        resumed = sum(1 for call in trainings if call.get("resumed_from"))
        parts.append(f"  trainings: {len(trainings)} call(s), {resumed} resumed; created {run.run.get('created', '?')}")
    if run.epochs:
        keys = [key for key in run.epochs[0] if key != "time"]
        rows = [
            [_number(row.get(key, "")) for key in keys] + ["*" if row.get("epoch") == str(run.best_epoch) else ""]
            for row in run.epochs
        ]
        parts += ["", "Epochs (log.tsv; * the best epoch):", format_table([*keys, ""], rows)]
    else:
        parts += ["", "No epoch finished yet (no log.tsv)."]
    parts.append("")
    parts.append(f"Best epoch: {run.best_epoch}" if run.best_epoch is not None else "Best epoch: none recorded")
    for name, row in run.tests.items():
        values = ", ".join(f"{key}: {_number(value)}" for key, value in row.items() if key.startswith(f"{name}_"))
        parts.append(f"Test ({name}_log.tsv, epoch {row.get('epoch', '?')}): {values}")
    if run.config:
        parts += ["", "Config (config.yaml):", yaml.safe_dump(run.config, sort_keys=False).rstrip()]
    if run.plots:
        parts += ["", "Plots: " + ", ".join(str(path) for path in run.plots)]
    return "\n".join(parts)


def _flatten(config: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(config, dict):
        flat: dict[str, Any] = {}
        for key, value in config.items():
            flat.update(_flatten(value, f"{prefix}{key}."))
        return flat
    return {prefix.rstrip("."): config}


def _compare(runs: list[RunSummary]) -> str:
    header = ["", *(str(run.directory) for run in runs)]
    rows = [
        ["epochs", *(str(len(run.epochs)) for run in runs)],
        ["best epoch", *(str(run.best_epoch) for run in runs)],
    ]
    bests = [run.best_row() for run in runs]
    keys = [key for key in dict.fromkeys(key for best in bests for key in best) if key not in ("epoch", "time")]
    rows += [[f"best {key}", *(_number(best.get(key, "")) for best in bests)] for key in keys]
    tests = [run.test_values() for run in runs]
    test_keys = list(dict.fromkeys(key for values in tests for key in values))
    rows += [[key, *(_number(values.get(key, "")) for values in tests)] for key in test_keys]
    configs = [_flatten(run.config) for run in runs]
    config_keys = list(dict.fromkeys(key for config in configs for key in config))
    differing = [
        key
        for key in config_keys
        if key != "directory" and len({json.dumps(config.get(key), sort_keys=True) for config in configs}) > 1
    ]
    rows += [[f"config {key}", *(json.dumps(config.get(key)) for config in configs)] for key in differing]
    rows.append(["versions", *(run.versions() for run in runs)])
    return format_table(header, rows)


def run_show(argv: Sequence[str]) -> int:
    """``trainwell show DIR [DIR...] [--plots]``."""
    parser = argparse.ArgumentParser(
        prog="trainwell show",
        description="Print a run's epochs, best epoch, test results, config and versions; several runs compared.",
        allow_abbrev=False,
        exit_on_error=False,
    )
    parser.add_argument("directories", nargs="+", metavar="DIR", help="run directories")
    parser.add_argument("--plots", action="store_true", help="(re)write each run's plots/ from its log.tsv")
    try:
        arguments = parser.parse_args(list(argv))
    except argparse.ArgumentError as error:
        raise ConfigError(f"trainwell show: {error}") from error
    runs = [RunSummary(directory) for directory in arguments.directories]
    if arguments.plots:
        from trainwell.experiment.files import write_plots

        for run in runs:
            if run.epochs:
                history = [{key: float(value) for key, value in row.items() if _is_number(value)} for row in run.epochs]
                write_plots(history, run.directory / "plots")
                run.plots = sorted((run.directory / "plots").glob("*.png"))
    print(_show_one(runs[0]) if len(runs) == 1 else _compare(runs))
    return 0
