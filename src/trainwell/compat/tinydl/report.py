"""tinydl's ``Report``: one metric value, with its name and the stage it was measured in."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from trainwell.compat.tinydl.stage import Stage

__all__ = ["Report"]


@dataclass
class Report:
    """A value a reporter is about to write.

    Attributes:
        metric_name: the metric's ``name`` (``'CE'``).
        metric_value: its value, a 0-d tensor (``float(report.metric_value)`` and ``.item()`` both work).
        stage: where it was measured.

    >>> import torch
    >>> Report('CE', torch.tensor(0.25), Stage.TRAIN).stage.name
    'TRAIN'
    """

    metric_name: str
    metric_value: Any
    stage: Stage
