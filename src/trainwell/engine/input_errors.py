"""The error for a first batch the network cannot take: it names the user's data argument and the shapes.

torch's own message ("mat1 and mat2 shapes cannot be multiplied (8x9 and 4x3)") says what failed inside
the network, not which argument of ``fit`` holds the data, nor what that data looks like. The first batch of
each phase runs through :func:`call_checked`: a ``RuntimeError`` there becomes a ``ValueError`` (a
``TypeError`` for a dtype mismatch, and a ``TypeError`` stays one) that names the argument and the batch's
shapes and dtypes and the layer that failed, with the network's error kept as its cause. Later batches are
not wrapped: by then the data's form is known to fit, and an error is the network's own.

A Hugging Face transformers model given a dict batch without ``ModelWrapper`` fails deep inside with
"'dict' object has no attribute 'size'" (trainwell calls ``network(x)``, the model takes keywords): that
first-batch failure becomes a ``TypeError`` saying to wrap it. transformers is never imported here; the
check looks at it only when the user's program already did.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from typing import Any

import torch

__all__ = ["call_checked", "describe_inputs"]

_DTYPE_WORDS = ("dtype", "scalar type", "Expected tensor for argument", "expected m1 and m2 to have the same")


def describe_inputs(x: Any) -> str:
    """The shapes and dtypes of the tensors in ``x``: ``'a tensor of shape (8, 9) and dtype float32'``."""
    tensors: list[torch.Tensor] = []

    def collect(obj: Any) -> None:
        if isinstance(obj, torch.Tensor):
            tensors.append(obj)
        elif isinstance(obj, (tuple, list)):
            for item in obj:
                collect(item)
        elif isinstance(obj, dict):
            for item in obj.values():
                collect(item)

    collect(x)
    parts = [f"shape {tuple(t.shape)} and dtype {str(t.dtype).removeprefix('torch.')}" for t in tensors]
    if not parts:
        return f"an input of type {type(x).__name__}"
    if len(parts) == 1:
        return f"a tensor of {parts[0]}"
    return f"{len(parts)} tensors: " + "; ".join(parts)


def _failing_layer(error: BaseException, network: Any) -> str:
    """Which layer raised: the innermost module's ``forward`` in the traceback, else the first layer."""
    names = {id(module): name for name, module in getattr(network, "named_modules", lambda: [])()}
    failed = None
    trace = error.__traceback__
    while trace is not None:
        owner = trace.tb_frame.f_locals.get("self")
        if isinstance(owner, torch.nn.Module) and id(owner) in names:
            failed = owner
        trace = trace.tb_next
    if failed is not None and failed is not network:
        return f" It failed in layer {names[id(failed)]!r}: {failed}."
    for module in getattr(network, "modules", lambda: [])():
        if not list(module.children()):
            return f" The network's first layer is {module}."
    return ""


def _bare_transformers_model(network: Any, x: Any) -> str | None:
    """The class name of a transformers model called with a dict (what only ``ModelWrapper`` unpacks), else None."""
    library = sys.modules.get("transformers")
    if library is None or not isinstance(x, Mapping):
        return None
    module = getattr(network, "module", network)  # under DistributedDataParallel
    model_class = getattr(library, "PreTrainedModel", None)
    if model_class is not None and isinstance(module, model_class):
        return type(module).__name__
    return None


def call_checked(call: Callable[[Any], Any], network: Any, x: Any, argument: str) -> Any:
    """``call(x)``, with a RuntimeError turned into an error that names ``argument`` and the inputs."""
    try:
        return call(x)
    except torch.OutOfMemoryError:
        raise  # a memory error is not the data's form
    except Exception as error:
        bare = _bare_transformers_model(network, x)
        if bare is not None:
            raise TypeError(
                f"A transformers model ({bare}) was called with the whole batch dict of `{argument}` "
                f"(keys {sorted(map(str, x))}) as its first argument: trainwell calls network(x), and a "
                "transformers model takes its inputs as keyword arguments. Wrap it: "
                "Model(ModelWrapper(model), ...) or Experiment(directory, ModelWrapper(model), ...), with "
                "`from trainwell.integrations.transformers import ModelWrapper`."
            ) from error
        if not isinstance(error, (RuntimeError, TypeError)):
            raise
        message = str(error)
        dtype = any(word in message for word in _DTYPE_WORDS)
        kind = TypeError if isinstance(error, TypeError) or dtype else ValueError
        fix = (
            "Convert the inputs to the dtype the network expects (features are usually float32: "
            "x.float(), or x.astype('float32') for NumPy)."
            if dtype
            else "Check that the inputs are tensors whose shape matches what the network expects."
        )
        raise kind(
            f"The network cannot take the first batch of `{argument}`, {describe_inputs(x)}: {message}. "
            f"{fix}{_failing_layer(error, network)}"
        ) from error
