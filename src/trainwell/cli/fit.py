"""``trainwell fit``: build the Experiment a config describes, save the resolved config, train (or resume).

The resolved config (every default filled in) is written to ``<directory>/config.yaml`` before training,
so ``trainwell fit --config <directory>/config.yaml`` reruns the same experiment, and ``trainwell test``
and ``show`` know what the directory holds. Running ``fit`` again on a directory that holds a run resumes it
exactly (the Experiment's guarantee); only ``epochs`` (and ``verbose``) may change between the calls.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from trainwell import distributed
from trainwell.cli.components import Split, build_lr_schedulers, build_network, load_splits
from trainwell.cli.config import RESUMABLE_CHANGES, FitConfig, parse_fit, run_config_path
from trainwell.cli.errors import ConfigError
from trainwell.experiment.experiment import Experiment
from trainwell.storage.checkpoints import list_checkpoints
from trainwell.utils.files import atomic_write
from trainwell.utils.tensors import set_seeds

__all__ = ["build_experiment", "check_resumable", "run_fit", "train_options"]

# The Experiment's constructor arguments among the config's keys; the rest go to its train* call.
EXPERIMENT_KEYS = (
    "task",
    "optimizer",
    "loss_function",
    "batch_metrics",
    "epoch_metrics",
    "monitor_metric",
    "monitor_mode",
    "precision",
    "strategy",
    "device",
)
TRAIN_KEYS = (
    "epochs",
    "seed",
    "checkpoint_every_n_steps",
    "save_every_epoch",
    "keep_only_last_best",
    "disable_tensorboard",
    "verbose",
    "callbacks",
    "lr_schedulers",
)


def build_experiment(
    config: FitConfig, *, experiment_class: type[Experiment] = Experiment, with_data: bool = True
) -> tuple[Experiment, dict[str, Split], Any]:
    """The Experiment, the data's splits and the instantiated config (callbacks, loss, metrics built).

    The seed is set first: the network's initial weights and the data are random draws made before the
    Experiment exists, and a rerun of the config must draw them again the same way.

    Args:
        config: the parsed config.
        experiment_class: the class to build (``trainwell search`` gives each trial its own callbacks).
        with_data: load the data's splits (else the returned splits are empty).
    """
    objects = config.instantiate()
    if objects["seed"] is not None:
        set_seeds(objects["seed"])
    objects["lr_schedulers"] = build_lr_schedulers(objects["lr_schedulers"])
    network = build_network(objects["network"])
    splits = load_splits(objects["data"]) if with_data else {}
    arguments = {key: objects[key] for key in EXPERIMENT_KEYS}
    try:
        experiment = experiment_class(objects["directory"], network, **arguments)
    except (TypeError, ValueError) as error:  # the library's message names the argument, i.e. the key
        raise ConfigError(str(error)) from error
    return experiment, splits, objects


def train_options(objects: Any, form: str) -> dict[str, Any]:
    """The keyword arguments of the Experiment's ``train*`` call for a split of ``form``."""
    options = {key: objects[key] for key in TRAIN_KEYS}
    options["callbacks"] = list(options["callbacks"])
    options["lr_schedulers"] = list(options["lr_schedulers"])
    if form != "batches":  # a DataLoader brings its own batch size
        options["batch_size"] = objects["batch_size"]
    return options


def check_resumable(directory: Path, values: dict[str, Any]) -> None:
    """Refuses to resume a directory whose saved config differs in anything but :data:`RESUMABLE_CHANGES`.

    Only a directory holding a checkpoint holds a run: a first call that failed before its first checkpoint
    (a config.yaml and nothing else) leaves nothing to resume, and a corrected config may start there.
    """
    path = run_config_path(directory)
    if not path.is_file() or not list_checkpoints(directory / "checkpoints", include_unfinished=True):
        return
    saved = yaml.safe_load(path.read_text()) or {}
    ignored = {*RESUMABLE_CHANGES, "directory"}
    differences = [
        f"{key}: {saved.get(key)!r} there, {values.get(key)!r} here"
        for key in sorted(set(saved) | set(values))
        if key not in ignored and saved.get(key) != values.get(key)
    ]
    if differences:
        raise ConfigError(
            f"The run directory {directory} holds a run of another config ({path}): "
            + "; ".join(differences)
            + ". Resuming it would not be the same run: use another `directory`, or rerun with "
            f"`--config {path}` (only {' and '.join(RESUMABLE_CHANGES)} may change)."
        )


def _train(experiment: Experiment, splits: dict[str, Split], objects: Any) -> None:
    train, valid = splits["train"], splits.get("valid")
    if valid is not None and valid.form != train.form:
        raise ConfigError(
            f"The data's 'valid' split must come in the form of its 'train' split ({train.form}); "
            f"received {valid.form}."
        )
    options = train_options(objects, train.form)
    if train.form == "data":
        x, y = train.arguments
        experiment.train_data(x, y, validation_data=valid.value if valid else None, **options)
    elif train.form == "dataset":
        experiment.train_dataset(train.value, valid.value if valid else None, **options)
    else:
        experiment.train(train.value, valid.value if valid else None, **options)


def test_split(
    experiment: Experiment, split: Split, objects: Any, checkpoint: Any, name: str = "test"
) -> dict[str, Any]:
    """Tests ``checkpoint`` on a split (writes ``{name}_log.tsv``); returns the test logs."""
    options: dict[str, Any] = {"checkpoint": checkpoint, "name": name, "seed": objects["seed"]}
    options["verbose"] = objects["verbose"]
    if split.form == "data":
        return experiment.test_data(*split.arguments, batch_size=objects["batch_size"], **options)
    if split.form == "dataset":
        return experiment.test_dataset(split.value, batch_size=objects["batch_size"], **options)
    return experiment.test(split.value, **options)


def print_results(logs: dict[str, Any]) -> None:
    """One line of test values, as ``key: value`` pairs (rank 0 only)."""
    if distributed.is_main_process():
        shown = ", ".join(
            f"{key}: {value:.6g}" for key, value in logs.items() if key != "time" and isinstance(value, (int, float))
        )
        print(f"Test results: {shown}")


def run_fit(argv: Sequence[str]) -> int:
    """``trainwell fit [--config FILE] [--key value ...]``; returns the exit status."""
    config, print_only = parse_fit(argv)
    if print_only:
        print(config.to_yaml(), end="")
        return 0
    values = config.values
    directory = Path(values["directory"])
    if distributed.is_main_process():
        check_resumable(directory, values)
    experiment, splits, objects = build_experiment(config)
    if distributed.is_main_process():
        directory.mkdir(parents=True, exist_ok=True)
        atomic_write(run_config_path(directory), config.to_yaml().encode())
    _train(experiment, splits, objects)
    if "test" in splits:
        print_results(test_split(experiment, splits["test"], objects, "best"))
    if distributed.is_main_process():
        print(f"Run directory: {directory} (trainwell show {directory})")
    return 0
