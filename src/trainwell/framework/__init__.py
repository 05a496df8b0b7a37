"""Poutyne's module paths (``poutyne.framework.*``) as aliases of trainwell's own modules.

Code written for Poutyne sometimes names a module rather than a public name: ``from poutyne.framework
import Model``, or a test that patches ``poutyne.framework.mlflow_logger.git``. With ``poutyne``
replaced by ``trainwell`` these keep working: every public name of ``trainwell`` is readable here, and
Poutyne's module names lead to the trainwell modules that hold the same code, so that patching a name
in one patches what trainwell's code reads. Nothing here is loaded before it is asked for.

>>> import trainwell.framework as framework
>>> framework.Model is __import__('trainwell').Model
True
>>> framework.mlflow_logger.__name__
'trainwell.callbacks.mlflow'
"""

from __future__ import annotations

import importlib
from typing import Any

__all__: list[str] = []  # aliases only: the public names are trainwell's

# Poutyne's module (as an attribute of poutyne.framework) -> the trainwell module holding that code.
MODULES = {
    "callbacks": "trainwell.callbacks",
    "color_formatting": "trainwell.callbacks.color_progress",
    "mlflow_logger": "trainwell.callbacks.mlflow",
    "progress": "trainwell.callbacks.progress",
    "progress_bar": "trainwell.callbacks.progress_bar",
    "wandb_logger": "trainwell.callbacks.wandb_logger",
    # poutyne.framework re-exported the torch module itself (patch targets such as 'poutyne.framework.torch.onnx').
    "torch": "torch",
}


def __getattr__(name: str) -> Any:
    if name in MODULES:
        value = importlib.import_module(MODULES[name])
    else:
        package = importlib.import_module("trainwell")
        if name.startswith("__") or name not in package.__all__:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value = getattr(package, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(MODULES) | set(importlib.import_module("trainwell").__all__))
