"""tinydl's ``Stage``: the part of a run a report comes from (training, validation or test)."""

from __future__ import annotations

from enum import Enum

__all__ = ["Stage"]


class Stage(Enum):
    """Where a metric value was measured; its ``name`` ends the TensorBoard tag (``'CE_TRAIN'``).

    >>> Stage.VALIDATION.name
    'VALIDATION'
    """

    TRAIN = 1
    VALIDATION = 2
    TEST = 3
    UNDEFINED = 4
