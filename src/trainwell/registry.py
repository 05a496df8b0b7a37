"""Names -> optimizers, losses and metrics, with "did you mean" errors.

Only torch and the standard library are imported here: the registry is consulted while a ``Model`` is
being built, so it must stay cheap to import.
"""

from __future__ import annotations

import difflib
import inspect
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from torch import nn

__all__ = [
    "LOSS_ALIASES",
    "LOSS_NAMES",
    "OPTIMIZER_NAMES",
    "LossSpec",
    "OptimizerSpec",
    "loss_name",
    "resolve_loss",
    "resolve_optimizer",
    "unknown_name_error",
]

OptimizerSpec = torch.optim.Optimizer | str | Mapping[str, Any] | None
LossSpec = str | Callable[..., torch.Tensor]


def unknown_name_error(kind: str, argument: str, received: str, valid: Iterable[str]) -> ValueError:
    """Builds the error raised for an unknown name, listing the closest valid names.

    >>> print(unknown_name_error('optimizer', 'optimizer', 'adm', ['adam', 'sgd']))  # doctest: +ELLIPSIS
    Unknown optimizer name for `optimizer`. Received: optimizer='adm'. Did you mean 'adam'? ...
    """
    valid = sorted(set(valid))
    close = difflib.get_close_matches(received.lower(), valid, n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(repr(name) for name in close)}?" if close else ""
    listing = ", ".join(repr(name) for name in valid)
    return ValueError(
        f"Unknown {kind} name for `{argument}`. Received: {argument}={received!r}.{hint} Valid names: {listing}."
    )


def _describe(value: object) -> str:
    return f"{value!r} (type {type(value).__name__})"


# ---------------------------------------------------------------------------------------------------------
# Optimizers
# ---------------------------------------------------------------------------------------------------------

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
        raise TypeError(f"`network` must be a torch.nn.Module. Received: network={_describe(network)}.")
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
                f"{_describe(name)}. Valid names: {', '.join(map(repr, OPTIMIZER_NAMES))}."
            )
        return _build_optimizer(name, kwargs, network, spec)
    raise TypeError(
        "`optimizer` must be a torch.optim.Optimizer, an optimizer name such as 'adam', a dict such as "
        f"{{'optim': 'adam', 'lr': 0.001}}, or None. Received: optimizer={_describe(spec)}."
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


# ---------------------------------------------------------------------------------------------------------
# Losses
# ---------------------------------------------------------------------------------------------------------

# Canonical names are the log keys used when a loss is given as a metric (Poutyne's keys: 'bce', not
# 'binary_cross_entropy'). Every loss here takes exactly (y_pred, y_true).
_LOSSES: dict[str, type[nn.Module]] = {
    "cross_entropy": nn.CrossEntropyLoss,
    "kl_div": nn.KLDivLoss,
    "bce": nn.BCELoss,
    "bce_with_logits": nn.BCEWithLogitsLoss,
    "poisson_nll": nn.PoissonNLLLoss,
    "hinge_embedding": nn.HingeEmbeddingLoss,
    "l1": nn.L1Loss,
    "mse": nn.MSELoss,
    "multilabel_margin": nn.MultiLabelMarginLoss,
    "multilabel_soft_margin": nn.MultiLabelSoftMarginLoss,
    "multi_margin": nn.MultiMarginLoss,
    "nll": nn.NLLLoss,
    "smooth_l1": nn.SmoothL1Loss,
    "soft_margin": nn.SoftMarginLoss,
    "huber": nn.HuberLoss,
}
LOSS_NAMES: tuple[str, ...] = tuple(_LOSSES)
LOSS_ALIASES: dict[str, str] = {
    "binary_cross_entropy": "bce",
    "binary_cross_entropy_with_logits": "bce_with_logits",
}


def _normalize(name: str) -> str:
    # CamelCase, case and underscores all vanish once lowercased without underscores, so
    # 'CrossEntropyLoss', 'cross_entropy' and 'CROSS_ENTROPY_LOSS' share one key.
    key = name.lower().replace("_", "")
    return key.removesuffix("loss") if key != "loss" else key


_LOSS_KEYS: dict[str, str] = {
    _normalize(name): canonical for name, canonical in [*((name, name) for name in LOSS_NAMES), *LOSS_ALIASES.items()]
}


def _canonical_loss(name: str, argument: str) -> str:
    canonical = _LOSS_KEYS.get(_normalize(name))
    if canonical is None:
        raise unknown_name_error("loss", argument, name, [*LOSS_NAMES, *LOSS_ALIASES])
    return canonical


def resolve_loss(spec: LossSpec, argument: str = "loss_function") -> Callable[..., torch.Tensor]:
    """Turns a loss name or callable into a loss callable ``loss(y_pred, y_true)``.

    Args:
        spec: a callable (a function or an ``nn.Module``, returned as is) or a loss name. Names are
            case-insensitive; underscores, CamelCase and a trailing ``loss`` are ignored, so
            ``'CrossEntropyLoss'``, ``'cross_entropy'`` and ``'crossentropy'`` are the same loss.
        argument: the name of the user's argument, used in error messages (``'batch_metrics'`` when a
            loss is used as a metric).

    Returns:
        ``spec`` itself when callable, else a new instance of the matching ``torch.nn`` loss module.

    Raises:
        TypeError: ``spec`` is neither a string nor callable.
        ValueError: ``spec`` is an unknown name.

    >>> resolve_loss('CrossEntropyLoss')
    CrossEntropyLoss()
    >>> resolve_loss('bce_with_logits')
    BCEWithLogitsLoss()
    """
    if isinstance(spec, str):
        return _LOSSES[_canonical_loss(spec, argument)]()
    if callable(spec):
        return spec
    raise TypeError(
        f"`{argument}` must be a loss name such as 'cross_entropy' or a callable loss(y_pred, y_true). "
        f"Received: {argument}={_describe(spec)}."
    )


def loss_name(spec: LossSpec, argument: str = "loss_function") -> str:
    """Returns the log key of a loss: its canonical name, e.g. ``'cross_entropy'`` or ``'mse'``.

    Args:
        spec: a loss name, a ``torch.nn`` loss module or function (``nn.MSELoss()``,
            ``F.cross_entropy``), or any other callable, named after its ``__name__`` (functions) or its
            class name in snake case (objects).
        argument: the name of the user's argument, used in error messages.

    Raises:
        TypeError: ``spec`` is neither a string nor callable.
        ValueError: ``spec`` is an unknown name.

    >>> loss_name('CrossEntropyLoss'), loss_name('binary_cross_entropy'), loss_name(nn.MSELoss())
    ('cross_entropy', 'bce', 'mse')
    """
    if isinstance(spec, str):
        return _canonical_loss(spec, argument)
    if not callable(spec):
        raise TypeError(
            f"`{argument}` must be a loss name such as 'cross_entropy' or a callable loss(y_pred, y_true). "
            f"Received: {argument}={_describe(spec)}."
        )
    # Functions keep their own name; objects are named after their class ('MyLoss' -> 'my_loss').
    raw = getattr(spec, "__name__", None)
    if raw is None:
        raw = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", type(spec).__name__).lower()
    # torch's own losses (nn.MSELoss(), F.mse_loss) get the same key as their name would.
    return _LOSS_KEYS.get(_normalize(raw), raw)
