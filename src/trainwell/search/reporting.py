"""What a search writes for people: the trials table (``trials.csv``), TensorBoard HParams, plots, progress.

- ``trials.csv``: one row per trial (its number, state, objective value, parameters, epochs, duration,
  directory), rewritten atomically after every trial;
- ``tensorboard/trial_NNNN/``: one HParams entry per finished trial (tinydl's run-level reporter): the
  parameters, the trial's state, and its final logged values; ``tensorboard --logdir <search>/tensorboard``
  compares them in the HParams dashboard;
- ``plots/optimization_history.png`` and ``plots/param_importances.png``: Optuna's matplotlib figures
  (importances by PED-ANOVA), written when a worker's call ends;
- one line per trial on the console.
"""

from __future__ import annotations

import csv
import io
import json
import math
import shutil
import tempfile
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from trainwell.experiment.files import read_epoch_logs
from trainwell.search.study import SLOT, latest_attempts
from trainwell.utils.files import atomic_write

__all__ = ["read_epoch_logs", "record_trial", "trials_rows", "write_hparams", "write_plots", "write_trials_csv"]

TRIAL_DIRECTORY = "trial_{:04d}"


def trials_rows(trials: list[Any], objective: str, names: list[str], directory: Path) -> list[dict[str, Any]]:
    """One dict per slot, from its newest attempt: what the trials DataFrame and ``trials.csv`` hold."""
    rows = []
    for slot, trial in sorted(latest_attempts(trials).items()):
        duration = (
            (trial.datetime_complete - trial.datetime_start).total_seconds()
            if trial.datetime_complete is not None and trial.datetime_start is not None
            else math.nan
        )
        row: dict[str, Any] = {
            "trial": slot,
            "state": trial.state.name.lower(),
            objective: trial.value if trial.value is not None else math.nan,
        }
        row.update({name: trial.params.get(name) for name in names})
        row.update(
            {
                "epochs": trial.user_attrs.get("epochs", 0),
                "best_epoch": trial.user_attrs.get("best_epoch"),
                "duration": duration,
                "directory": str(directory / "trials" / TRIAL_DIRECTORY.format(slot)),
            }
        )
        rows.append(row)
    return rows


def write_trials_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    """``trials.csv``, written atomically (a reader never sees half a table)."""
    if not rows:
        return
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write(path, buffer.getvalue().encode())


def record_trial(directory: Path, record: Mapping[str, Any]) -> None:
    """Adds ``record`` as the ``search`` entry of the trial's ``run.json`` (the experiment keeps other keys)."""
    path = directory / "run.json"
    try:
        run = json.loads(path.read_text())
    except (OSError, ValueError):
        run = {}
    run["search"] = dict(record)
    directory.mkdir(parents=True, exist_ok=True)
    atomic_write(path, (json.dumps(run, indent=2) + "\n").encode())


def _hparam_value(value: Any) -> Any:
    # TensorBoard's HParams take bools, numbers and strings; None is shown as a string.
    return value if isinstance(value, (bool, int, float, str)) else str(value)


def write_hparams(
    directory: Path, params: Mapping[str, Any], state: str, metrics: Mapping[str, float], slot: int
) -> None:
    """The trial's HParams entry in ``directory/trial_NNNN``, replacing any earlier one whole.

    Written in a temporary folder beside it, then renamed, so a worker killed while writing it leaves
    either the previous entry or none, never half of one (or two entries when it writes it again).
    """
    try:
        from torch.utils.tensorboard import SummaryWriter
        from torch.utils.tensorboard.summary import hparams
    except ImportError:
        return
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / TRIAL_DIRECTORY.format(slot)
    temporary = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=directory))
    values = {name: _hparam_value(value) for name, value in params.items()}
    values["state"] = state
    finite = {name: float(value) for name, value in metrics.items() if math.isfinite(float(value))}
    with SummaryWriter(str(temporary)) as writer:
        experiment, session_start, session_end = hparams(values, finite)
        for summary in (experiment, session_start, session_end):
            writer.file_writer.add_summary(summary)
        for name, value in finite.items():
            writer.add_scalar(name, value)
    if target.exists():
        shutil.rmtree(target)
    temporary.rename(target)


def write_plots(study: Any, directory: Path) -> None:
    """Optuna's optimization history and parameter importances as PNGs in ``directory``."""
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
        from optuna.visualization import matplotlib as optuna_plots
    except ImportError:
        return
    from optuna.trial import TrialState

    complete = [
        trial for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if SLOT in trial.system_attrs
    ]
    if not complete:
        return
    directory.mkdir(parents=True, exist_ok=True)
    from optuna.importance import PedAnovaImportanceEvaluator

    figures: dict[str, Any] = {"optimization_history": optuna_plots.plot_optimization_history}
    if len(complete) >= 2:
        # PED-ANOVA: Optuna's quick evaluator (fANOVA's forests take seconds for a handful of trials).
        figures["param_importances"] = lambda study: optuna_plots.plot_param_importances(
            study, evaluator=PedAnovaImportanceEvaluator()
        )
    for name, draw in figures.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Optuna marks its matplotlib figures experimental
            try:
                axes = draw(study)
            except Exception as error:  # importances need parameters that vary: not worth failing a search
                warnings.warn(f"The search's {name} plot could not be drawn: {error!r}.", stacklevel=2)
                continue
            figure = axes.figure if hasattr(axes, "figure") else axes.flat[0].figure
            buffer = io.BytesIO()
            figure.savefig(buffer, format="png", bbox_inches="tight")
            plt.close(figure)
        atomic_write(directory / f"{name}.png", buffer.getvalue())
