"""Loss names -> ``torch.nn`` losses, and the log key of any loss (Poutyne's names: ``'bce'``, ``'mse'``...).

Only torch and the standard library are imported here: losses are resolved while a ``Model`` is being
built, and metrics resolve loss names through this module too.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F

from trainwell.utils.names import describe, unknown_name_error

__all__ = ["LOSS_ALIASES", "LOSS_NAMES", "LossSpec", "loss_name", "resolve_loss"]

LossSpec = str | Callable[..., torch.Tensor]


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
_FUNCTIONS: dict[type[nn.Module], Callable[..., torch.Tensor]] = {
    nn.CrossEntropyLoss: F.cross_entropy,
    nn.KLDivLoss: F.kl_div,
    nn.BCELoss: F.binary_cross_entropy,
    nn.BCEWithLogitsLoss: F.binary_cross_entropy_with_logits,
    nn.PoissonNLLLoss: F.poisson_nll_loss,
    nn.HingeEmbeddingLoss: F.hinge_embedding_loss,
    nn.L1Loss: F.l1_loss,
    nn.MSELoss: F.mse_loss,
    nn.MultiLabelMarginLoss: F.multilabel_margin_loss,
    nn.MultiLabelSoftMarginLoss: F.multilabel_soft_margin_loss,
    nn.MultiMarginLoss: F.multi_margin_loss,
    nn.NLLLoss: F.nll_loss,
    nn.SmoothL1Loss: F.smooth_l1_loss,
    nn.SoftMarginLoss: F.soft_margin_loss,
    nn.HuberLoss: F.huber_loss,
}
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
        loss = _LOSSES[_canonical_loss(spec, argument)]()
        # Poutyne's string losses expose the torch function they compute as `func`; scripts compare it.
        vars(loss)["func"] = _FUNCTIONS[type(loss)]  # a plain attribute (nn.Module types its own as tensors)
        return loss
    if callable(spec):
        return spec
    raise TypeError(
        f"`{argument}` must be a loss name such as 'cross_entropy' or a callable loss(y_pred, y_true). "
        f"Received: {argument}={describe(spec)}."
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
            f"Received: {argument}={describe(spec)}."
        )
    # Functions keep their own name; objects are named after their class ('MyLoss' -> 'my_loss').
    raw = getattr(spec, "__name__", None)
    if raw is None:
        raw = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", type(spec).__name__).lower()
    # torch's own losses (nn.MSELoss(), F.mse_loss) get the same key as their name would.
    return _LOSS_KEYS.get(_normalize(raw), raw)
