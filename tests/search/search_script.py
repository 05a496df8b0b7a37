"""A search that the tests start, kill and start again (``python search_script.py DIR``), one worker per process.

Environment: ``SAMPLER`` ('random' by default, or 'grid'), ``N_TRIALS`` (default 3), ``EPOCHS`` (default 3),
``STORAGE`` (an Optuna storage URL; default: SQLite in DIR), ``SLOW`` (seconds to sleep per batch, so a
kill lands inside a trial), ``BARRIER`` (a folder where N=``BARRIER_N`` workers wait for each other first).
``NO_PLOTS=1`` hides matplotlib from the process, so neither the trials nor the search draw plots (they
cost seconds per trial on a loaded machine and are not what these tests look at; trainwell skips plots
without matplotlib, as for a user who does not have it).
Prints ``SEARCHING`` once the search starts, ``TRAINING`` when a trial's training starts and ``TABLE <json>``
at the end.
"""

import json
import os
import sys
import time
from pathlib import Path

if os.environ.get("NO_PLOTS"):
    sys.modules["matplotlib"] = None  # type: ignore[assignment]  # makes `import matplotlib` raise ImportError

import torch
from torch import nn

from trainwell import Callback, LogRange, Model, Search


class Slow(Callback):
    def on_train_begin(self, logs):
        print("TRAINING", flush=True)  # the tests time their kills from here

    def on_train_batch_end(self, batch_number, logs):
        time.sleep(float(os.environ.get("SLOW", "0")))


def build(params):
    network = nn.Sequential(nn.Linear(6, params["width"]), nn.ReLU(), nn.Dropout(0.1), nn.Linear(params["width"], 3))
    return Model(network, {"optim": "adam", "lr": params["lr"]}, "cross_entropy", batch_metrics=["accuracy"])


def wait_for_the_other_workers(folder: Path, count: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / str(os.getpid())).touch()
    while len(list(folder.iterdir())) < count:
        time.sleep(0.05)


def main(directory: str) -> list[dict]:
    torch.set_num_threads(1)
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(96, 6, generator=generator)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()
    space = {"lr": LogRange(1e-3, 1e-1), "width": [4, 8]}
    if os.environ.get("SAMPLER") == "grid":
        space = {"lr": [0.003, 0.03], "width": [4, 8]}
    search = Search(
        directory,
        build,
        space,
        objective="val_acc",
        sampler=os.environ.get("SAMPLER", "random"),
        n_trials=int(os.environ.get("N_TRIALS", "3")),
        storage=os.environ.get("STORAGE") or None,
        seed=3,
    )
    if os.environ.get("BARRIER"):
        wait_for_the_other_workers(Path(os.environ["BARRIER"]), int(os.environ["BARRIER_N"]))
    print("SEARCHING", flush=True)
    table = search.train_data(
        x,
        y,
        validation_data=(x[:32], y[:32]),
        epochs=int(os.environ.get("EPOCHS", "3")),
        batch_size=16,
        checkpoint_every_n_steps=2,
        callbacks=[Slow()],
        disable_tensorboard=True,
    )
    rows = table.drop(columns=["duration"]).to_dict(orient="records")
    print("TABLE", json.dumps(rows), flush=True)
    return rows


if __name__ == "__main__":
    main(sys.argv[1])
