"""What every framework shares: scenarios, seeded data, models, loss and optimizer.

Nothing here imports a framework; the adapters in ``benchmarks/frameworks`` receive a :class:`Task`
and turn it into one timed call.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

SEED = 0
LEARNING_RATE = 0.1
NUM_CLASSES = 10
MLP_FEATURES = 64

Kind = Literal["fit", "evaluate", "predict"]
Data = Literal["tensors", "loader", "dataset", "hf-dataset"]
# Scenario E: a tiny BERT fine-tuned for sequence classification (built from a config, no download).
BERT_VOCAB = 1_000
BERT_LENGTH = 32
BERT_CLASSES = 2
BERT_LEARNING_RATE = 1e-4


@dataclass(frozen=True)
class Scenario:
    """One measured workload; ``samples`` is the dataset size, processed ``epochs`` times."""

    name: str
    kind: Kind
    model: Literal["mlp", "cnn", "bert"]
    data: Data
    samples: int
    batch_size: int
    epochs: int = 1
    device: Literal["cpu", "cuda"] = "cpu"
    description: str = ""
    repeats: int = 1  # evaluate/predict are short: the timed section calls them this many times
    frameworks: tuple[str, ...] | None = None  # those the scenario is measured with (None: all but the peers' own)

    @property
    def processed(self) -> int:
        """Samples processed by the timed section (the throughput's numerator)."""
        return self.samples * self.epochs * self.repeats

    @property
    def steps(self) -> int:
        """Batches processed by the timed call."""
        return -(-self.samples // self.batch_size) * self.epochs


def scenarios(smoke: bool = False) -> dict[str, Scenario]:
    """All scenarios by name, at full size or at smoke size (seconds in all)."""
    a = 512 if smoke else 20_000
    b = 128 if smoke else 4_096
    epochs = 1 if smoke else 3
    a1 = Scenario("A1", "fit", "mlp", "tensors", a, 32, epochs, description="MLP 64-128-10, fit(x, y) in memory")
    a2 = replace(a1, name="A2", data="loader", description="MLP, DataLoader(shuffle=True)")
    a3 = replace(a1, name="A3", data="dataset", description="MLP, fit_dataset(TensorDataset) (peers: its DataLoader)")
    cnn = Scenario("B", "fit", "cnn", "loader", b, 64, 1, description="CNN 1x28x28, DataLoader")
    repeats = 1 if smoke else 30
    ev = Scenario("C-evaluate", "evaluate", "mlp", "tensors", a, 256, repeats=repeats, description="evaluate")
    pr = Scenario("C-predict", "predict", "mlp", "tensors", a, 256, repeats=repeats, description="predict")
    gpu_a1 = replace(a1, name="D-A1", device="cuda", description="A1 on the GPU")
    gpu_b = replace(cnn, name="D-B", device="cuda", description="B on the GPU")
    bert = Scenario(
        "E",
        "fit",
        "bert",
        "hf-dataset",
        64 if smoke else 4_096,
        32,
        1,
        description="tiny BERT sequence classification, datasets.Dataset, AdamW",
        frameworks=("handwritten", "trainwell", "hf-trainer"),
    )
    return {s.name: s for s in (a1, a2, a3, cnn, ev, pr, gpu_a1, gpu_b, bert)}


# Frameworks measured only in the scenarios that name them (the Hugging Face Trainer trains transformers models).
SCENARIO_ONLY = {"hf-trainer"}


def applies(framework: str, scenario: Scenario) -> bool:
    """Whether ``framework`` is measured in ``scenario``."""
    if scenario.frameworks is not None:
        return framework in scenario.frameworks
    return framework not in SCENARIO_ONLY


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) identically for every framework."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def mlp() -> nn.Module:
    """Scenario A's model: 64-128-10."""
    return nn.Sequential(nn.Linear(MLP_FEATURES, 128), nn.ReLU(), nn.Linear(128, NUM_CLASSES))


def cnn() -> nn.Module:
    """The seed tutorial's CNN: Conv16-Conv32-FC128-FC10 for 1x28x28 inputs."""
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Dropout(0.25),
        nn.Flatten(),
        nn.Linear(32 * 7 * 7, 128),
        nn.ReLU(),
        nn.Dropout(0.5),
        nn.Linear(128, NUM_CLASSES),
    )


def bert() -> nn.Module:
    """Scenario E's model: ``BertForSequenceClassification`` from a small config (2 layers, 64 wide, 0.17M weights)."""
    from transformers import BertConfig, BertForSequenceClassification

    config = BertConfig(
        vocab_size=BERT_VOCAB,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=256,
        max_position_embeddings=BERT_LENGTH,
        num_labels=BERT_CLASSES,
    )
    return BertForSequenceClassification(config)


def make_data(model: str, samples: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded inputs and int64 labels; the MLP's labels come from a random linear teacher (learnable).

    For BERT, ``x`` holds token ids padded with 0 (lengths 8 to 32); the label says whether the first
    token is in the upper half of the vocabulary.
    """
    gen = torch.Generator().manual_seed(SEED)
    if model == "bert":
        x = torch.randint(1, BERT_VOCAB, (samples, BERT_LENGTH), generator=gen)
        lengths = torch.randint(BERT_LENGTH // 4, BERT_LENGTH + 1, (samples,), generator=gen)
        x = x.masked_fill(torch.arange(BERT_LENGTH) >= lengths[:, None], 0)
        return x, (x[:, 0] >= BERT_VOCAB // 2).long()
    if model == "mlp":
        x = torch.randn(samples, MLP_FEATURES, generator=gen)
        teacher = torch.randn(MLP_FEATURES, NUM_CLASSES, generator=gen)
        y = (x @ teacher + 0.5 * torch.randn(samples, NUM_CLASSES, generator=gen)).argmax(1)
    else:
        x = torch.randn(samples, 1, 28, 28, generator=gen)
        y = torch.randint(0, NUM_CLASSES, (samples,), generator=gen)
    return x, y


@dataclass
class Task:
    """Everything an adapter needs for one measurement. Data stays on the CPU; models go to ``device``."""

    scenario: Scenario
    network: nn.Module
    x: torch.Tensor
    y: torch.Tensor
    lr: float = LEARNING_RATE

    @property
    def device(self) -> torch.device:
        return torch.device(self.scenario.device)

    @property
    def batch_size(self) -> int:
        return self.scenario.batch_size

    @property
    def epochs(self) -> int:
        return self.scenario.epochs

    def loss_function(self) -> nn.Module:
        return nn.CrossEntropyLoss()

    def optimizer(self, params: Any = None) -> torch.optim.Optimizer:
        """Plain SGD (AdamW for BERT), the same for all (``params`` defaults to the network's)."""
        params = self.network.parameters() if params is None else params
        if self.scenario.model == "bert":
            return torch.optim.AdamW(params, lr=BERT_LEARNING_RATE)
        return torch.optim.SGD(params, lr=self.lr)

    def hf_dataset(self) -> Any:
        """E's data as a ``datasets.Dataset`` in torch format: ``input_ids``, ``attention_mask``, ``labels``."""
        import datasets

        data = datasets.Dataset.from_dict(
            {
                "input_ids": self.x.tolist(),
                "attention_mask": (self.x != 0).long().tolist(),
                "labels": self.y.tolist(),
            }
        )
        data.set_format("torch")
        return data

    def hf_loader(self) -> DataLoader:
        """``DataLoader(hf_dataset, shuffle=True, collate_fn=default_data_collator)``, as the HF course writes it."""
        from transformers import default_data_collator

        return DataLoader(self.hf_dataset(), batch_size=self.batch_size, shuffle=True, collate_fn=default_data_collator)

    def loader(self, shuffle: bool | None = None, with_targets: bool = True) -> DataLoader:
        """``DataLoader(TensorDataset(...))``, shuffled for training, in the main process."""
        tensors = (self.x, self.y) if with_targets else (self.x,)
        shuffle = self.scenario.kind == "fit" if shuffle is None else shuffle
        return DataLoader(TensorDataset(*tensors), batch_size=self.batch_size, shuffle=shuffle)


def make_task(scenario: Scenario, samples: int | None = None) -> Task:
    """A freshly seeded task (``samples`` truncates the data, e.g. for the warm-up)."""
    if samples is not None:
        scenario = replace(scenario, samples=min(samples, scenario.samples))
    x, y = make_data(scenario.model, scenario.samples)
    seed_everything(SEED + 1)
    network = {"mlp": mlp, "cnn": cnn, "bert": bert}[scenario.model]()
    seed_everything(SEED + 2)
    return Task(scenario, network, x, y)


# An adapter turns a task into the zero-argument call that is timed.
Prepare = Callable[[Task], Callable[[], Any]]
