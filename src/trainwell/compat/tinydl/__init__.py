"""tinydl's API on trainwell: ``Trainer``/``Validator``/``Runner``, ``Metric``, reporters, ``Hyperparameter``.

A tinydl script runs with its imports changed from ``tinydl.<module>`` to
``trainwell.compat.tinydl.<module>`` (``runner``, ``metric``, ``reporter``, ``hyperparameter``, ``stage``,
``report``, and the README's ``Hyperparameter``). The training is trainwell's loop; docs/dialects.md says
what changes and why.
"""

from __future__ import annotations

import sys

from trainwell.compat.tinydl import hyperparameter as _hyperparameter_module
from trainwell.compat.tinydl.hyperparameter import Hyperparameter
from trainwell.compat.tinydl.metric import BinaryCrossentropy, CrossEntropy, Metric, RocAuc
from trainwell.compat.tinydl.report import Report
from trainwell.compat.tinydl.reporter import (
    ConsoleReporter,
    Reporter,
    TensorboardHparamReporter,
    TensorboardScalarReporter,
)
from trainwell.compat.tinydl.runner import Runner, Trainer, Validator
from trainwell.compat.tinydl.stage import Stage

__all__ = [
    "BinaryCrossentropy",
    "ConsoleReporter",
    "CrossEntropy",
    "Hyperparameter",
    "Metric",
    "Report",
    "Reporter",
    "RocAuc",
    "Runner",
    "Stage",
    "TensorboardHparamReporter",
    "TensorboardScalarReporter",
    "Trainer",
    "Validator",
]

# tinydl's README imports `from tinydl.Hyperparameter import Hyperparameter`, its code `tinydl.hyperparameter`.
# One file serves both names: two files differing only in case would clash on case-insensitive file systems.
sys.modules.setdefault(f"{__name__}.Hyperparameter", _hyperparameter_module)
