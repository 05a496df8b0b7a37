"""Several optimizers behind one object: what a GAN or a two-part network trains with.

``Model(network, {'generator': ..., 'discriminator': ...}, ...)`` gives a :class:`OptimizerGroup`. It
answers the calls the rest of trainwell makes on ``model.optimizer`` (state for checkpoints, learning
rates for the logs, ``step``/``zero_grad`` for the default training step), and a custom step reaches each
optimizer by name.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch import nn

__all__ = ["OptimizerGroup", "is_optimizer_mapping", "resolve_optimizers"]


class OptimizerGroup(Mapping[str, torch.optim.Optimizer]):
    """Named optimizers stepped, cleared, saved and restored together.

    Args:
        optimizers: the optimizers by name (at least one).

    >>> first, second = nn.Linear(2, 1), nn.Linear(2, 1)
    >>> group = OptimizerGroup({'a': torch.optim.SGD(first.parameters(), lr=0.1),
    ...                         'b': torch.optim.Adam(second.parameters(), lr=0.01)})
    >>> sorted(group), [g['lr'] for g in group.param_groups]
    (['a', 'b'], [0.1, 0.01])
    """

    def __init__(self, optimizers: Mapping[str, torch.optim.Optimizer]) -> None:
        if not optimizers:
            raise ValueError("`optimizer` given as a dict of optimizers must hold at least one optimizer.")
        self.optimizers = dict(optimizers)

    def __getitem__(self, name: str) -> torch.optim.Optimizer:
        return self.optimizers[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.optimizers)

    def __len__(self) -> int:
        return len(self.optimizers)

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        """Every optimizer's parameter groups, in name order of insertion."""
        return [group for optimizer in self.optimizers.values() for group in optimizer.param_groups]

    @property
    def state(self) -> dict[Any, Any]:
        """Every optimizer's per-parameter state (parameters are distinct, so the union is exact)."""
        merged: dict[Any, Any] = {}
        for optimizer in self.optimizers.values():
            merged.update(optimizer.state)
        return merged

    def step(self) -> None:
        """Steps every optimizer (what the default training step calls)."""
        for optimizer in self.optimizers.values():
            optimizer.step()

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clears every optimizer's gradients."""
        for optimizer in self.optimizers.values():
            optimizer.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict[str, Any]:
        """``{name: optimizer.state_dict()}``."""
        return {name: optimizer.state_dict() for name, optimizer in self.optimizers.items()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restores :meth:`state_dict`; the names must be the same."""
        if set(state) != set(self.optimizers):
            raise ValueError(
                f"The saved optimizer state holds optimizers {sorted(state)}, but this model has "
                f"{sorted(self.optimizers)}. Load a state saved by a model with the same optimizer names."
            )
        for name, optimizer in self.optimizers.items():
            optimizer.load_state_dict(state[name])

    def __repr__(self) -> str:
        inner = ", ".join(f"{name}={type(optimizer).__name__}" for name, optimizer in self.optimizers.items())
        return f"OptimizerGroup({inner})"


def is_optimizer_mapping(spec: Any) -> bool:
    """Whether an ``optimizer`` argument is a dict of named optimizers (not ``{'optim': 'adam', ...}``).

    >>> is_optimizer_mapping({'optim': 'adam', 'lr': 0.1}), is_optimizer_mapping({'gen': 'adam'})
    (False, True)
    """
    return isinstance(spec, Mapping) and bool(spec) and "optim" not in spec


def resolve_optimizers(spec: Mapping[str, Any], network: nn.Module) -> OptimizerGroup:
    """Builds the named optimizers of a ``{name: optimizer or name or spec dict}`` argument.

    An optimizer given by name or spec dict is built over the parameters of the sub-network of the same
    name (``network[name]`` for an ``nn.ModuleDict``, else ``network.<name>``).

    >>> net = nn.ModuleDict({'gen': nn.Linear(2, 2), 'disc': nn.Linear(2, 1)})
    >>> resolve_optimizers({'gen': 'adam', 'disc': {'optim': 'sgd', 'lr': 0.5}}, net)
    OptimizerGroup(gen=Adam, disc=SGD)
    """
    from trainwell.registry import resolve_optimizer

    built: dict[str, torch.optim.Optimizer] = {}
    for name, item in spec.items():
        if not isinstance(name, str):
            raise TypeError(f"The names of a dict of optimizers must be strings. Received the key {name!r}.")
        if isinstance(item, torch.optim.Optimizer):
            resolve_optimizer(item, network)  # checks that it optimizes this network's parameters
            built[name] = item
            continue
        part = _sub_network(network, name)
        optimizer = resolve_optimizer(item, part)
        if optimizer is None:
            raise ValueError(f"`optimizer[{name!r}]` is None; leave it out of the dict instead.")
        built[name] = optimizer
    _check_disjoint(built)
    return OptimizerGroup(built)


def _sub_network(network: nn.Module, name: str) -> nn.Module:
    if isinstance(network, nn.ModuleDict) and name in network:
        return network[name]
    part = getattr(network, name, None)
    if isinstance(part, nn.Module):
        return part
    children = [child for child, _ in network.named_children()]
    raise ValueError(
        f"`optimizer[{name!r}]` is given by name, so it is built over the sub-network {name!r}, but the network "
        f"has no such sub-module (its children: {children}). Name the optimizers after the network's "
        "sub-modules (an nn.ModuleDict works well), or pass optimizer instances."
    )


def _check_disjoint(optimizers: Mapping[str, torch.optim.Optimizer]) -> None:
    owners: dict[int, str] = {}
    for name, optimizer in optimizers.items():
        for group in optimizer.param_groups:
            for parameter in group["params"]:
                other = owners.setdefault(id(parameter), name)
                if other != name:
                    raise ValueError(
                        f"The optimizers {other!r} and {name!r} both hold the same parameter; each parameter "
                        "must belong to one optimizer (give each optimizer its own sub-network)."
                    )
