"""A TPE search over the learning rate and the width of an MLP on scikit-learn's digits, one Experiment per trial.

Run: python examples/search_digits.py [DIRECTORY] [N_TRIALS]     (default: saves/search_digits, 6 trials)

Kill it at any moment and run the same command again: finished trials are kept, the interrupted one goes on
from its checkpoint. Start the same command in a second terminal and the two share the trials. Afterwards the
directory holds trials/ (one Experiment directory per trial), trials.csv, tensorboard/ (HParams: run
``tensorboard --logdir DIRECTORY/tensorboard``) and plots/.
"""

from __future__ import annotations

import sys

from digits import load_data
from torch import nn

from trainwell import LogRange, Model, Search


def build(params: dict) -> Model:
    network = nn.Sequential(
        nn.Flatten(),  # the digits are (1, 8, 8) images: 64 pixels in
        nn.Linear(64, params["width"]),
        nn.ReLU(),
        nn.Linear(params["width"], 10),
    )
    return Model(network, {"optim": "adam", "lr": params["lr"]}, "cross_entropy", batch_metrics=["accuracy"])


def main(directory: str, n_trials: int = 6) -> dict:
    x_train, y_train, x_valid, y_valid, x_test, y_test = load_data()
    search = Search(
        directory,
        build,
        {"lr": LogRange(1e-4, 3e-2), "width": [16, 32, 64, 128]},
        objective="val_acc",  # a percentage: larger is better, as the metric declares
        sampler="tpe",
        n_trials=n_trials,
        pruner="median",  # stops trials whose val_acc trails the median of earlier trials at the same epoch
    )
    table = search.train_data(x_train, y_train, validation_data=(x_valid, y_valid), epochs=3, batch_size=64)
    print(table.drop(columns=["directory"]).to_string(index=False))
    experiment = search.best_experiment  # rebuilt on the best trial's directory, its best weights loaded
    results = experiment.test_data(x_test, y_test, verbose=False)
    print(f"Best parameters {search.best_params}: test accuracy {results['test_acc']:.2f}%")
    return search.best_params


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "saves/search_digits", int(sys.argv[2]) if len(sys.argv) > 2 else 6)
