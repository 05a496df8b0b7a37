"""Optimizers: a name or spec dict -> an optimizer over a network, and several named optimizers as one.

``Model(network, 'adam', ...)`` and ``Model(network, {'optim': 'sgd', 'lr': 0.1}, ...)`` go through
:func:`resolve_optimizer`. ``Model(network, {'generator': ..., 'discriminator': ...}, ...)`` gives an
:class:`OptimizerGroup`: it answers the calls the rest of trainwell makes on ``model.optimizer`` (state for
checkpoints, learning rates for the logs, ``step``/``zero_grad`` for the default training step), and a
custom step reaches each optimizer by name.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch import nn

from trainwell.utils.names import describe, unknown_name_error

__all__ = [
    "OPTIMIZER_NAMES",
    "OptimizerGroup",
    "OptimizerSpec",
    "is_optimizer_mapping",
    "resolve_optimizer",
    "resolve_optimizers",
]

OptimizerSpec = torch.optim.Optimizer | str | Mapping[str, Any] | None


_OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    "adadelta": torch.optim.Adadelta,
    "adagrad": torch.optim.Adagrad,
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "sparseadam": torch.optim.SparseAdam,
    "adamax": torch.optim.Adamax,
    "asgd": torch.optim.ASGD,
    "lbfgs": torch.optim.LBFGS,
    "nadam": torch.optim.NAdam,
    "radam": torch.optim.RAdam,
    "rmsprop": torch.optim.RMSprop,
    "rprop": torch.optim.Rprop,
    "sgd": torch.optim.SGD,
}
OPTIMIZER_NAMES: tuple[str, ...] = tuple(_OPTIMIZERS)

# torch's SGD has no default learning rate; Poutyne users expect 'sgd' alone to work with lr=0.01.
_OPTIMIZER_DEFAULTS: dict[str, dict[str, Any]] = {"sgd": {"lr": 0.01}}


def resolve_optimizer(spec: OptimizerSpec, network: nn.Module) -> torch.optim.Optimizer | None:
    """Turns the ``optimizer`` argument of ``Model`` into an optimizer over ``network``'s parameters.

    Args:
        spec: ``None`` (no training), an optimizer already built over ``network``'s parameters, a name
            from :data:`OPTIMIZER_NAMES` (case-insensitive), or ``{'optim': name, **kwargs}`` where the
            keyword arguments go to the optimizer's constructor.
        network: the module whose trainable (``requires_grad=True``) parameters are optimized.

    Returns:
        The optimizer, or ``None`` when ``spec`` is ``None``.

    Raises:
        TypeError: ``spec`` or ``network`` has an unsupported type.
        ValueError: unknown name, unknown keyword argument, no trainable parameters, or an optimizer
            holding parameters that are not ``network``'s.

    >>> optimizer = resolve_optimizer({'optim': 'Adam', 'lr': 0.1}, nn.Linear(2, 1))
    >>> type(optimizer).__name__, optimizer.param_groups[0]['lr']
    ('Adam', 0.1)
    >>> resolve_optimizer('sgd', nn.Linear(2, 1)).param_groups[0]['lr']
    0.01
    """
    if not isinstance(network, nn.Module):
        raise TypeError(f"`network` must be a torch.nn.Module. Received: network={describe(network)}.")
    if spec is None:
        return None
    if isinstance(spec, torch.optim.Optimizer):
        _check_owns_parameters(spec, network)
        return spec
    if isinstance(spec, str):
        return _build_optimizer(spec, {}, network, spec)
    if isinstance(spec, Mapping):
        kwargs = dict(spec)
        if "optim" not in kwargs:
            raise ValueError(
                "`optimizer` given as a dict must name the optimizer under the 'optim' key. "
                f"Received: optimizer={spec!r}. Example: optimizer={{'optim': 'adam', 'lr': 0.001}}."
            )
        name = kwargs.pop("optim")
        if not isinstance(name, str):
            raise TypeError(
                f"`optimizer['optim']` must be an optimizer name (str). Received: optimizer['optim']="
                f"{describe(name)}. Valid names: {', '.join(map(repr, OPTIMIZER_NAMES))}."
            )
        return _build_optimizer(name, kwargs, network, spec)
    raise TypeError(
        "`optimizer` must be a torch.optim.Optimizer, an optimizer name such as 'adam', a dict such as "
        f"{{'optim': 'adam', 'lr': 0.001}}, or None. Received: optimizer={describe(spec)}."
    )


def _build_optimizer(name: str, kwargs: dict[str, Any], network: nn.Module, spec: object) -> torch.optim.Optimizer:
    key = name.lower()
    if key not in _OPTIMIZERS:
        raise unknown_name_error("optimizer", "optimizer", name, OPTIMIZER_NAMES)
    optimizer_class = _OPTIMIZERS[key]
    _check_keyword_arguments(optimizer_class, key, kwargs)
    params = [param for param in network.parameters() if param.requires_grad]
    if not params:
        raise ValueError(
            f"`network` has no trainable parameters (requires_grad=True), so there is nothing for "
            f"optimizer {key!r} to optimize. Received: optimizer={spec!r}. Unfreeze some parameters, "
            "or pass optimizer=None to only evaluate and predict."
        )
    kwargs = {**_OPTIMIZER_DEFAULTS.get(key, {}), **kwargs}
    try:
        return optimizer_class(params, **kwargs)
    except (TypeError, ValueError) as error:
        # torch's own messages ("Invalid learning rate: -1") do not say which argument of ours was wrong.
        raise type(error)(
            f"Could not build optimizer {key!r} from `optimizer`: {error}. Received: optimizer={spec!r}."
        ) from error


def _check_keyword_arguments(
    optimizer_class: type[torch.optim.Optimizer], name: str, kwargs: Mapping[str, Any]
) -> None:
    parameters = inspect.signature(optimizer_class).parameters
    if any(param.kind is inspect.Parameter.VAR_KEYWORD for param in parameters.values()):
        return
    accepted = sorted(param for param in parameters if param != "params")
    for key in kwargs:
        if key in accepted:
            continue
        close = difflib.get_close_matches(str(key), accepted, n=1, cutoff=0.5)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(
            f"`optimizer` has an argument {key!r} that optimizer {name!r} ({optimizer_class.__name__}) "
            f"does not accept.{hint} Accepted arguments: {', '.join(map(repr, accepted))}."
        )


def _check_owns_parameters(optimizer: torch.optim.Optimizer, network: nn.Module) -> None:
    # An optimizer built over another network's parameters trains silently nothing: catch it up front.
    owned = {id(param) for param in network.parameters()}
    foreign = sum(1 for group in optimizer.param_groups for param in group["params"] if id(param) not in owned)
    if foreign:
        raise ValueError(
            f"`optimizer` holds {foreign} parameter(s) that do not belong to `network`, so training would "
            f"not update the network. Received: optimizer={type(optimizer).__name__} over "
            "another module's parameters. Build the optimizer from this network's parameters: "
            "optim.SGD(network.parameters(), ...)."
        )


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


def learning_rates(optimizer: torch.optim.Optimizer | OptimizerGroup | None, prefix: str = "lr") -> dict[str, float]:
    """The current learning rate as epoch logs: ``lr``, or ``lr_group_0``, ``lr_group_1``... per param group.

    Named optimizers log ``lr_<name>`` (``lr_<name>_group_<i>`` with several groups).

    >>> learning_rates(torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.5))
    {'lr': 0.5}
    """
    if optimizer is None:
        return {}
    if isinstance(optimizer, OptimizerGroup):
        return {
            key: value for name, part in optimizer.items() for key, value in learning_rates(part, f"lr_{name}").items()
        }
    groups = optimizer.param_groups
    # float(): a tensor learning rate (capturable optimizers) becomes a plain number, once per epoch.
    if len(groups) == 1:
        return {prefix: float(groups[0]["lr"])}
    return {f"{prefix}_group_{index}": float(group["lr"]) for index, group in enumerate(groups)}
