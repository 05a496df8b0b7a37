"""Scenario E's per-step cost outside the model: each framework run with a BERT stand-in that computes almost nothing.

``python -m benchmarks.e_overhead [--rounds 3]``

The stand-in has ``BertForSequenceClassification``'s interface (keyword inputs, a ``SequenceClassifierOutput``
with ``loss`` and ``logits``) but one embedding lookup for a body, so what is left of a step is the
framework's own work plus the data (``datasets`` fetch and collation): CPU milliseconds per step, one
thread, frameworks interleaved in one process (minimum over rounds). Scenario E's real step is this
plus the model's forward, backward and AdamW step, identical for all three.
"""

from __future__ import annotations

import argparse
import importlib
import time

import torch
from torch import nn

from benchmarks import common
from benchmarks.frameworks import FRAMEWORKS
from benchmarks.worker import limit_threads

MEASURED = ("handwritten", "trainwell", "hf-trainer")


class NullBert(nn.Module):
    """``BertForSequenceClassification``'s interface with almost no compute."""

    def __init__(self) -> None:
        super().__init__()
        self.embedding = nn.Embedding(common.BERT_VOCAB, common.BERT_CLASSES)

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, labels: torch.Tensor | None = None
    ) -> object:
        from transformers.modeling_outputs import SequenceClassifierOutput

        logits = self.embedding(input_ids[:, 0])
        loss = None if labels is None else nn.functional.cross_entropy(logits, labels)
        return SequenceClassifierOutput(loss=loss, logits=logits)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    limit_threads()
    scenario = common.scenarios()["E"]
    seconds: dict[str, list[float]] = {name: [] for name in MEASURED}
    for _ in range(args.rounds):
        for name in MEASURED:
            adapter = importlib.import_module(FRAMEWORKS[name].module)
            task = common.make_task(scenario)
            task.network = NullBert()
            call = adapter.prepare(task)
            start = time.process_time()
            call()
            seconds[name].append(time.process_time() - start)
    for name, values in seconds.items():
        per_step = 1000 * min(values) / scenario.steps
        print(
            f"{FRAMEWORKS[name].label:<18} {per_step:5.2f} CPU ms per step outside the model ({scenario.steps} steps)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
