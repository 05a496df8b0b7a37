"""The seed documents' workflows run with trainwell, changing only the import, on real data."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from torch import nn, optim
from torch.utils.data import DataLoader, Subset, TensorDataset

from trainwell import Model, set_seeds

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def digits():
    data = load_digits()
    x = (data.images / 16.0).astype(np.float32)
    return x, data.target


def test_overview_workflow(digits):
    """poutyne-overview-short.md: Model(network, "sgd", "cross_entropy", ...), fit on arrays, evaluate."""
    images, labels = digits
    set_seeds(0)
    x_train, y_train = images[:1200].reshape(1200, -1), labels[:1200]
    x_val, y_val = images[1200:1500].reshape(300, -1), labels[1200:1500]
    x_test, y_test = images[1500:].reshape(-1, 64), labels[1500:]
    network = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))

    model = Model(
        network,
        "sgd",
        "cross_entropy",
        batch_metrics=["accuracy"],
        epoch_metrics=["f1"],
        device="cpu",
    )
    model.fit(x_train, y_train, validation_data=(x_val, y_val), epochs=40, batch_size=64, verbose=False)
    results = model.evaluate(x_test, y_test, batch_size=128, verbose=False)

    loss, (acc, f1) = results
    assert loss < 2.0 and acc > 50 and f1 > 0.4  # sgd at its default lr=0.01 learns slowly


def test_mnist_tutorial_workflow_on_digits(digits):
    """poutyne-mnist-tutorial.rst, 'Training the Poutyne way', with digits instead of MNIST."""
    images, labels = digits
    set_seeds(42)
    full = TensorDataset(torch.from_numpy(images[:, None]), torch.from_numpy(labels))
    indices = list(range(len(full)))
    np.random.shuffle(indices)
    split = int(0.8 * 1500)
    train_loader = DataLoader(Subset(full, indices[:split]), batch_size=32, shuffle=True)
    valid_loader = DataLoader(Subset(full, indices[split:1500]), batch_size=32)
    test_loader = DataLoader(Subset(full, indices[1500:]), batch_size=32)

    network = nn.Sequential(nn.Flatten(), nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
    optimizer = optim.SGD(network.parameters(), lr=0.1)
    loss_function = nn.CrossEntropyLoss()
    model = Model(network, optimizer, loss_function, batch_metrics=["accuracy"], device=torch.device("cpu"))
    model.fit_generator(train_loader, valid_loader, epochs=10, verbose=False)
    test_loss, test_acc = model.evaluate_generator(test_loader, verbose=False)
    assert test_acc > 90 and test_loss < 0.5


def test_demo_reaches_90_percent_test_accuracy():
    completed = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "digits.py")], capture_output=True, text=True, timeout=300
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    last = completed.stdout.strip().splitlines()[-1]
    accuracy = float(last.split("accuracy ")[1].split("%")[0])
    assert accuracy > 90, last
