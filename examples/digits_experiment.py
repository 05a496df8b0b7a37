"""The digits CNN as an Experiment: a directory that logs, checkpoints, plots, and resumes exactly.

Run: python examples/digits_experiment.py [DIRECTORY] [EPOCHS]     (default: saves/digits, 12 epochs)

Interrupt it with Ctrl-C at any point (or kill it): it saves a checkpoint and exits. Run the same command
again and training continues where it stopped; the final weights are the same as if it never stopped.
Raise EPOCHS and run it again to train further.
"""

from __future__ import annotations

import sys

from digits import load_data, make_network

from trainwell import CosineAnnealingLR, Experiment, set_seeds

EPOCHS = 12


def main(directory: str, epochs: int = EPOCHS) -> None:
    x_train, y_train, x_valid, y_valid, x_test, y_test = load_data()
    # Seed before building the network: its initial weights are random draws, made before the Experiment
    # exists, so the Experiment's own seed (which seeds training) cannot reach them.
    set_seeds(42)
    experiment = Experiment(directory, make_network(), task="classif", optimizer={"optim": "adam", "lr": 2e-3})
    experiment.train_data(
        x_train,
        y_train,
        validation_data=(x_valid, y_valid),
        epochs=epochs,  # the total: a finished run with fewer epochs continues up to this one
        batch_size=32,
        checkpoint_every_n_steps=20,  # mid-epoch checkpoints: an interruption loses at most 20 steps
        lr_schedulers=[CosineAnnealingLR(T_max=epochs)],
    )
    results = experiment.test_data(x_test, y_test)  # the best epoch (by val_acc); writes test_log.tsv
    best = experiment.get_best_epoch_stats()
    print(f"Best epoch {int(best['epoch'].iloc[0])}: test accuracy {results['test_acc']:.2f}%")
    print(f"Everything is in {directory}: log.tsv, checkpoints/, plots/, tensorboard/, run.json, test_log.tsv")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "saves/digits", int(sys.argv[2]) if len(sys.argv) > 2 else EPOCHS)
