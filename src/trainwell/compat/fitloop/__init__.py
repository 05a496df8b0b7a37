"""fitloop's API on trainwell: ``FitLoop(**fdict)``, stage functions over ``LoopState``, ``M``, checks.

A fitloop script runs with ``from fitloop import FitLoop`` changed to
``from trainwell.compat.fitloop import FitLoop``. The training is trainwell's loop; docs/dialects.md says
what changes and why.
"""

from __future__ import annotations

from trainwell.compat.fitloop.defaults import FitLoopDefaults
from trainwell.compat.fitloop.loop import FitLoop
from trainwell.compat.fitloop.metrics import FitLoopMetrics, PhaseMetrics
from trainwell.compat.fitloop.state import LoopState

__all__ = ["FitLoop", "FitLoopDefaults", "FitLoopMetrics", "LoopState", "PhaseMetrics"]
