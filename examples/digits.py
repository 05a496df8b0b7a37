"""Train a small convolutional network on scikit-learn's digits (8x8 images, shipped with the package).

Run: python examples/digits.py        (about 15 seconds on 2 CPU cores)
"""

from __future__ import annotations

import sys

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

from trainwell import Model, set_seeds


def make_network(num_classes: int = 10) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 16, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.Conv2d(16, 32, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),  # 8x8 -> 4x4
        nn.Dropout(0.25),
        nn.Flatten(),
        nn.Linear(32 * 4 * 4, 64),
        nn.ReLU(),
        nn.Dropout(0.5),
        nn.Linear(64, num_classes),
    )


def load_data() -> tuple[np.ndarray, ...]:
    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)[:, None]  # (N, 1, 8, 8), pixels in [0, 1]
    x_train, x_test, y_train, y_test = train_test_split(
        images, digits.target, test_size=0.2, random_state=0, stratify=digits.target
    )
    x_train, x_valid, y_train, y_valid = train_test_split(
        x_train, y_train, test_size=0.2, random_state=0, stratify=y_train
    )
    return x_train, y_train, x_valid, y_valid, x_test, y_test


def load_splits() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The same data as the splits the ``trainwell`` command reads (examples/configs/digits.yaml)."""
    x_train, y_train, x_valid, y_valid, x_test, y_test = load_data()
    return {"train": (x_train, y_train), "valid": (x_valid, y_valid), "test": (x_test, y_test)}


def main() -> float:
    set_seeds(42)
    x_train, y_train, x_valid, y_valid, x_test, y_test = load_data()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = Model(
        make_network(),
        "adam",
        "cross_entropy",
        batch_metrics=["accuracy"],
        epoch_metrics=["f1"],
        device=device,
    )
    model.fit(x_train, y_train, validation_data=(x_valid, y_valid), epochs=15, batch_size=32)
    test_loss, (test_acc, test_f1) = model.evaluate(x_test, y_test, batch_size=128)
    print(f"Test: loss {test_loss:.4f}, accuracy {test_acc:.2f}%, macro F1 {test_f1:.4f}")
    return test_acc


if __name__ == "__main__":
    accuracy = main()
    sys.exit(0 if accuracy > 90 else 1)
