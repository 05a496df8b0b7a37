"""The same training script run alone or under ``torchrun`` (``python ddp_script.py MODE DIR``).

Modes:
    metrics: ``fit`` on in-memory data and on a Dataset, then ``evaluate`` and ``predict`` on a validation
        set whose size does not divide by the number of processes; every rank writes what it saw to
        ``DIR/rank{r}.json``. The global batch is 16 whatever the number of processes.
    experiment: an ``Experiment`` in ``DIR`` (checkpoints every 2 steps), then ``test_data``; rank 0 prints
        the sha256 of the final weights. ``SLOW`` (seconds per batch) lets a test kill it mid-epoch.
"""

import hashlib
import json
import os
import sys
import time
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import TensorDataset

from trainwell import Callback, Model, distributed
from trainwell.experiment import Experiment

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
    dataset_history = dataset_model.fit_dataset(
        TensorDataset(x, y), TensorDataset(x_valid, y_valid), epochs=1, batch_size=batch_size, verbose=False
    )
    dataset_predicted = dataset_model.predict_dataset(TensorDataset(x_valid), batch_size=batch_size, verbose=False)
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
    }
    (directory / f"rank{distributed.rank()}.json").write_text(json.dumps(result))


class Slow(Callback):
    def on_train_begin(self, logs):
        if distributed.is_main_process():
            print("TRAINING", flush=True)  # the test times its kill from here

    def on_train_batch_end(self, batch_number, logs):
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
        epochs=int(os.environ.get("EPOCHS", "3")),
        batch_size=GLOBAL_BATCH // distributed.world_size(),
        verbose=False,
        checkpoint_every_n_steps=2,
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
