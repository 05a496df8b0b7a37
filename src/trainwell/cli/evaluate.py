"""``trainwell test DIR`` and ``trainwell predict DIR``: a run directory's checkpoint on one of its data splits.

Both rebuild the Experiment from the directory's ``config.yaml`` (the resolved config ``fit`` saved), load
the checkpoint asked for (``best``, ``last`` or an epoch number), and run it on a split of the config's
data (``test`` by default). ``test`` writes ``{name}_log.tsv`` in the directory; ``predict`` writes the
predictions as a safetensors file (any safetensors reader opens it; nothing is pickled).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trainwell import distributed
from trainwell.cli.components import SPLITS, Split
from trainwell.cli.config import parse_fit, run_config_path
from trainwell.cli.errors import ConfigError
from trainwell.cli.fit import build_experiment, print_results, test_split
from trainwell.storage.files import save_tensors

__all__ = ["checkpoint_argument", "flatten_predictions", "run_predict", "run_test"]


def checkpoint_argument(text: str) -> int | str:
    """``--checkpoint``: ``'best'``, ``'last'``, an epoch number, or a checkpoint's path.

    >>> checkpoint_argument('3'), checkpoint_argument('best')
    (3, 'best')
    """
    return int(text) if text.isdigit() else text


def _parser(name: str, text: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"trainwell {name}", description=text, allow_abbrev=False)
    parser.add_argument("directory", help="a run directory written by `trainwell fit`")
    parser.add_argument(
        "--checkpoint",
        type=checkpoint_argument,
        default="best",
        help="'best' (by the monitored metric), 'last', or an epoch number (default: best)",
    )
    parser.add_argument("--split", choices=SPLITS, default="test", help="the data split to use (default: test)")
    return parser


def _parse(parser: argparse.ArgumentParser, argv: Sequence[str]) -> argparse.Namespace:
    parser.exit_on_error = False
    try:
        return parser.parse_args(list(argv))
    except argparse.ArgumentError as error:
        raise ConfigError(f"{parser.prog}: {error}") from error


def _rebuild(directory: str, split_name: str) -> tuple[Any, Split, Any]:
    path = run_config_path(directory)
    if not path.is_file():
        raise ConfigError(
            f"`DIR` must be a run directory written by `trainwell fit`. Received: {directory!r}, which has no "
            f"{path.name}" + ("" if Path(directory).is_dir() else " (it is not a directory)") + "."
        )
    # The directory given wins over the one saved: a run directory may have been moved.
    config, _ = parse_fit(["--config", str(path), "--directory", str(directory), "--verbose", "false"])
    experiment, splits, objects = build_experiment(config)
    if split_name not in splits:
        raise ConfigError(
            f"`--split` names a split the data does not have. Received: --split {split_name}; the data gives "
            f"{sorted(splits)}."
        )
    return experiment, splits[split_name], objects


def run_test(argv: Sequence[str]) -> int:
    """``trainwell test DIR [--checkpoint best|last|N] [--split test] [--name NAME]``."""
    parser = _parser("test", "Evaluate a run's checkpoint on a split of its data; writes <name>_log.tsv.")
    parser.add_argument("--name", default=None, help="the log's prefix (default: the split's name)")
    arguments = _parse(parser, argv)
    experiment, split, objects = _rebuild(arguments.directory, arguments.split)
    name = arguments.name or arguments.split
    logs = _run_test(experiment, split, objects, arguments.checkpoint, name)
    print_results(logs)
    if distributed.is_main_process():
        print(f"Written: {Path(arguments.directory) / f'{name}_log.tsv'}")
    return 0


def _run_test(experiment: Any, split: Split, objects: Any, checkpoint: Any, name: str) -> dict[str, Any]:
    try:
        experiment.load_checkpoint(checkpoint)  # a missing checkpoint is the argument's fault: exit 2
    except (ValueError, TypeError) as error:
        raise ConfigError(f"`--checkpoint`: {error}") from error
    return dict(test_split(experiment, split, objects, checkpoint, name))


def flatten_predictions(predictions: Any, prefix: str = "predictions") -> dict[str, torch.Tensor]:
    """Predictions (arrays, nested in tuples, lists and dicts) as flat ``name -> tensor`` entries.

    >>> sorted(flatten_predictions({'a': np.zeros(2), 'b': [np.ones(1), np.ones(3)]}))
    ['predictions.a', 'predictions.b.0', 'predictions.b.1']
    """
    if isinstance(predictions, dict):
        return {
            key: value
            for name, item in predictions.items()
            for key, value in flatten_predictions(item, f"{prefix}.{name}").items()
        }
    if isinstance(predictions, (tuple, list)):
        return {
            key: value
            for index, item in enumerate(predictions)
            for key, value in flatten_predictions(item, f"{prefix}.{index}").items()
        }
    return {prefix: torch.as_tensor(np.asarray(predictions))}


def run_predict(argv: Sequence[str]) -> int:
    """``trainwell predict DIR [--checkpoint best|last|N] [--split test] [--output FILE]``."""
    parser = _parser("predict", "Predict with a run's checkpoint on a split of its data; writes a safetensors file.")
    parser.add_argument(
        "--output", default=None, help="the predictions' file (default: DIR/predictions_<split>.safetensors)"
    )
    arguments = _parse(parser, argv)
    experiment, split, objects = _rebuild(arguments.directory, arguments.split)
    try:
        experiment.load_checkpoint(arguments.checkpoint)
    except (ValueError, TypeError) as error:
        raise ConfigError(f"`--checkpoint`: {error}") from error
    options = {"checkpoint": arguments.checkpoint, "verbose": False}
    if split.form == "data":
        predictions = experiment.infer_data(split.arguments[0], batch_size=objects["batch_size"], **options)
    elif split.form == "dataset":
        predictions = experiment.infer_dataset(
            split.value, batch_size=objects["batch_size"], has_ground_truth=True, **options
        )
    else:
        predictions = experiment.infer(split.value, has_ground_truth=True, **options)
    output = Path(arguments.output or Path(arguments.directory) / f"predictions_{arguments.split}.safetensors")
    if distributed.is_main_process():
        tensors = flatten_predictions(predictions)
        save_tensors(output, tensors)
        shapes = ", ".join(f"{name} {tuple(tensor.shape)}" for name, tensor in tensors.items())
        print(f"Predictions written to {output}: {shapes}")
    return 0
