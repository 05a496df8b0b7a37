"""Shared pieces of the dialect tests: scikit-learn's digits as loaders, a clean working directory, one thread."""

from __future__ import annotations

import functools
import itertools

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    # The READMEs' code writes where it runs (runs/, models/): here, a fresh directory. Small networks train
    # faster on one thread, and a loaded 2-core machine makes several threads far slower still.
    monkeypatch.chdir(tmp_path)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@functools.cache
def _digits() -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    return torch.tensor(digits.data, dtype=torch.float32) / 16, torch.tensor(digits.target)


def digits_sets(train: int = 600, valid: int = 200, test: int = 200) -> tuple[TensorDataset, ...]:
    """Disjoint train, validation and test sets of the digits (8x8 images flattened to 64 features)."""
    x, y = _digits()
    bounds = [0, train, train + valid, train + valid + test]
    return tuple(TensorDataset(x[a:b], y[a:b]) for a, b in itertools.pairwise(bounds))


def digits_loaders(batch_size: int = 64, **sizes: int) -> tuple[DataLoader, DataLoader, DataLoader]:
    train, valid, test = digits_sets(**sizes)
    return (
        DataLoader(train, batch_size=batch_size, shuffle=True),
        DataLoader(valid, batch_size=batch_size),
        DataLoader(test, batch_size=batch_size),
    )


def mlp() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))


def accuracy_of(model: torch.nn.Module, dataset: TensorDataset) -> float:
    x, y = dataset.tensors
    model.eval()
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())
