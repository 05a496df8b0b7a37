"""A dialect's run in an experiment directory, for test_dialect_resume.py.

``python resume_script.py fitloop|tinydl DIR``: trains 4 epochs on a learnable generated task (the
classes of a fixed random linear teacher) with a shuffled loader, momentum SGD and a step scheduler, in
``DIR`` (``experiment_dir``), then prints ``RESULT`` and a JSON line: the weights' sha256 and what the
dialect recorded. ``SLOW`` (seconds) sleeps in every training batch's collate, so that a test can
interrupt the run anywhere.
"""

import hashlib
import json
import os
import sys
import time

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset, default_collate

SLOW = float(os.environ.get("SLOW", "0"))


def slow_collate(samples):
    time.sleep(SLOW)
    return default_collate(samples)


def loaders():
    generator = torch.Generator().manual_seed(5)
    x = torch.randn(640, 64, generator=generator)
    y = (x @ torch.randn(64, 10, generator=generator)).argmax(dim=1)
    train = DataLoader(
        TensorDataset(x[:480], y[:480]),
        batch_size=32,
        shuffle=True,
        generator=torch.Generator().manual_seed(1),
        collate_fn=slow_collate,
    )
    return train, DataLoader(TensorDataset(x[480:640], y[480:640]), batch_size=80)


def weights_hash(network):
    digest = hashlib.sha256()
    for name, tensor in sorted(network.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().contiguous().numpy().tobytes())
    return digest.hexdigest()


def fitloop(directory):
    from trainwell.compat.fitloop import FitLoop

    train, valid = loaders()
    network = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    optimizer = torch.optim.SGD(network.parameters(), lr=0.1, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5)
    floop = FitLoop(
        network, optimizer, nn.CrossEntropyLoss(), train_dl=train, valid_dl=valid, lr_scheduler=scheduler,
        device="cpu", experiment_dir=directory,
    )  # fmt: skip
    print("TRAINING", flush=True)
    floop.fit(epochs=4, no_print=True)
    recorded = {
        "train_loss": [list(map(float, run)) for run in floop.M.train["loss"]],
        "valid_accuracy": [list(map(float, run)) for run in floop.M.valid["accuracy"]],
        "batch_losses": len(floop.M.train.batch_step.get("loss", [[]])[-1]),
    }
    return floop.model, {"epoch_num": floop.epoch_num, "best_score": floop.best_score, "M": recorded}


def tinydl(directory):
    from trainwell.compat.tinydl.metric import CrossEntropy
    from trainwell.compat.tinydl.reporter import TensorboardHparamReporter
    from trainwell.compat.tinydl.runner import Runner, Trainer, Validator

    train, valid = loaders()
    network = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    optimizer = torch.optim.SGD(network.parameters(), lr=0.1, momentum=0.9)
    hparams = TensorboardHparamReporter(hparam={"lr": 0.1})
    hparams.add_metrics([CrossEntropy()])
    trainer = Trainer(train, optimizer, nn.CrossEntropyLoss(), device="cpu", verbose=False)
    validator = Validator(valid, device="cpu", verbose=False)
    runner = Runner(network, trainer, validator, run_reporters=hparams, device="cpu", verbose=False,
                    experiment_dir=directory)  # fmt: skip
    print("TRAINING", flush=True)
    runner.run(4)
    history = [{key: value for key, value in logs.items() if key != "time"} for logs in runner.history]
    return runner.model, {"history": history, "epochs_done": trainer.epochs_done}


if __name__ == "__main__":
    torch.manual_seed(0)
    torch.set_num_threads(1)
    dialect, target = sys.argv[1], sys.argv[2]
    model, recorded = {"fitloop": fitloop, "tinydl": tinydl}[dialect](target)
    print("RESULT " + json.dumps({"weights": weights_hash(model), **recorded}), flush=True)
