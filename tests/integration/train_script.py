"""A training run that the integration tests start, kill and start again (``python train_script.py DIR``).

Environment: ``STEPS`` (checkpoint_every_n_steps, default none), ``EPOCHS`` (default 4),
``NO_RNG_RESTORE=1`` (negative control: the resumed run leaves the random generators as they are),
``SLOW`` (seconds to sleep per batch, so a kill lands mid-epoch).
"""

import hashlib
import os
import sys
import time

import torch
from torch import nn

from trainwell import Callback, CosineAnnealingLR, EarlyStopping
from trainwell.experiment.experiment import Experiment

if os.environ.get("NO_RNG_RESTORE"):
    import trainwell.model.training_state

    trainwell.model.training_state.restore_rng = lambda state: None  # type: ignore[assignment]


class Slow(Callback):
    def on_train_begin(self, logs):
        print("TRAINING", flush=True)  # the test times its kill from here

    def on_train_batch_end(self, batch_number, logs):
        time.sleep(float(os.environ.get("SLOW", "0")))


def main(directory: str) -> None:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(240, 10, generator=generator)
    y = (x[:, 0] + x[:, 1] > 0).long() + (x[:, 2] > 0.5).long()
    torch.manual_seed(1)
    network = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Dropout(0.2), nn.Linear(32, 3))
    experiment = Experiment(directory, network, task="classif", optimizer="adam")
    steps = os.environ.get("STEPS")
    experiment.train_data(
        x,
        y,
        validation_data=(x[:60], y[:60]),
        epochs=int(os.environ.get("EPOCHS", "4")),
        batch_size=16,
        verbose=False,
        checkpoint_every_n_steps=int(steps) if steps else None,
        callbacks=[Slow(), EarlyStopping(monitor="val_loss", patience=10)],
        # Stepped after every optimizer update: a mid-epoch resume must continue the schedule exactly.
        lr_schedulers=[CosineAnnealingLR(T_max=60, eta_min=1e-4, step_every="step")],
        disable_tensorboard=True,
    )
    digest = hashlib.sha256()
    for name, tensor in sorted(network.state_dict().items()):
        digest.update(name.encode() + tensor.numpy().tobytes())
    print("WEIGHTS", digest.hexdigest())


if __name__ == "__main__":
    main(sys.argv[1])
