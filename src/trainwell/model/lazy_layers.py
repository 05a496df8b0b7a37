"""Lazy layers in a ``Model``: the optimizer named by the user is built once the layers have their shapes.

``Model(network_with_LazyLinear, 'adam', ...)`` cannot build Adam over parameters that have no shape
yet (Adagrad allocates state eagerly; others would silently hold placeholders). So a named optimizer
(``'adam'``, ``{'optim': 'adam', 'lr': 1e-3}``, or a dict of them per sub-network) waits as a
:class:`PendingOptimizer` until the network is materialized: by ``fit``'s dry run on its first batch
(eval mode, no gradients, every generator restored), by ``model.materialize(sample_x)``, by
:func:`trainwell.summary`, or by loading weights (torch gives lazy parameters the saved shapes).
An optimizer *instance* built over lazy parameters is refused with a message saying what to do.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn
from torch.nn.parameter import UninitializedParameter

from trainwell.engine.dry_run import first_inputs, has_uninitialized_parameters, materialize
from trainwell.optimizers import is_optimizer_mapping, resolve_optimizer, resolve_optimizers

__all__ = ["PendingOptimizer", "defer_optimizer", "ensure_optimizer", "materialize_model", "prepare_fit"]


class PendingOptimizer:
    """An optimizer given by name, built when the network's lazy layers have their shapes.

    Args:
        spec: what ``Model`` received as ``optimizer``: a name, a ``{'optim': ...}`` dict, or a dict of
            those per sub-network.
    """

    def __init__(self, spec: Any) -> None:
        self.spec = spec

    def build(self, network: nn.Module) -> Any:
        """The optimizer (or :class:`~trainwell.optimizers.OptimizerGroup`) over the materialized network."""
        if is_optimizer_mapping(self.spec):
            return resolve_optimizers(self.spec, network)
        return resolve_optimizer(self.spec, network)

    def describe(self) -> dict[str, Any]:
        """What an Experiment's configuration records before the optimizer exists (``groups`` unknown yet).

        >>> PendingOptimizer({'optim': 'adamw', 'lr': 0.1}).describe()
        {'class': 'AdamW', 'groups': None}
        """
        if is_optimizer_mapping(self.spec):
            return {"class": "OptimizerGroup", "groups": None}
        # The class the name stands for, from a throwaway build over one dummy parameter.
        return {"class": type(resolve_optimizer(self.spec, nn.Linear(1, 1))).__name__, "groups": None}

    def __repr__(self) -> str:
        return f"PendingOptimizer({self.spec!r})"


def _holds_lazy_parameters(optimizer: Any) -> bool:
    groups = getattr(optimizer, "param_groups", [])
    return any(isinstance(parameter, UninitializedParameter) for group in groups for parameter in group["params"])


def defer_optimizer(spec: Any, network: nn.Module) -> PendingOptimizer | None:
    """A :class:`PendingOptimizer` when ``network`` has lazy layers without shapes and ``spec`` names one.

    Raises:
        ValueError: ``spec`` is an optimizer already built over lazy parameters.

    >>> defer_optimizer('adam', nn.LazyLinear(2)), defer_optimizer('adam', nn.Linear(2, 2))
    (PendingOptimizer('adam'), None)
    """
    if spec is None or not has_uninitialized_parameters(network):
        return None
    instances = list(spec.values()) if isinstance(spec, Mapping) and is_optimizer_mapping(spec) else [spec]
    if any(isinstance(item, torch.optim.Optimizer) and _holds_lazy_parameters(item) for item in instances):
        raise ValueError(
            "`optimizer` was built over lazy parameters (nn.LazyLinear, nn.LazyConv2d...) that have no shape yet. "
            "Received: an optimizer instance. Pass it by name instead, e.g. optimizer='adam' or "
            "{'optim': 'adam', 'lr': 1e-3}: the Model builds it after the first batch has given the layers their "
            "shapes. Or materialize first: trainwell.materialize(network, sample_x), then build it."
        )
    if isinstance(spec, torch.optim.Optimizer):
        return None  # over other, initialized parameters: nothing to wait for
    return PendingOptimizer(spec)


def ensure_optimizer(model: Any) -> bool:
    """Builds the model's pending optimizer if the network now has every shape; returns whether it did."""
    pending = getattr(model, "_pending_optimizer", None)
    if pending is None or has_uninitialized_parameters(model.network):
        return False
    model.optimizer = pending.build(model.network)
    model._steps.optimizer = model.optimizer
    model._pending_optimizer = None
    return True


def require_optimizer(model: Any, action: str) -> None:
    """Builds a pending optimizer, or says how to give the lazy layers their shapes before ``action``."""
    ensure_optimizer(model)
    if getattr(model, "_pending_optimizer", None) is not None:
        raise RuntimeError(
            f"The optimizer is built once the lazy layers have their shapes, so it cannot {action} yet. Call "
            "model.materialize(sample_x) (or fit, or load the weights) first."
        )


def materialize_model(model: Any, sample_input: Any) -> None:
    """Gives the model's lazy layers their shapes from ``sample_input`` and builds the pending optimizer."""
    materialize(model.network, sample_input)
    ensure_optimizer(model)


def prepare_fit(model: Any, train: Any) -> None:
    """Before ``fit``: materializes lazy layers on the first training batch, then builds the optimizer.

    The batch is read ahead from a re-iterable source with every random generator restored, so the
    epoch draws the same shuffle as without the peek; a one-shot generator is refused (see
    :func:`trainwell.engine.dry_run.first_inputs`).
    """
    if has_uninitialized_parameters(model.network):
        materialize(model.network, first_inputs(train))
    ensure_optimizer(model)
