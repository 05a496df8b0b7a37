"""The reference: a hand-written PyTorch loop, written the way tutorials write it."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch

from benchmarks.common import Task

VERSION = torch.__version__


def _tensor_batches(task: Task) -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
    """Slices of a fresh per-epoch ``randperm``."""
    perm = torch.randperm(len(task.x))
    for start in range(0, len(task.x), task.batch_size):
        idx = perm[start : start + task.batch_size]
        yield task.x[idx], task.y[idx]


def _fit(task: Task) -> Callable[[], Any]:
    net = task.network.to(task.device)
    optimizer = task.optimizer()
    loss_fn = task.loss_function()
    loader = task.loader() if task.scenario.data != "tensors" else None  # A3: the DataLoader a user writes

    def run() -> tuple[float, float]:
        net.train()
        epoch_loss = epoch_acc = 0.0
        for _ in range(task.epochs):
            total_loss, correct, seen = 0.0, 0, 0
            for xb, yb in loader if loader is not None else _tensor_batches(task):
                xb, yb = xb.to(task.device), yb.to(task.device)
                optimizer.zero_grad()
                out = net(xb)
                loss = loss_fn(out, yb)
                loss.backward()
                optimizer.step()
                total_loss += loss.item() * len(yb)
                correct += (out.argmax(1) == yb).sum().item()
                seen += len(yb)
            epoch_loss, epoch_acc = total_loss / seen, correct / seen
        return epoch_loss, epoch_acc

    return run


def _fit_bert(task: Task) -> Callable[[], Any]:
    """The Hugging Face course's loop: dict batches from a DataLoader, ``model(**batch).loss``."""
    net = task.network.to(task.device)
    optimizer = task.optimizer()
    loader = task.hf_loader()

    def run() -> tuple[float, float]:
        net.train()
        epoch_loss = epoch_acc = 0.0
        for _ in range(task.epochs):
            total_loss, correct, seen = 0.0, 0, 0
            for batch in loader:
                batch = {key: value.to(task.device) for key, value in batch.items()}
                outputs = net(**batch)
                loss = outputs.loss
                loss.backward()
                optimizer.step()
                optimizer.zero_grad()
                labels = batch["labels"]
                total_loss += loss.item() * len(labels)
                correct += (outputs.logits.argmax(1) == labels).sum().item()
                seen += len(labels)
            epoch_loss, epoch_acc = total_loss / seen, correct / seen
        return epoch_loss, epoch_acc

    return run


def _evaluate(task: Task) -> Callable[[], Any]:
    net = task.network.to(task.device)
    loss_fn = task.loss_function()

    def run() -> tuple[float, float]:
        net.eval()
        total_loss, correct = 0.0, 0
        with torch.no_grad():
            for start in range(0, len(task.x), task.batch_size):
                xb = task.x[start : start + task.batch_size].to(task.device)
                yb = task.y[start : start + task.batch_size].to(task.device)
                out = net(xb)
                total_loss += loss_fn(out, yb).item() * len(yb)
                correct += (out.argmax(1) == yb).sum().item()
        return total_loss / len(task.x), correct / len(task.x)

    return run


def _predict(task: Task) -> Callable[[], Any]:
    net = task.network.to(task.device)

    def run() -> np.ndarray:
        net.eval()
        outputs = []
        with torch.no_grad():
            for start in range(0, len(task.x), task.batch_size):
                outputs.append(net(task.x[start : start + task.batch_size].to(task.device)))
        return torch.cat(outputs).cpu().numpy()

    return run


def prepare(task: Task) -> Callable[[], Any]:
    """The timed call for ``task``."""
    if task.scenario.model == "bert":
        return _fit_bert(task)
    return {"fit": _fit, "evaluate": _evaluate, "predict": _predict}[task.scenario.kind](task)
