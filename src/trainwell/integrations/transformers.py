"""Hugging Face ``transformers`` models in trainwell: dict batches -> ``(x, y)``, keyword calls, exports.

A transformers model takes its inputs as keyword arguments and returns a dict of outputs, while
trainwell (like Poutyne) feeds ``network(x)`` and compares ``y_pred`` with ``y``. Three small pieces
bridge the two, as in the poutyne-transformers side library:

* :class:`TransformerCollator` turns a list of dict samples (a ``datasets.Dataset`` with
  ``set_format('torch')``, tokenizer outputs) into ``(inputs, targets)``;
* :class:`ModelWrapper` calls the model with ``**inputs`` and keeps ``save_pretrained``;
* :class:`MetricWrapper` hands a metric ``outputs['logits']``.

Beyond those: :class:`ModelLoss` (the model's own ``loss`` output), :class:`TokenAveragedLoss` (exact
gradient accumulation of token means) and :func:`export_pretrained` (an Experiment checkpoint as a
``from_pretrained`` directory). This module imports ``transformers`` only when a collator needs its
default collation; see ``docs/transformers.md``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from trainwell.integrations.transformers_losses import ModelLoss, TokenAveragedLoss
from trainwell.integrations.transformers_metrics import EpochMetricWrapper, MetricWrapper

__all__ = [
    "EpochMetricWrapper",
    "MetricWrapper",
    "ModelLoss",
    "ModelWrapper",
    "TokenAveragedLoss",
    "TransformerCollator",
    "export_pretrained",
    "is_transformers_model",
]


def is_transformers_model(obj: Any) -> bool:
    """Whether ``obj`` is a transformers ``PreTrainedModel`` (False when transformers was never imported).

    >>> is_transformers_model(nn.Linear(2, 2))
    False
    """
    library = sys.modules.get("transformers")
    if library is None or not isinstance(obj, nn.Module):
        return False
    return isinstance(obj, library.PreTrainedModel)


class ModelWrapper(nn.Module):
    """A transformers model as a trainwell network: ``forward(inputs)`` calls ``transformer(**inputs)``.

    Args:
        transformer: the model (any ``nn.Module`` taking keyword inputs, usually a ``PreTrainedModel``).

    The wrapper's parameters are the model's, so optimizers, checkpoints and callbacks see them all;
    ``save_pretrained`` writes the model itself, loadable by ``from_pretrained``.

    >>> class Doubler(nn.Module):
    ...     def forward(self, input_ids, attention_mask=None):
    ...         return {'logits': input_ids * 2}
    >>> ModelWrapper(Doubler())({'input_ids': torch.tensor([1, 2])})
    {'logits': tensor([2, 4])}
    """

    def __init__(self, transformer: nn.Module) -> None:
        if not isinstance(transformer, nn.Module):
            raise TypeError(
                "`transformer` must be a torch.nn.Module such as a transformers PreTrainedModel. "
                f"Received: transformer of type {type(transformer).__name__}."
            )
        super().__init__()
        self.transformer = transformer

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.transformer!r})"

    def forward(self, inputs: Any, **kwargs: Any) -> Any:
        """``transformer(**inputs)`` for a dict of inputs; any other input is passed as the first argument."""
        if isinstance(inputs, Mapping):
            return self.transformer(**inputs, **kwargs)
        return self.transformer(inputs, **kwargs)

    @property
    def config(self) -> Any:
        """The wrapped model's configuration."""
        return self.transformer.config

    def save_pretrained(self, *args: Any, **kwargs: Any) -> Any:
        """The wrapped model's ``save_pretrained``: a directory ``AutoModel...from_pretrained`` can load."""
        save = getattr(self.transformer, "save_pretrained", None)
        if save is None:
            raise TypeError(
                f"The wrapped {type(self.transformer).__name__} has no save_pretrained: only transformers "
                "models can be saved in their format. Use torch.save(wrapper.state_dict()) or a checkpoint."
            )
        return save(*args, **kwargs)


class TransformerCollator:
    """Collates dict samples into ``(inputs, targets)``: the ``collate_fn`` for transformers data.

    Args:
        y_keys: which fields are the targets. None: placeholder targets (NaN, one per sample) for a
            model that computes its own loss; a name (``'labels'``): that field as a tensor; a list of
            names: a dict of those fields.
        custom_collator: collates the samples into one dict first (default: transformers'
            ``default_data_collator``, which stacks tensors and renames ``label`` to ``labels``; give
            ``DataCollatorWithPadding(tokenizer)`` for samples of different lengths).
        remove_labels: take the targets out of the inputs. With one name, that field is removed; with
            a list, the fields whose name contains ``'labels'``. By default they stay, so that the model
            can compute its own loss while metrics see the targets.

    >>> collate = TransformerCollator(y_keys='labels')
    >>> samples = [{'input_ids': torch.tensor([5, 6]), 'label': 1}, {'input_ids': torch.tensor([7, 8]), 'label': 0}]
    >>> inputs, targets = collate(samples)
    >>> sorted(inputs), targets
    (['input_ids', 'labels'], tensor([1, 0]))
    """

    def __init__(
        self,
        y_keys: str | Sequence[str] | None = None,
        custom_collator: Callable[[list[Any]], Any] | None = None,
        remove_labels: bool = False,
    ) -> None:
        if y_keys is not None and not isinstance(y_keys, str):
            if not isinstance(y_keys, Sequence) or not y_keys or not all(isinstance(key, str) for key in y_keys):
                raise TypeError(
                    "`y_keys` must be None, a field name such as 'labels', or a non-empty list of names. "
                    f"Received: y_keys={y_keys!r}."
                )
            y_keys = list(y_keys)
        if custom_collator is not None and not callable(custom_collator):
            raise TypeError(
                "`custom_collator` must be a function list_of_samples -> dict, or None. "
                f"Received: custom_collator of type {type(custom_collator).__name__}."
            )
        if not isinstance(remove_labels, bool):
            raise TypeError(f"`remove_labels` must be True or False. Received: remove_labels={remove_labels!r}.")
        self.y_keys = y_keys
        self.custom_collator = custom_collator if custom_collator is not None else _default_collator()
        self.remove_labels = remove_labels

    def __call__(self, samples: Sequence[Any]) -> tuple[dict[str, Any], Any]:
        """Collates ``samples`` and splits the batch into ``(inputs, targets)``."""
        batch = self.custom_collator(list(samples))
        if not isinstance(batch, Mapping):
            raise TypeError(
                f"The collator must return a dict of inputs; {_name(self.custom_collator)} returned a "
                f"{type(batch).__name__}."
            )
        batch = dict(batch)
        y_keys = self.y_keys
        if y_keys is None:
            return batch, torch.full((len(samples),), float("nan"))
        names = [y_keys] if isinstance(y_keys, str) else y_keys
        missing = [key for key in names if key not in batch]
        if missing:
            hint = " (transformers' default collator names a 'label' field 'labels')" if "label" in missing else ""
            raise KeyError(
                f"TransformerCollator(y_keys={y_keys!r}): the batch has no {', '.join(map(repr, missing))}; "
                f"its keys are {sorted(batch)}{hint}. Rename the dataset's column or change y_keys."
            )
        if isinstance(y_keys, str):
            return batch, batch.pop(y_keys) if self.remove_labels else batch[y_keys]
        targets = {key: batch[key] for key in y_keys}
        if self.remove_labels:
            for key in y_keys:
                if "labels" in key:
                    batch.pop(key, None)
        return batch, targets

    def __repr__(self) -> str:
        return (
            f"TransformerCollator(y_keys={self.y_keys!r}, custom_collator={_name(self.custom_collator)}, "
            f"remove_labels={self.remove_labels})"
        )


def _name(function: Any) -> str:
    return getattr(function, "__name__", type(function).__name__)


def _default_collator() -> Callable[[list[Any]], Any]:
    try:
        from transformers import default_data_collator
    except ImportError as error:  # pragma: no cover - the extra is installed wherever this is tested
        raise ImportError(
            "TransformerCollator's default collation needs transformers: pip install 'trainwell[transformers]', "
            "or pass custom_collator=."
        ) from error
    return default_data_collator


# -- exporting ---------------------------------------------------------------------------------------------
def export_pretrained(
    experiment: Any,
    save_directory: str | os.PathLike[str],
    checkpoint: int | str = "best",
    *,
    tokenizer: Any = None,
    **kwargs: Any,
) -> Path:
    """Writes an Experiment's checkpoint as a transformers directory, loadable by ``from_pretrained``.

    Args:
        experiment: the :class:`~trainwell.Experiment` whose network is a :class:`ModelWrapper` (or a
            transformers model).
        save_directory: where to write ``config.json`` and the weights.
        checkpoint: ``'best'`` (default), ``'last'`` or an epoch number, as for ``experiment.test``. Its
            weights are loaded into the experiment's network first, as ``test`` does.
        tokenizer: also saved there when given, so that the directory is complete.
        **kwargs: passed to ``save_pretrained`` (``safe_serialization``, ``max_shard_size``...).

    Returns:
        The directory written.
    """
    load = getattr(experiment, "load_checkpoint", None)
    if load is None:
        raise TypeError(
            "`experiment` must be a trainwell Experiment. Received: experiment of type "
            f"{type(experiment).__name__}; call network.save_pretrained(directory) on a plain network."
        )
    network = experiment.model.network
    if getattr(network, "save_pretrained", None) is None:
        raise TypeError(
            f"The experiment's network ({type(network).__name__}) has no save_pretrained: give the Experiment "
            "ModelWrapper(transformers_model)."
        )
    load(checkpoint)
    directory = Path(save_directory)
    network.save_pretrained(directory, **kwargs)
    if tokenizer is not None:
        tokenizer.save_pretrained(directory)
    return directory
