"""``trainwell search --config search.yaml``: a hyperparameter search in ``fit``'s config language.

``search.yaml`` is a ``fit`` config (network, data, optimizer, epochs... and ``directory``, here the search
directory) plus a ``search:`` section holding :class:`~trainwell.search.search.Search`'s arguments. Its
``space`` is keyed by the config's own dotted keys::

    search:
      objective: val_acc
      sampler: grid                  # grid, random, tpe
      n_trials: 4
      space:
        optimizer.lr: {low: 1.0e-4, high: 1.0e-2, log: true}
        batch_size: [32, 64]

Each trial is the fit config with the trial's values put in (as ``--optimizer.lr 0.001`` would), trained
in ``<directory>/trials/trial_NNNN`` with its resolved ``config.yaml`` beside it, so ``trainwell show``
and ``trainwell test`` work on a trial as on any run. Every trial builds its own callbacks and schedulers
from its config. ``--search.n_trials 8`` (any ``--search.KEY VALUE``) overrides the section; the other
options are ``fit``'s. Running the same command again resumes the search (the Search's guarantee).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from trainwell.cli.config import parse_fit, run_config_path
from trainwell.cli.errors import ConfigError
from trainwell.cli.fit import build_experiment, train_options
from trainwell.experiment.experiment import Experiment
from trainwell.utils.files import atomic_write

__all__ = ["run_search"]

_SEARCH = "--search."


class _TrialExperiment(Experiment):
    """An Experiment whose ``train*`` calls add the trial's own callbacks and schedulers (built from its config).

    The Search passes one set of keyword arguments to every trial; objects with a state (an EarlyStopping,
    a scheduler) must not be shared between trials, so each trial brings its own.
    """

    trial_callbacks: tuple[Any, ...] = ()
    trial_lr_schedulers: tuple[Any, ...] = ()

    def _train(self, fit: Callable[..., Any], data: tuple[Any, ...], kwargs: dict[str, Any]) -> list[dict[str, Any]]:
        callbacks = [*self.trial_callbacks, *(kwargs.pop("callbacks", None) or [])]
        kwargs = {**kwargs, "callbacks": callbacks, "lr_schedulers": list(self.trial_lr_schedulers)}
        return super()._train(fit, data, kwargs)


def _split_arguments(argv: Sequence[str], scratch: Path) -> tuple[list[str], dict[str, Any]]:
    """``fit``'s arguments (config files without their ``search:`` section) and the search section."""
    fit_argv: list[str] = []
    section: dict[str, Any] = {}
    words = list(argv)
    index = 0
    while index < len(words):
        word = words[index]
        value = words[index + 1] if index + 1 < len(words) else None
        if word == "--config" or word.startswith("--config="):
            path = word.split("=", 1)[1] if "=" in word else value
            if path is None:
                raise ConfigError("`--config` needs a file: trainwell search --config search.yaml")
            fit_argv += ["--config", _without_search(Path(path), scratch, section)]
            index += 1 if "=" in word else 2
        elif word.startswith(_SEARCH):
            key, _, inline = word[len(_SEARCH) :].partition("=")
            text = inline if "=" in word else value
            if text is None:
                raise ConfigError(f"`{word}` needs a value: {word} VALUE")
            section[key] = yaml.safe_load(text)
            index += 1 if "=" in word else 2
        else:
            fit_argv.append(word)
            index += 1
    if not section:
        raise ConfigError("The config has no `search:` section: give the search's space, objective and n_trials there.")
    return fit_argv, section


def _without_search(path: Path, scratch: Path, section: dict[str, Any]) -> str:
    """A copy of the config file without its ``search:`` section (merged into ``section``)."""
    try:
        content = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as error:
        raise ConfigError(f"`--config` cannot be read. Received: --config {path}: {error}") from error
    if not isinstance(content, dict):
        raise ConfigError(f"`--config` must hold a mapping of keys. Received: {path} holds a {type(content).__name__}.")
    found = content.pop("search", None) or {}
    if not isinstance(found, dict):
        raise ConfigError(f"`search` must be a mapping of the Search's arguments. Received: search={found!r}.")
    section.update(found)
    copy = scratch / f"{len(list(scratch.iterdir()))}_{path.name}"
    copy.write_text(yaml.safe_dump(content))
    return str(copy)


def _trial_builder(fit_argv: list[str]) -> Callable[[dict[str, Any], Path], Experiment]:
    def build(params: dict[str, Any], directory: Path) -> Experiment:
        overrides = [word for key, value in params.items() for word in (f"--{key}", json.dumps(value))]
        config, _ = parse_fit([*fit_argv, *overrides, "--directory", str(directory)])
        experiment, _, objects = build_experiment(config, experiment_class=_TrialExperiment, with_data=False)
        assert isinstance(experiment, _TrialExperiment)
        experiment.trial_callbacks = tuple(objects["callbacks"])
        experiment.trial_lr_schedulers = tuple(objects["lr_schedulers"])
        Path(directory).mkdir(parents=True, exist_ok=True)
        atomic_write(run_config_path(directory), config.to_yaml().encode())
        return experiment

    return build


def _check_space(space: Any, fit_argv: list[str]) -> None:
    """Refuses a space that is no mapping, or whose keys or first values the fit config does not take.

    One parse of the config with each key's first value (a range's ``low``) checks every key and value
    type before any trial starts; the error names the key, as ``fit``'s do.
    """
    if not isinstance(space, dict) or not space:
        raise ConfigError(f"`search.space` must map config keys to values to try. Received: search.space={space!r}.")
    first = []
    for key, entry in space.items():
        value = entry.get("low") if isinstance(entry, dict) else entry
        value = value[0] if isinstance(value, list) and value else value
        first += [f"--{key}", json.dumps(value)]
    try:
        parse_fit([*fit_argv, *first])
    except ConfigError as error:
        raise ConfigError(f"`search.space` does not fit the config: {error}") from error


def run_search(argv: Sequence[str]) -> int:
    """``trainwell search --config search.yaml [--search.KEY VALUE] [fit's --key value ...]``; the exit status."""
    from trainwell.cli.components import load_splits
    from trainwell.search.config import search_from_config

    with tempfile.TemporaryDirectory() as scratch:
        fit_argv, section = _split_arguments(argv, Path(scratch))
        base, _ = parse_fit(fit_argv)
        _check_space(section.get("space"), fit_argv)
        options = {"directory": base.values["directory"], **section, "build": _trial_builder(fit_argv)}
        try:
            search = search_from_config(options)
        except (TypeError, ValueError) as error:
            raise ConfigError(f"In the `search` section: {error}") from error
        objects = base.instantiate()
        splits = load_splits(objects["data"])
        train, valid = splits["train"], splits.get("valid")
        # Callbacks and schedulers come from each trial's config (above); the search prints a line per trial.
        kwargs = {**train_options(objects, train.form), "callbacks": [], "lr_schedulers": [], "verbose": False}
        if train.form == "data":
            x, y = train.arguments
            table = search.train_data(x, y, valid.value if valid else None, **kwargs)
        else:
            method = "train_dataset" if train.form == "dataset" else "train"
            table = getattr(search, method)(train.value, valid.value if valid else None, **kwargs)
    print(table.to_string(index=False))
    print(f"Best parameters: {search.best_params} (search directory: {options['directory']})")
    return 0
