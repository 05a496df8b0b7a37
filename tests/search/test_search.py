"""Search in one process: the grid in tinydl's order, every trial an Experiment, the table, TensorBoard HParams
read back, plots, the best trial, pruning, and a second run that runs nothing."""

from __future__ import annotations

import csv
import json

import optuna
import pytest
import torch
from torch import nn

from tests.compat.tensorboard_files import hparams_entry
from trainwell import Experiment, Hyperparameter, Model, Search
from trainwell import callbacks as trainwell_callbacks

X = torch.randn(64, 5, generator=torch.Generator().manual_seed(0))
Y = (X[:, 0] > 0).long()


def build(params):
    network = nn.Sequential(nn.Linear(5, params["width"]), nn.ReLU(), nn.Linear(params["width"], 2))
    return Model(network, {"optim": "adam", "lr": params["lr"]}, "cross_entropy", batch_metrics=["accuracy"])


def test_a_grid_search_leaves_one_experiment_per_trial_and_its_reports(tmp_path, capsys):
    grid = Hyperparameter({"lr": [0.03, 0.001], "width": [4, 8]})
    search = Search(tmp_path, build, grid, objective="val_acc", sampler="grid")
    table = search.train_data(X, Y, validation_data=(X[:32], Y[:32]), epochs=2, batch_size=16)

    # tinydl's order, each trial complete, its parameters in its run.json and its own log.tsv.
    assert [(row.lr, row.width) for row in table.itertuples()] == [(e["lr"], e["width"]) for e in grid]
    assert table["state"].tolist() == ["complete"] * 4 and table["trial"].tolist() == [0, 1, 2, 3]
    for row in table.itertuples():
        run = json.loads((tmp_path / f"trials/trial_{row.trial:04d}/run.json").read_text())
        assert run["search"]["params"] == {"lr": row.lr, "width": row.width} and len(run["trainings"]) == 1
        assert (tmp_path / f"trials/trial_{row.trial:04d}/log.tsv").is_file()
        with open(row.directory + "/log.tsv", newline="") as handle:
            logged = [float(r["val_acc"]) for r in csv.DictReader(handle, delimiter="\t")]
        assert row.val_acc == max(logged) and row.best_epoch == 1 + logged.index(max(logged))
    # trials.csv holds the same table.
    with open(tmp_path / "trials.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(int(r["trial"]), r["state"], float(r["val_acc"])) for r in rows] == [
        (row.trial, row.state, row.val_acc) for row in table.itertuples()
    ]
    # One HParams entry per trial, read back with TensorBoard's own reader: parameters, state, final metrics.
    for row in table.itertuples():
        values, metrics = hparams_entry(tmp_path / f"tensorboard/trial_{row.trial:04d}")
        assert values == {"lr": pytest.approx(row.lr), "width": row.width, "state": "complete"}
        assert metrics["best_val_acc"] == pytest.approx(row.val_acc) and {"loss", "val_loss", "acc"} <= set(metrics)
    assert (tmp_path / "plots/optimization_history.png").stat().st_size > 1000
    assert (tmp_path / "plots/param_importances.png").stat().st_size > 1000
    out = capsys.readouterr().out
    assert out.count(" starts") == 4 and "Trial 3 (4/4) [lr=0.001, width=8] complete: val_acc" in out

    # The best trial: its parameters, and its experiment with the best epoch's weights loaded.
    best = table.loc[table["val_acc"].idxmax()]
    assert search.best_params == {"lr": best["lr"], "width": int(best["width"])}
    experiment = search.best_experiment
    assert experiment.directory == tmp_path / f"trials/trial_{int(best['trial']):04d}"
    _, accuracy = experiment.model.evaluate(X[:32], Y[:32], batch_size=16, verbose=False)
    assert accuracy == pytest.approx(best["val_acc"])

    # The same search again: every trial is finished, nothing runs, the table is unchanged.
    again = Search(tmp_path, build, grid, objective="val_acc", sampler="grid").train_data(
        X, Y, validation_data=(X[:32], Y[:32]), epochs=2, batch_size=16
    )
    assert " starts" not in capsys.readouterr().out
    assert again.drop(columns="duration").equals(table.drop(columns="duration"))


def test_the_pruner_stops_a_hopeless_trial_and_records_it_as_pruned(tmp_path):
    # lr=1e-9 learns nothing: after its first epoch it is below the median of the two trials before it.
    pruner = optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0)
    search = Search(tmp_path, build, {"lr": [0.05, 0.04, 1e-9], "width": [8]}, objective="val_acc",
                    sampler="grid", pruner=pruner, verbose=False)  # fmt: skip
    table = search.train_data(X, Y, validation_data=(X[:32], Y[:32]), epochs=2, batch_size=16)
    assert table["state"].tolist() == ["complete", "complete", "pruned"]
    assert table["epochs"].tolist() == [2, 2, 1]
    assert search.study.trials[2].state == optuna.trial.TrialState.PRUNED
    assert list(search.study.trials[0].intermediate_values) == [1, 2]  # one report per epoch
    values, _ = hparams_entry(tmp_path / "tensorboard/trial_0002")
    assert values["state"] == "pruned"


def test_build_may_return_an_experiment_on_the_trial_directory(tmp_path):
    def build_experiment(params, directory):
        network = nn.Linear(5, 2)
        return Experiment(directory, network, task="classif", optimizer={"optim": "sgd", "lr": params["lr"]})

    search = Search(tmp_path, build_experiment, {"lr": [0.1]}, objective="val_loss", sampler="grid", verbose=False)
    table = search.train_data(X, Y, validation_data=(X, Y), epochs=1, batch_size=32)
    assert table["state"].tolist() == ["complete"]
    assert search.study.direction == optuna.study.StudyDirection.MINIMIZE  # val_loss: smaller is better

    def elsewhere(params, directory):
        return Experiment(tmp_path / "other", nn.Linear(5, 2), task="classif")

    with pytest.raises(ValueError, match=r"`build` returned an Experiment on .*other.*build it on the `directory`"):
        Search(tmp_path / "s2", elsewhere, {"lr": [0.1]}, objective="val_loss", sampler="grid",
               verbose=False).train_data(X, Y, validation_data=(X, Y), epochs=1)  # fmt: skip


def test_a_diverged_trial_is_a_result_of_the_search_not_an_error(tmp_path):
    # lr=1e30 makes the loss infinite: the trial fails for good (recorded, never retried) and the search goes on.
    def build_sgd(params):
        return Model(nn.Linear(5, 2), {"optim": "sgd", "lr": params["lr"]}, "mse", batch_metrics=[])

    x, y = torch.randn(32, 5), torch.randn(32, 2) * 1e3
    search = Search(tmp_path, build_sgd, {"lr": [1e30, 1e-3]}, objective="val_loss", sampler="grid", verbose=False)
    table = search.train_data(x, y, validation_data=(x, y), epochs=1, batch_size=8)
    assert table["state"].tolist() == ["fail", "complete"]
    assert "The loss or the weights became NaN or infinite" in search.study.trials[0].user_attrs["error"]
    assert search.best_params == {"lr": 1e-3}
    again = Search(tmp_path, build_sgd, {"lr": [1e30, 1e-3]}, objective="val_loss", sampler="grid", verbose=False)
    table = again.train_data(x, y, validation_data=(x, y), epochs=1, batch_size=8)
    assert table["state"].tolist() == ["fail", "complete"]
    assert len(again.study.trials) == 2  # the failed trial was not run again


class _CountEpochs(trainwell_callbacks.Callback):
    """Counts the epochs it sees; its count is its state, checkpointed like any callback's."""

    def __init__(self):
        super().__init__()
        self.epochs = 0
        self.seen_at_start = []

    def on_train_begin(self, logs):
        self.seen_at_start.append(self.epochs)

    def on_epoch_end(self, epoch_number, logs):
        self.epochs += 1

    def state_dict(self):
        return {"epochs": self.epochs}

    def load_state_dict(self, state):
        self.epochs = state["epochs"]


def test_every_trial_gets_its_own_callbacks_and_schedulers(tmp_path):
    given = _CountEpochs()
    stopper = trainwell_callbacks.EarlyStopping(monitor="val_loss", patience=1)
    search = Search(tmp_path, build, {"lr": [0.03, 0.01], "width": [4]}, objective="val_loss", sampler="grid",
                    verbose=False)  # fmt: skip
    search.train_data(X, Y, validation_data=(X[:32], Y[:32]), epochs=2, batch_size=16, callbacks=[given, stopper])
    assert given.epochs == 0 and given.seen_at_start == []  # copies trained, not the object given
    assert stopper.monitor.best_epoch is None
    made = []

    def per_trial(params):
        made.append(_CountEpochs())
        return made[-1:]

    Search(tmp_path / "factory", build, {"lr": [0.03, 0.01], "width": [4]}, objective="val_loss", sampler="grid",
           verbose=False).train_data(X, Y, validation_data=(X[:32], Y[:32]), epochs=2, batch_size=16,
                                     callbacks=per_trial)  # fmt: skip
    assert [callback.seen_at_start for callback in made] == [[0], [0]]
    assert [callback.epochs for callback in made] == [2, 2]


def test_a_callback_that_cannot_be_copied_is_refused_with_the_way_out(tmp_path):
    class Unique(trainwell_callbacks.Callback):
        def __deepcopy__(self, memo):
            raise RuntimeError("holds an open writer")

    search = Search(tmp_path, build, {"lr": [0.03], "width": [4]}, objective="loss", sampler="grid", verbose=False)
    with pytest.raises(TypeError, match=r"`callbacks`: a Unique cannot be copied .* callbacks=lambda params"):
        search.train_data(X, Y, epochs=1, batch_size=16, callbacks=[Unique()])
