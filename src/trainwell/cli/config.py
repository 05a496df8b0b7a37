"""The config language of ``trainwell fit``: one jsonargparse parser, its keys, and the resolved config.

A config is a YAML file whose keys are those of :data:`FIT_KEYS`; any key can also be given on the command
line (``--epochs 20``, ``--optimizer.lr 3e-4``, ``--network.init_args.hidden 64``), the command line
winning. ``network`` and ``data`` are *components*: a ``class_path`` (any importable class or function) and
its ``init_args``. Their arguments are read from the signature of what the class path names, so a
misspelt argument is refused before anything runs; that is why the parser is built in two passes (first
the class paths are found in the config files and the command line, then their signatures are added).
"""

from __future__ import annotations

import argparse
import importlib
import inspect
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from jsonargparse import ActionConfigFile, ArgumentParser, Namespace
from torch import nn

from trainwell.callbacks.base import Callback
from trainwell.cli.errors import ConfigError, describe_parse_error, import_error_hint

__all__ = ["COMPONENTS", "FIT_KEYS", "FitConfig", "import_object", "parse_fit", "run_config_path"]

COMPONENTS = ("network", "data")
RUN_CONFIG = "config.yaml"  # the resolved config, saved in the run directory

# key: (type, default, help). The names are Experiment's and train_data's arguments, so that an error
# the library raises about `optimizer` or `batch_metrics` names the key of the config too.
FIT_KEYS: dict[str, tuple[Any, Any, str]] = {
    "directory": (str, None, "the run directory: created, or resumed when it holds a run"),
    "task": (str | None, None, "'classif' (cross-entropy, accuracy, F1, monitors val_acc) or 'reg' (MSE)"),
    "optimizer": (str | dict[str, Any], "sgd", "a name ('adam') or Poutyne's dict {optim: adam, lr: 0.001}"),
    # nn.Module first: jsonargparse tries the types in order, and any string would pass as a str.
    "loss_function": (nn.Module | str | None, None, "a loss name or a class_path (default: the task's)"),
    "batch_metrics": (list[nn.Module | str] | None, None, "metric names or class_paths (default: the task's)"),
    "epoch_metrics": (list[nn.Module | str] | None, None, "epoch metric names or class_paths"),
    "monitor_metric": (str | None, None, "the epoch log deciding the best epoch (default: the task's)"),
    "monitor_mode": (str | None, None, "'min' or 'max' (default: from the metric)"),
    "precision": (str, "32", "'32', 'bf16' or '16' (mixed precision)"),
    "strategy": (str | None, None, "under torchrun: 'ddp' (the default) or 'fsdp' (FSDP2: parameters sharded)"),
    "device": (str | None, None, "'cpu', 'cuda', 'cuda:1'... (default: where the network is, the CPU)"),
    "callbacks": (list[Callback], [], "callbacks as class_paths with init_args; their states are checkpointed"),
    # Checked by the schedulers themselves when built: their wrappers take the torch scheduler's arguments
    # through **kwargs, which a signature cannot show (trainwell.callbacks.lr_scheduler).
    "lr_schedulers": (list[dict[str, Any]], [], "learning-rate scheduler callbacks as class_paths with init_args"),
    "epochs": (int, 10, "the TOTAL number of epochs: a finished run continues up to it"),
    "batch_size": (int, 32, "per process (under torchrun the global batch is this times the processes)"),
    "seed": (int | None, 42, "seeds every generator before the network and the data are built"),
    "checkpoint_every_n_steps": (int | None, None, "also checkpoint every n optimizer steps"),
    "save_every_epoch": (bool, False, "keep every epoch's checkpoint"),
    "keep_only_last_best": (bool, False, "keep only the newest best checkpoint"),
    "disable_tensorboard": (bool, False, "do not write tensorboard/"),
    "verbose": (bool, True, "show the progress display"),
}
# What may change between two calls on one run directory without changing the run itself.
# The strategy too: a checkpoint holds whole tensors, so a run resumes under DDP or FSDP, on any number of
# processes (docs/distributed.md).
RESUMABLE_CHANGES = ("epochs", "verbose", "strategy")


class FitConfig:
    """A parsed ``fit`` config: the resolved values and the parser that can dump them back to YAML.

    Attributes:
        values: the resolved config as plain Python values (what ``config.yaml`` holds).
        namespace: jsonargparse's namespace, before the class paths are instantiated.
    """

    def __init__(self, parser: ArgumentParser, namespace: Namespace) -> None:
        self.parser = parser
        self.namespace = namespace

    @property
    def values(self) -> dict[str, Any]:
        """The resolved config as a dict (what ``to_yaml`` writes)."""
        return dict(yaml.safe_load(self.to_yaml()))

    def to_yaml(self) -> str:
        """The resolved config, every default filled in, as YAML that ``--config`` reads back."""
        namespace = self.namespace.clone()
        for key in ("config", "print_config"):
            if key in namespace:
                del namespace[key]
        return str(self.parser.dump(namespace, skip_unset=False))

    def instantiate(self) -> Namespace:
        """The config with every class path but the components built (loss, metrics, callbacks)."""
        try:
            return self.parser.instantiate(self.namespace)
        except Exception as error:  # a class's own constructor refused its init_args
            raise ConfigError(f"Building the config's objects failed: {type(error).__name__}: {error}") from error


def run_config_path(directory: str | Path) -> Path:
    """Where a run directory keeps its resolved config."""
    return Path(directory) / RUN_CONFIG


def import_object(path: str, key: str) -> Any:
    """The class or function ``path`` names (``package.module.Name``); a ConfigError naming ``key`` if none.

    >>> import_object('torch.nn.Linear', 'network').__name__
    'Linear'
    """
    module_name, _, name = path.rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError, ValueError) as error:
        hint = import_error_hint(path)
        raise ConfigError(
            f"`{key}.class_path` cannot be imported. Received: {key}.class_path={path!r}: {hint}"
            + ("" if hint.endswith((".", "?")) else ".")
        ) from error


def _config_files(argv: Sequence[str]) -> list[str]:
    files = []
    for index, word in enumerate(argv):
        if word == "--config" and index + 1 < len(argv):
            files.append(argv[index + 1])
        elif word.startswith("--config="):
            files.append(word.split("=", 1)[1])
    return files


def _component_paths(argv: Sequence[str]) -> dict[str, str]:
    """The class paths of the components, from the config files then the command line (the last one wins)."""
    paths: dict[str, str] = {}
    for file in _config_files(argv):
        try:
            content = yaml.safe_load(Path(file).read_text())
        except OSError as error:
            raise ConfigError(f"`--config` cannot be read. Received: --config {file}: {error.strerror}.") from error
        except yaml.YAMLError as error:
            raise ConfigError(f"`--config` is not valid YAML. Received: --config {file}: {error}") from error
        if not isinstance(content, dict):
            raise ConfigError(
                f"`--config` must hold a mapping of keys (directory: ..., network: ...). Received: --config {file} "
                f"holding a {type(content).__name__}."
            )
        for key in COMPONENTS:
            spec = content.get(key)
            if isinstance(spec, dict) and isinstance(spec.get("class_path"), str):
                paths[key] = spec["class_path"]
            elif spec is not None and not isinstance(spec, dict):
                raise ConfigError(
                    f"`{key}` must be a mapping with `class_path` (and `init_args`). Received: {key}={spec!r} "
                    f"in {file}; write `{key}: {{class_path: {spec}}}`."
                )
    for index, word in enumerate(argv):
        for key in COMPONENTS:
            if word == f"--{key}.class_path" and index + 1 < len(argv):
                paths[key] = argv[index + 1]
            elif word.startswith(f"--{key}.class_path="):
                paths[key] = word.split("=", 1)[1]
    return paths


def _add_component(parser: ArgumentParser, key: str, path: str | None) -> None:
    parser.add_argument(f"--{key}.class_path", type=str, required=True, help=f"the {key}'s class or function")
    if path is None:
        return
    target = import_object(path, key)
    if not callable(target):
        raise ConfigError(
            f"`{key}.class_path` must name a class or a function. Received: {key}.class_path={path!r}, "
            f"a {type(target).__name__}."
        )
    nested = f"{key}.init_args"
    # Untyped parameters are accepted as any value: a user's function need not be annotated.
    if inspect.isclass(target):
        parser.add_class_arguments(target, nested, fail_untyped=False, instantiate=False, sub_configs=True)
    else:
        parser.add_function_arguments(target, nested, fail_untyped=False, sub_configs=True)


def build_fit_parser(argv: Sequence[str]) -> ArgumentParser:
    """The ``fit`` parser, with the arguments of the components the config files and ``argv`` name."""
    parser = ArgumentParser(
        prog="trainwell fit",
        description="Train an Experiment described by a config file (keys below; any key can be overridden).",
        exit_on_error=False,
        allow_abbrev=False,  # `--epoch 3` is a typo to report, not an abbreviation of --epochs
    )
    parser.add_argument("--config", action=ActionConfigFile, help="a YAML config file (several: later ones win)")
    kind, _, text = FIT_KEYS["directory"]
    parser.add_argument("--directory", type=kind, required=True, help=text)
    paths = _component_paths(argv)
    for key in COMPONENTS:
        _add_component(parser, key, paths.get(key))
    for key, (kind, default, text) in FIT_KEYS.items():
        if key != "directory":
            parser.add_argument(f"--{key}", type=kind, default=default, help=text)
    return parser


def valid_keys(parser: ArgumentParser) -> list[str]:
    """Every key the parser knows, dotted (``network.init_args.hidden``), groups' own entries included."""
    keys = []
    for action in parser._actions:  # argparse's list; jsonargparse keeps one action per dotted key
        dest = getattr(action, "dest", "")
        if dest and dest not in ("help", "config", "print_config", "print_shtab") and not dest.startswith("=="):
            keys.append(dest)
    return keys


def parse_fit(argv: Sequence[str]) -> tuple[FitConfig, bool]:
    """Parses ``trainwell fit``'s arguments; returns the config and whether ``--print_config`` was given.

    Raises:
        ConfigError: a bad key or value, naming the key (exit status 2).
    """
    parser = build_fit_parser(argv)
    try:
        namespace = parser.parse_args(list(argv))
    except argparse.ArgumentError as error:
        raise ConfigError(describe_parse_error(str(error), valid_keys(parser))) from error
    _check_values(namespace)
    for key in ("loss_function", "batch_metrics", "epoch_metrics"):
        value = namespace.get(key)
        for item in value if isinstance(value, list) else [value]:
            _recheck_class_string(key, item)
    return FitConfig(parser, namespace), bool(namespace.get("print_config"))


def _recheck_class_string(key: str, value: Any) -> None:
    """A ``{class_path: ...}`` given on the command line that failed as a class passed as a name: say why it failed."""
    if not isinstance(value, str) or "class_path" not in value:
        return
    try:
        loaded = yaml.safe_load(value)
    except yaml.YAMLError as error:
        raise ConfigError(f"`{key}` is not valid YAML. Received: {key}={value!r}: {error}") from error
    probe = ArgumentParser(exit_on_error=False)
    probe.add_argument(f"--{key}", type=nn.Module)
    try:
        probe.parse_object({key: loaded})
    except argparse.ArgumentError as error:
        raise ConfigError(describe_parse_error(str(error), [key])) from error


def _check_values(namespace: Namespace) -> None:
    """What jsonargparse's types cannot say: positive counts, a real directory."""
    for key in ("epochs", "batch_size", "checkpoint_every_n_steps"):
        value = namespace.get(key)
        if value is not None and value < 1:
            raise ConfigError(f"`{key}` must be a positive int. Received: {key}={value}.")
    directory = Path(namespace["directory"])
    if directory.exists() and not directory.is_dir():
        raise ConfigError(
            f"`directory` must be a directory. Received: directory={str(directory)!r}, which is a file; "
            "pass a new or existing run directory."
        )
