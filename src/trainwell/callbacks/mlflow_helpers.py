"""What ``MLFlowLogger`` needs besides the callback: importing MLflow, URIs, keys and values.

Kept apart so that :mod:`trainwell.callbacks.mlflow` reads as the callback alone.
"""

from __future__ import annotations

import math
import os
import re
import time
from collections.abc import Mapping, Sequence
from numbers import Real
from typing import Any

__all__ = [
    "callable_name",
    "encode_float",
    "flatten_params",
    "import_mlflow",
    "metric_value",
    "now_ms",
    "resolve_tracking_uri",
    "safe_key",
]

# MLflow accepts letters, digits, '_', '-', '.', ' ', '/' and ':' in keys; anything else would be rejected.
_UNSAFE_KEY_CHARACTERS = re.compile(r"[^\w\-. /:]")


def import_mlflow(owner: str) -> Any:
    """The ``mlflow`` module, or an ImportError naming the extra to install."""
    try:
        import mlflow
        import mlflow.entities
        import mlflow.exceptions
        import mlflow.tracking
    except ImportError as error:
        raise ImportError(
            f"{owner} needs MLflow, which is not installed. Install it with `pip install 'trainwell[mlflow]'` "
            "(or `pip install mlflow`)."
        ) from error
    return mlflow


def resolve_tracking_uri(tracking_uri: str | os.PathLike[str] | None) -> str | None:
    """The MLflow URI for ``tracking_uri``: a ``.db`` file path becomes a SQLite URI, None stays None.

    >>> resolve_tracking_uri('http://localhost:5000'), resolve_tracking_uri(None)
    ('http://localhost:5000', None)
    >>> resolve_tracking_uri('/tmp/runs.db')
    'sqlite:////tmp/runs.db'
    """
    if tracking_uri is None:
        return None
    if not isinstance(tracking_uri, (str, os.PathLike)):
        raise TypeError(
            "`tracking_uri` must be a string such as 'sqlite:///mlflow.db' or 'http://host:5000', a path to a "
            f"'.db' file, or None. Received: tracking_uri of type {type(tracking_uri).__name__}."
        )
    uri = os.fspath(tracking_uri)
    if "://" not in uri and uri.endswith((".db", ".sqlite", ".sqlite3")):
        return "sqlite:///" + os.path.abspath(uri)
    return uri


def metric_value(value: Any) -> float | None:
    """``value`` as a float when it is a single number (Python, NumPy or a one-element tensor), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, Real):
        return float(value)
    item, numel = getattr(value, "item", None), getattr(value, "numel", None)
    count = numel() if callable(numel) else getattr(value, "size", None)  # a tensor's numel(), an array's size
    return float(item()) if callable(item) and count == 1 else None


def flatten_params(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings and sequences as dotted keys.

    >>> flatten_params({'optim': {'lr': 0.1, 'betas': [0.9, 0.99]}, 'seed': 1})
    {'optim.lr': 0.1, 'optim.betas.0': 0.9, 'optim.betas.1': 0.99, 'seed': 1}
    """
    flat: dict[str, Any] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten_params(value, f"{name}."))
        elif isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
            flat.update(flatten_params({str(index): item for index, item in enumerate(value)}, f"{name}."))
        else:
            flat[name] = value
    return flat


def safe_key(name: str) -> str:
    """``name`` with the characters MLflow rejects in keys replaced by '_'.

    >>> safe_key('val_acc@top5')
    'val_acc_top5'
    """
    return _UNSAFE_KEY_CHARACTERS.sub("_", str(name))


def callable_name(function: Any) -> str:
    """A function's name, or a callable object's class name (``CrossEntropyLoss``)."""
    return getattr(function, "__name__", None) or type(function).__name__


def now_ms() -> int:
    """The time in milliseconds since the epoch, as MLflow timestamps are."""
    return int(time.time() * 1000)


def encode_float(value: float) -> float | str:
    """``value``, or its repr when not finite: JSON has no NaN or infinities, and float() reads the repr back."""
    return value if math.isfinite(value) else repr(value)
