"""The same training script run alone or under ``torchrun`` (``python ddp_script.py MODE DIR``).

Modes:
    metrics: ``fit`` on in-memory data and on a Dataset, then ``evaluate`` and ``predict`` on a validation
        set whose size does not divide by the number of processes; every rank writes what it saw to
        ``DIR/rank{r}.json``. The global batch is 16 whatever the number of processes.
    experiment: an ``Experiment`` in ``DIR`` (2 epochs of 6 steps, checkpoints every 3 steps), then
        ``test_data``; rank 0 prints ``STEP n`` after every step and the sha256 of the final weights.
        ``SLOW`` (seconds per step) lets a test kill it between two checkpoints.
"""

import hashlib
import json
import os
import sys
import time
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from trainwell import Callback, Model, distributed
from trainwell.experiment.experiment import Experiment

GLOBAL_BATCH = 16


def data() -> tuple[torch.Tensor, ...]:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(96, 8, generator=generator)
    y = (x[:, 0] + x[:, 1] > 0).long() + (x[:, 2] > 0.5).long()
    x_valid = torch.randn(37, 8, generator=generator)  # 37: rank 0 holds 19 samples, rank 1 holds 18
    y_valid = (x_valid[:, 0] + x_valid[:, 1] > 0).long() + (x_valid[:, 2] > 0.5).long()
    return x, y, x_valid, y_valid


def network() -> nn.Module:
    torch.manual_seed(1)
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))


def digest(module: nn.Module) -> str:
    hashed = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        hashed.update(name.encode() + tensor.detach().cpu().numpy().tobytes())
    return hashed.hexdigest()


def metrics(directory: Path) -> None:
    x, y, x_valid, y_valid = data()
    batch_size = GLOBAL_BATCH // distributed.world_size()
    torch.manual_seed(2)
    model = Model(network(), "sgd", "cross_entropy", batch_metrics=["accuracy"], epoch_metrics=["f1"])
    history = model.fit(x, y, validation_data=(x_valid, y_valid), epochs=2, batch_size=batch_size)
    loss, scores, predictions, truths = model.evaluate(
        x_valid, y_valid, batch_size=batch_size, return_pred=True, return_ground_truth=True, verbose=False
    )
    predicted = model.predict(x_valid, batch_size=batch_size, verbose=False)
    # The same through Datasets (a sharded, resumable sampler under torchrun).
    dataset_model = Model(network(), "sgd", "cross_entropy", batch_metrics=["accuracy"], epoch_metrics=["f1"])
    torch.manual_seed(5)
    dataset_history = dataset_model.fit_dataset(
        TensorDataset(x, y), TensorDataset(x_valid, y_valid), epochs=1, batch_size=batch_size, verbose=False
    )
    dataset_predicted = dataset_model.predict_dataset(TensorDataset(x_valid), batch_size=batch_size, verbose=False)
    # A DataLoader the user built: re-wrapped over a sharded sampler, the same batches as fit_dataset's.
    loader_model = Model(network(), "sgd", "cross_entropy", batch_metrics=["accuracy"], epoch_metrics=["f1"])
    torch.manual_seed(5)
    loader_history = loader_model.fit_generator(
        DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=True),
        DataLoader(TensorDataset(x_valid, y_valid), batch_size=batch_size),
        epochs=1,
        verbose=False,
    )
    result = {
        "world_size": distributed.world_size(),
        "history": [{key: value for key, value in epoch.items() if key != "time"} for epoch in history],
        "evaluate": [loss, *scores.tolist()],
        "evaluate_truths": truths.tolist(),
        "evaluate_predictions": predictions.tolist(),
        "predict": predicted.tolist(),
        "weights": {name: tensor.tolist() for name, tensor in model.network.state_dict().items()},
        "wrapped": type(model._steps.network).__name__,
        "dataset_history": [{key: value for key, value in epoch.items() if key != "time"} for epoch in dataset_history],
        "dataset_predict": dataset_predicted.tolist(),
        "loader_history": [{key: value for key, value in epoch.items() if key != "time"} for epoch in loader_history],
    }
    (directory / f"rank{distributed.rank()}.json").write_text(json.dumps(result))


class Slow(Callback):
    """Rank 0 reports every training step (the test kills the run after a chosen one); SLOW sleeps per step."""

    def on_train_batch_end(self, batch_number, logs):
        if distributed.is_main_process():
            print("STEP", self.model.state.global_step, flush=True)
        time.sleep(float(os.environ.get("SLOW", "0")))


def experiment(directory: Path) -> None:
    x, y, x_valid, y_valid = data()
    torch.manual_seed(3)
    net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 3))
    run = Experiment(directory, net, task="classif", optimizer="adam")
    run.train_data(
        x,
        y,
        validation_data=(x_valid, y_valid),
        epochs=int(os.environ.get("EPOCHS", "2")),
        batch_size=GLOBAL_BATCH // distributed.world_size(),
        verbose=False,
        checkpoint_every_n_steps=3,
        callbacks=[Slow()],
        disable_tensorboard=True,
    )
    logs = run.test_data(x_valid, y_valid, verbose=False)
    if distributed.is_main_process():
        print("TEST", json.dumps(logs))
        print("WEIGHTS", digest(net), flush=True)


if __name__ == "__main__":
    mode, target = sys.argv[1], Path(sys.argv[2])
    {"metrics": metrics, "experiment": experiment}[mode](target)
