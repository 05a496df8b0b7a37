"""A training run that ``test_experiment_signals.py`` interrupts with real signals (``python signal_script.py DIR``).

It prints ``BATCH <epoch> <batch>`` (flushed) after every training batch, so the test knows where training
is when it sends a signal, then sleeps ``SLOW`` seconds (default 0) so the signal lands inside a step. At the
end it prints ``WEIGHTS <sha256 of the final weights>``. ``EPOCHS`` sets the total (default 3).
"""

import hashlib
import os
import sys
import time
from typing import Any

import torch
from torch import nn

from trainwell import Callback
from trainwell.experiment.experiment import Experiment


class ReportAndSlow(Callback):
    """Runs before the experiment's checkpointer in each batch: a signal here arrives mid-step."""

    def on_train_batch_end(self, batch_number: int, logs: Any) -> None:
        print(f"BATCH {self.model.state.epoch} {batch_number}", flush=True)
        time.sleep(float(os.environ.get("SLOW", "0")))


def main(directory: str) -> None:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(240, 10, generator=generator)
    y = (x[:, 0] + x[:, 1] > 0).long() + (x[:, 2] > 0.5).long()
    torch.manual_seed(1)
    # Dropout and shuffling use the random generators: an exact resume must restore them too.
    network = nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 3))
    # One metric: the plots drawn at the end of each call (one PNG per value) are the slowest part here.
    experiment = Experiment(
        directory, network, loss_function="cross_entropy", batch_metrics=["accuracy"], monitor_metric="val_acc"
    )
    experiment.train_data(
        x,
        y,
        validation_data=(x[:48], y[:48]),
        epochs=int(os.environ.get("EPOCHS", "3")),
        batch_size=16,
        verbose=False,
        callbacks=[ReportAndSlow()],
        disable_tensorboard=True,
    )
    digest = hashlib.sha256()
    for name, tensor in sorted(network.state_dict().items()):
        digest.update(name.encode() + tensor.numpy().tobytes())
    print("WEIGHTS", digest.hexdigest(), flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
