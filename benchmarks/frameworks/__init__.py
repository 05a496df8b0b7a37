"""Framework adapters, one module each.

An adapter module imports its framework at the top (an ``ImportError`` marks the framework unavailable),
defines ``VERSION`` and ``prepare(task) -> call``: everything but the timed call happens in ``prepare``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Framework:
    """A measured framework: its adapter module and the import whose cost is reported."""

    key: str
    label: str
    module: str
    import_statement: str


FRAMEWORKS: dict[str, Framework] = {
    f.key: f
    for f in (
        Framework("handwritten", "hand-written loop", "benchmarks.frameworks.handwritten", "import torch"),
        Framework("trainwell", "trainwell", "benchmarks.frameworks.trainwell_", "from trainwell import Model"),
        Framework("poutyne", "Poutyne", "benchmarks.frameworks.poutyne_", "from poutyne import Model"),
        Framework("lightning", "Lightning", "benchmarks.frameworks.lightning_", "import lightning"),
        Framework(
            "ignite",
            "pytorch-ignite",
            "benchmarks.frameworks.ignite_",
            "import ignite.engine, ignite.metrics",
        ),
        Framework("keras", "Keras 3 (torch)", "benchmarks.frameworks.keras_", "import keras"),
        # Measured in scenario E only (common.SCENARIO_ONLY): it trains transformers models.
        Framework("hf-trainer", "HF Trainer", "benchmarks.frameworks.hf_trainer", "from transformers import Trainer"),
    )
}
REFERENCE = "handwritten"
