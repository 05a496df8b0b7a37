"""What the tests' configs name by class path: a tiny network, tiny data, and a callback that reports steps."""

import os
import time
from typing import Any

import torch
from torch import nn

from trainwell import Callback


def make_network(hidden: int = 16, classes: int = 3) -> nn.Module:
    # Dropout uses the random generators: an exact resume must restore them too.
    return nn.Sequential(nn.Linear(10, hidden), nn.ReLU(), nn.Dropout(0.2), nn.Linear(hidden, classes))


def make_data(samples=240, noise: float = 0.0):  # untyped on purpose: a user's function need not be annotated
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(samples, 10, generator=generator)
    y = (x[:, 0] + x[:, 1] > 0).long() + (x[:, 2] > 0.5).long()
    x = x + noise * torch.randn(x.shape, generator=generator)
    return {"train": (x, y), "valid": (x[:48], y[:48]), "test": (x[48:96], y[48:96])}


def not_a_network(size: int = 3) -> list:
    return [size]


def broken_network() -> nn.Module:
    return nn.Linear(7, 3)  # the data has 10 features: training fails (exit 1)


class ReportSteps(Callback):
    """Prints ``BATCH <epoch> <batch>`` after each batch, then sleeps ``seconds`` (a signal lands mid-step)."""

    def __init__(self, seconds: float = 0.0) -> None:
        self.seconds = seconds

    def on_train_batch_end(self, batch_number: int, logs: Any) -> None:
        print(f"BATCH {self.model.state.epoch} {batch_number}", flush=True)
        time.sleep(self.seconds if os.environ.get("TRAINWELL_TEST_SLOW") else 0.0)


def waiting_data(seconds: float = 300.0):
    """Announces itself, then waits (a SIGTERM lands while the data loads, before any training)."""
    print("LOADING DATA", flush=True)
    time.sleep(seconds)
    return make_data()
