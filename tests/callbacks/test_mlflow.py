"""MLFlowLogger against a real MLflow SQLite store, read back with MlflowClient.

Creating an MLflow database runs all its schema migrations (5-10 s on a busy CPU), so the module shares
one store, each test logging into its own experiment, and the freshly migrated empty database is kept
in pytest's cache (per MLflow version) to be copied by later sessions.
"""

import os
import shutil
import sys

# The dev install has MLflow: these tests run against a real store, never skip silently.
import mlflow
import mlflow.tracking as mlflow_tracking
import pytest
import torch
from torch import nn

from tests.learning_rates import LearningRates
from trainwell import Callback, Model
from trainwell.callbacks.lr_scheduler import StepLR
from trainwell.callbacks.mlflow import MLFlowLogger
from trainwell.callbacks.mlflow_helpers import resolve_tracking_uri
from trainwell.storage.files import load_state, save_state

# SQLAlchemy 2.1 deprecates a loader option MLflow's store still uses: not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy:DeprecationWarning")


def _empty_store(directory, cache):
    """A new, migrated MLflow database in `directory`: a copy of the cached one when there is one."""
    database = directory / "mlflow.db"
    template = None if cache is None else cache.mkdir(f"mlflow-{mlflow.__version__}-sqlite") / "empty.db"
    if template is not None and template.exists():
        shutil.copyfile(template, database)
        return database
    mlflow_tracking.MlflowClient(tracking_uri=f"sqlite:///{database}")  # creates the tables
    if template is not None:
        partial = template.with_name(f"empty.{os.getpid()}.db")
        shutil.copyfile(database, partial)
        os.replace(partial, template)  # atomic: a concurrent session never copies half a file
    return database


@pytest.fixture(scope="module")
def store(tmp_path_factory, request):
    directory = tmp_path_factory.mktemp("mlflow")
    database = _empty_store(directory, getattr(request.config, "cache", None))
    with pytest.MonkeyPatch.context() as patch:
        # MLflow's default artifact root is relative to the working directory: keep it in the tmp dir.
        patch.chdir(directory)
        uri = f"sqlite:///{database}"
        yield mlflow_tracking.MlflowClient(tracking_uri=uri), uri


def _model(optimizer="sgd"):
    torch.manual_seed(0)
    return Model(nn.Linear(3, 2), optimizer, "cross_entropy", batch_metrics=["accuracy"])


def _data():
    torch.manual_seed(1)
    return torch.randn(12, 3), torch.randint(0, 2, (12,))


def _history(client, run_id, key):
    return [(metric.step, metric.value) for metric in client.get_metric_history(run_id, key)]


def _only_run(client, experiment_name):
    experiment = client.get_experiment_by_name(experiment_name)
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 1
    return runs[0]


class BatchLosses(Callback):
    def __init__(self):
        self.losses = []

    def on_train_batch_end(self, batch_number, logs):
        self.losses.append(logs["loss"])


class FailAt(Callback):
    def __init__(self, epoch, error):
        self.epoch, self.error = epoch, error

    def on_epoch_end(self, epoch_number, logs):
        if epoch_number == self.epoch:
            raise self.error


def test_epoch_values_params_tags_and_finished_status(store):
    client, uri = store
    x, y = _data()
    model = _model({"optim": "adam", "lr": 0.01})
    logger = MLFlowLogger("epochs", tracking_uri=uri, tags={"team": "vision"})
    rates = LearningRates()
    halving = StepLR(step_size=1, gamma=0.5)  # steps at on_epoch_end, before the logger writes
    history = model.fit(
        x, y, validation_data=(x, y), batch_size=4, epochs=3, verbose=False, callbacks=[halving, logger, rates]
    )

    run = _only_run(client, "epochs")
    assert run.info.run_id == logger.run_id
    assert run.info.status == "FINISHED"
    for key in ("loss", "acc", "val_loss", "val_acc", "time"):
        assert _history(client, logger.run_id, key) == [(epoch["epoch"], epoch[key]) for epoch in history]
    # The history carries no lr (Poutyne's contract): the logger writes the rate each epoch trained with.
    assert all("lr" not in epoch for epoch in history)
    assert rates.values() == [0.01, 0.005, 0.0025]
    assert _history(client, logger.run_id, "lr") == list(zip((1, 2, 3), rates.values()))
    assert not any(key.startswith("batch_") for key in run.data.metrics)
    params = run.data.params
    assert params["optimizer"] == "Adam"
    assert params["optimizer.lr"] == "0.01"
    assert params["optimizer.betas"] == "(0.9, 0.999)"
    assert "optimizer.foreach" not in params
    assert params["loss"] == "CrossEntropyLoss"
    assert params["network"] == "Linear"
    assert params["network.parameters"] == "8"
    assert params["metrics"] == "acc"
    assert (params["epochs"], params["steps_per_epoch"], params["validation_steps"]) == ("3", "3", "3")
    assert params["batches_per_step"] == "1"
    assert run.data.tags["team"] == "vision"
    assert run.data.tags["trainwell.version"]

    # evaluate logs test values at the last trained epoch, without touching the epoch `time` series.
    test_loss, test_acc = model.evaluate(x, y, verbose=False, callbacks=[logger])
    assert _history(client, logger.run_id, "test_loss") == [(3, test_loss)]
    assert _history(client, logger.run_id, "test_acc") == [(3, test_acc)]
    assert len(_history(client, logger.run_id, "test_time")) == 1
    assert len(_history(client, logger.run_id, "time")) == 3
    assert client.get_run(logger.run_id).info.status == "FINISHED"


def test_batch_granularity_logs_every_training_batch_at_the_global_step(store):
    client, uri = store
    x, y = _data()
    recorder = BatchLosses()
    logger = MLFlowLogger("batches", uri, batch_granularity=True)
    history = _model().fit(x, y, batch_size=4, epochs=2, verbose=False, callbacks=[recorder, logger])

    assert _history(client, logger.run_id, "batch_loss") == list(enumerate(recorder.losses, 1))
    assert len(recorder.losses) == 6
    assert [step for step, _ in _history(client, logger.run_id, "batch_acc")] == [1, 2, 3, 4, 5, 6]
    assert _history(client, logger.run_id, "loss") == [(1, history[0]["loss"]), (2, history[1]["loss"])]


def test_resumed_training_logs_into_the_same_run(store, tmp_path):
    client, uri = store
    x, y = _data()
    model = _model()
    first = MLFlowLogger("resume", uri)
    history = model.fit(x, y, batch_size=4, epochs=2, verbose=False, callbacks=[first])
    save_state(tmp_path / "logger.safetensors", first.state_dict())
    assert client.get_run(first.run_id).info.status == "FINISHED"

    second = MLFlowLogger("resume", uri)
    second.load_state_dict(load_state(tmp_path / "logger.safetensors"))
    # The total number of epochs grows from 2 to 4, but MLflow params are immutable: a warning, not a crash.
    with pytest.warns(UserWarning, match=r"epochs: logged '2', now '4'"):
        history += model.fit(x, y, batch_size=4, epochs=4, initial_epoch=3, verbose=False, callbacks=[second])

    run = _only_run(client, "resume")
    assert second.run_id == first.run_id == run.info.run_id
    assert run.info.status == "FINISHED"
    assert _history(client, run.info.run_id, "loss") == [(epoch["epoch"], epoch["loss"]) for epoch in history]
    assert run.data.params["epochs"] == "2"


class CrashAfterCheckpoint(Callback):
    """Checkpoints the model and the logger after batch 2 of epoch 2, then crashes during batch 3."""

    def __init__(self, logger, path):
        self.logger, self.path = logger, path

    def on_train_batch_end(self, batch_number, logs):
        if self.model.state.epoch == 2 and batch_number == 2:
            save_state(self.path, {"model": self.model.training_state(), "logger": self.logger.state_dict()})
        if self.model.state.epoch == 2 and batch_number == 3:
            raise RuntimeError("crash")


def test_mid_epoch_resume_leaves_no_gap_in_batch_values(store, tmp_path):
    client, uri = store
    x, y = _data()
    uninterrupted = MLFlowLogger("batches-uninterrupted", uri, batch_granularity=True)
    _model().fit(x, y, batch_size=4, epochs=3, verbose=False, callbacks=[uninterrupted])

    first = MLFlowLogger("batches-resumed", uri, batch_granularity=True)
    with pytest.raises(RuntimeError, match="crash"):
        _model().fit(
            x, y, batch_size=4, epochs=3, verbose=False, callbacks=[first, CrashAfterCheckpoint(first, tmp_path / "c")]
        )
    checkpoint = load_state(tmp_path / "c")
    model = _model()
    initial_epoch = model.restore_training_state(checkpoint["model"])
    second = MLFlowLogger("batches-resumed", uri, batch_granularity=True)
    second.load_state_dict(checkpoint["logger"])
    model.fit(x, y, batch_size=4, epochs=3, initial_epoch=initial_epoch, verbose=False, callbacks=[second])

    expected = _history(client, uninterrupted.run_id, "batch_loss")
    assert [step for step, _ in expected] == list(range(1, 10))
    # trainwell's resume is exact, so the resumed run's values are the uninterrupted run's, bit for bit.
    assert _history(client, second.run_id, "batch_loss") == expected
    assert _history(client, second.run_id, "loss") == _history(client, uninterrupted.run_id, "loss")


def test_restored_run_missing_from_the_store_is_a_clear_error(store):
    _, uri = store
    x, y = _data()
    logger = MLFlowLogger("missing", uri)
    logger.load_state_dict({"run_id": "0123456789abcdef0123456789abcdef"})
    with pytest.raises(ValueError, match=r"cannot find the MLflow run '0123456789abcdef.*pass the same `tracking_uri`"):
        _model().fit(x, y, batch_size=4, epochs=1, verbose=False, callbacks=[logger])


@pytest.mark.parametrize(("error", "status"), [(RuntimeError("diverged"), "FAILED"), (KeyboardInterrupt(), "KILLED")])
def test_context_manager_marks_a_failed_training(store, error, status):
    client, uri = store
    x, y = _data()
    name = f"failure-{status}"
    with pytest.raises(type(error)), MLFlowLogger(name, uri) as logger:
        _model().fit(x, y, batch_size=4, epochs=3, verbose=False, callbacks=[logger, FailAt(2, error)])
    run = _only_run(client, name)
    assert run.info.status == status
    assert [step for step, _ in _history(client, logger.run_id, "loss")] == [1, 2]


def test_context_manager_finishes_a_run_left_open(store):
    client, uri = store
    x, y = _data()
    with MLFlowLogger("open", uri, terminate_on_end=False) as logger:
        _model().fit(x, y, batch_size=4, epochs=1, verbose=False, callbacks=[logger])
        assert client.get_run(logger.run_id).info.status == "RUNNING"
    assert client.get_run(logger.run_id).info.status == "FINISHED"


def test_failure_hook_marks_the_run_failed_without_a_with_block(store):
    client, uri = store
    x, y = _data()
    callbacks = [MLFlowLogger("failure-hook", uri), FailAt(2, RuntimeError("diverged"))]
    with pytest.raises(RuntimeError, match="diverged"):
        _model().fit(x, y, batch_size=4, epochs=3, verbose=False, callbacks=callbacks)
    assert client.get_run(callbacks[0].run_id).info.status == "FAILED"


def test_poutyne_style_logging_api(store):
    client, uri = store
    logger = MLFlowLogger(experiment_name="manual", tracking_uri=uri)
    logger.log_config_params({"data": {"batch_size": 16, "augment": ["flip", "crop"]}, "seed": 7})
    logger.log_param("note", "first try")
    logger.log_metrics({"score": 0.5, "ignored": "text"}, step=2)
    logger.log_metric("score", 0.75, step=3)
    logger.set_tag("stage", "dev")
    logger.set_tags({"owner": "me"})
    logger.end_run("FINISHED")

    run = client.get_run(logger.run_id)
    assert run.data.params == {
        "data.batch_size": "16",
        "data.augment.0": "flip",
        "data.augment.1": "crop",
        "seed": "7",
        "note": "first try",
    }
    assert _history(client, logger.run_id, "score") == [(2, 0.5), (3, 0.75)]
    assert "ignored" not in run.data.metrics
    assert (run.data.tags["stage"], run.data.tags["owner"]) == ("dev", "me")
    assert run.info.status == "FINISHED"


def test_tracking_uri_defaults_to_mlflow_configuration(store, monkeypatch):
    _, uri = store
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    assert MLFlowLogger().tracking_uri == uri
    assert resolve_tracking_uri("runs/mlflow.db").startswith("sqlite:////")
    assert resolve_tracking_uri("runs/mlflow.db").endswith("/runs/mlflow.db")


def test_argument_errors_name_the_argument(store):
    _, uri = store
    with pytest.raises(ValueError, match=r"`run_id` already belongs to an experiment.*run_id='abc'"):
        MLFlowLogger("name", uri, run_id="abc")
    with pytest.raises(ValueError, match=r"Pass `experiment_name` or `experiment_id`, not both"):
        MLFlowLogger("name", uri, experiment_id="1")
    with pytest.raises(TypeError, match=r"`batch_granularity` must be True or False. Received: .*='yes'"):
        MLFlowLogger("name", uri, batch_granularity="yes")
    with pytest.raises(TypeError, match=r"`tracking_uri` must be a string.*Received: tracking_uri of type int"):
        MLFlowLogger("name", 5000)
    with pytest.raises(TypeError, match=r"`config_params` must be a mapping"):
        MLFlowLogger("name", uri).log_config_params(["lr", 0.1])
    with pytest.raises(ValueError, match=r"`status` must be one of \['FINISHED', 'FAILED', 'KILLED'\]"):
        MLFlowLogger("name", uri).end_run("DONE")


def test_missing_mlflow_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # makes `import mlflow` raise ImportError
    with pytest.raises(ImportError, match=r"MLFlowLogger needs MLflow.*pip install 'trainwell\[mlflow\]'"):
        MLFlowLogger()


def test_get_git_commit_reads_a_real_repository(tmp_path, monkeypatch):
    import trainwell.callbacks.mlflow as mlflow_module
    from trainwell import _get_git_commit

    git = pytest.importorskip("git")
    repository = git.Repo.init(tmp_path / "repo")
    (tmp_path / "repo" / "train.py").write_text("print('hi')\n")
    repository.index.add(["train.py"])
    actor = git.Actor("t", "t@example.org")
    commit = repository.index.commit("first", author=actor, committer=actor)
    (tmp_path / "repo" / "sub").mkdir()
    assert _get_git_commit(tmp_path / "repo" / "sub") == commit.hexsha  # found from a subdirectory
    (tmp_path / "elsewhere").mkdir()
    with pytest.warns(UserWarning, match=r"is in no git repository"):
        assert _get_git_commit(tmp_path / "elsewhere") is None
    monkeypatch.setattr(mlflow_module, "git", None)  # as without GitPython
    with pytest.warns(UserWarning, match=r"GitPython cannot be imported"):
        assert _get_git_commit(tmp_path / "repo") is None
