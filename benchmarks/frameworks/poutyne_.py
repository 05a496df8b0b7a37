"""Poutyne (``bench`` extra)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import poutyne
from poutyne import Model

from benchmarks.common import Task
from benchmarks.frameworks._poutyne_api import prepare_with

VERSION = poutyne.__version__


def prepare(task: Task) -> Callable[[], Any]:
    """The timed call for ``task``."""
    return prepare_with(Model, task)
