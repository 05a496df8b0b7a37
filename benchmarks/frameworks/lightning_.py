"""PyTorch Lightning (``bench`` extra): a LightningModule and a quiet single-device Trainer.

Lightning has no in-memory ``fit(x, y)``: scenario A1 goes through a shuffled ``DataLoader`` too.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from typing import Any

import lightning as L
import torch

from benchmarks.common import Task

VERSION = L.__version__

for _name in ("lightning", "lightning.pytorch", "lightning.fabric", "pytorch_lightning"):
    logging.getLogger(_name).setLevel(logging.ERROR)
warnings.filterwarnings("ignore", module="lightning")


class Classifier(L.LightningModule):
    """Cross-entropy and accuracy, both logged every step (no torchmetrics)."""

    def __init__(self, task: Task) -> None:
        super().__init__()
        self.net = task.network
        self.loss_fn = task.loss_function()
        self.lr = task.lr

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def _loss_acc(self, batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = batch
        out = self.net(x)
        return self.loss_fn(out, y), (out.argmax(1) == y).float().mean()

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss, acc = self._loss_acc(batch)
        self.log("loss", loss, on_step=True, on_epoch=True)
        self.log("acc", acc, on_step=True, on_epoch=True)
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        loss, acc = self._loss_acc(batch)
        self.log("val_loss", loss)
        self.log("val_acc", acc)

    def predict_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self.net(batch[0])

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=self.lr)


def prepare(task: Task) -> Callable[[], Any]:
    """The timed call for ``task``."""
    module = Classifier(task)
    trainer = L.Trainer(
        accelerator="gpu" if task.device.type == "cuda" else "cpu",
        devices=1,
        max_epochs=task.epochs,
        enable_progress_bar=False,
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
    )
    kind = task.scenario.kind
    if kind == "fit":
        loader = task.loader()
        return lambda: trainer.fit(module, loader)
    if kind == "evaluate":
        loader = task.loader(shuffle=False)
        return lambda: trainer.validate(module, loader, verbose=False)
    loader = task.loader(shuffle=False, with_targets=False)
    return lambda: torch.cat(trainer.predict(module, loader)).numpy()
