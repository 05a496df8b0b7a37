"""trainwell, through its Poutyne-compatible ``Model``."""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from benchmarks.common import Task
from benchmarks.frameworks._poutyne_api import prepare_with
from trainwell import Model  # an ImportError marks trainwell unavailable (Model not written yet)

try:
    VERSION = version("trainwell")
except PackageNotFoundError:  # running from a source checkout
    VERSION = "source"


def prepare(task: Task) -> Callable[[], Any]:
    """The timed call for ``task``."""
    return prepare_with(Model, task)
