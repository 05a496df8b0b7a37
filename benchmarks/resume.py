"""What a mid-epoch resume costs: the time from the resumed call to its first new training batch.

A slow map-style dataset (``--ms-per-sample`` of work per ``__getitem__``, as decoding an image or
tokenizing a text costs), a ``DataLoader(shuffle=True)`` over it, and a run checkpointed after 10%, 50%
and 90% of an epoch. For each framework, the resumed process's wait before training starts again:

- **trainwell**: ``Model.restore_training_state`` then ``fit_generator`` on the user's own loader (it
  advances the batch sampler, fetching nothing);
- **trainwell, replayed**: the same through a ``DataLoader`` subclass, which trainwell does not read and
  so reads forward (what every resume cost before, and what the loaders it cannot read still cost);
- **accelerate**: ``accelerate.skip_first_batches(loader, k)`` (what the Hugging Face Trainer uses), when
  installed; Lightning is measured when installed.

Run: ``python -m benchmarks.resume [--samples 2000] [--ms-per-sample 1] [--out benchmarks/results/resume]``.
Writes ``resume.md`` with the seconds and the ratio of the 90% resume to the 10% one (flat is 1.00).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

BATCH = 32
POSITIONS = (0.1, 0.5, 0.9)


class SlowDataset(Dataset):
    """Each sample costs ``seconds`` of work (a busy wait: the CPU is what decoding would use)."""

    def __init__(self, samples: int, seconds: float) -> None:
        generator = torch.Generator().manual_seed(0)
        self.x = torch.randn(samples, 16, generator=generator)
        self.y = torch.randint(0, 4, (samples,), generator=generator)
        self.seconds = seconds

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        end = time.perf_counter() + self.seconds
        while time.perf_counter() < end:
            pass
        return self.x[index], self.y[index]


class OpaqueLoader(DataLoader):
    """A DataLoader subclass: trainwell iterates it as it is, so a resume reads the done batches again."""


def _trainwell_resume(dataset: Dataset, done: int, loader_class: type) -> float:
    from trainwell import Callback, Model

    class StopRunError(Exception):
        pass

    class Snapshot(Callback):
        reads_gradients = False

        def on_train_batch_end(self, batch_number: int, logs: Any) -> None:
            if batch_number == done:
                self.snapshot = self.model.training_state()
                raise StopRunError

    class FirstBatch(Callback):
        reads_gradients = False

        def on_train_batch_begin(self, batch_number: int, logs: Any) -> None:
            self.seen = time.perf_counter()
            raise StopRunError

    def model() -> Any:
        torch.manual_seed(0)
        return Model(nn.Linear(16, 4), "sgd", "cross_entropy", sanity_check=False)

    snapshot = Snapshot()
    fast = SlowDataset(len(dataset), 0.0)  # reaching the checkpoint is not what is measured
    with contextlib.suppress(StopRunError):
        model().fit_generator(loader_class(fast, batch_size=BATCH, shuffle=True), epochs=1, verbose=False,
                              callbacks=[snapshot])  # fmt: skip
    resumed, first = model(), FirstBatch()
    loader = loader_class(dataset, batch_size=BATCH, shuffle=True)
    started = time.perf_counter()
    initial_epoch = resumed.restore_training_state(snapshot.snapshot)
    with contextlib.suppress(StopRunError):
        resumed.fit_generator(loader, epochs=1, initial_epoch=initial_epoch, verbose=False, callbacks=[first])
    return first.seen - started


def _accelerate_resume(dataset: Dataset, done: int) -> float:
    from accelerate import skip_first_batches

    torch.manual_seed(0)
    loader = DataLoader(dataset, batch_size=BATCH, shuffle=True)
    started = time.perf_counter()
    next(iter(skip_first_batches(loader, done)))
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--ms-per-sample", type=float, default=1.0)
    parser.add_argument("--out", default="benchmarks/results/resume")
    args = parser.parse_args()
    torch.set_num_threads(1)
    dataset = SlowDataset(args.samples, args.ms_per_sample / 1000)
    batches = -(-args.samples // BATCH)
    frameworks: dict[str, Callable[[int], float]] = {
        "trainwell": lambda done: _trainwell_resume(dataset, done, DataLoader),
        "trainwell, replayed (DataLoader subclass)": lambda done: _trainwell_resume(dataset, done, OpaqueLoader),
    }
    if importlib.util.find_spec("accelerate") is not None:
        frameworks["accelerate skip_first_batches"] = lambda done: _accelerate_resume(dataset, done)
    rows = []
    for name, measure in frameworks.items():
        seconds = [measure(max(1, round(position * batches))) for position in POSITIONS]
        rows.append((name, seconds))
        print(name, " ".join(f"{value:.3f}s" for value in seconds), flush=True)
    lines = [
        "# Resume cost: seconds from the resumed call to its first new batch",
        "",
        f"Command: `python -m benchmarks.resume --samples {args.samples} --ms-per-sample {args.ms_per_sample}`; "
        f"{batches} batches of {BATCH} per epoch, torch {torch.__version__}, one thread.",
        "",
        "| framework | resume at 10% | at 50% | at 90% | 90% / 10% |",
        "|---|---:|---:|---:|---:|",
        *(f"| {name} | {s[0]:.3f} s | {s[1]:.3f} s | {s[2]:.3f} s | {s[2] / s[0]:.2f} |" for name, s in rows),
    ]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "resume.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
