"""tinydl's README and showcase run on trainwell as written (imports aside), and report what they should."""

# ruff: noqa: N806 (the README's names: TRAINER, VALIDATOR, RUNNER)

from __future__ import annotations

import io
import math
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from tests.compat.conftest import digits_loaders, digits_sets, mlp
from tests.compat.tensorboard_files import hparams_entry, scalars
from tests.sync_guard import SyncGuard
from trainwell.compat.tinydl.metric import CrossEntropy, Metric
from trainwell.compat.tinydl.reporter import (
    ConsoleReporter,
    Reporter,
    TensorboardHparamReporter,
    TensorboardScalarReporter,
)
from trainwell.compat.tinydl.runner import Runner, Trainer, Validator
from trainwell.compat.tinydl.stage import Stage

README_GRID = """\
{'batchsize': 128, 'lr': 0.002}
{'batchsize': 128, 'lr': 0.0002}
{'batchsize': 256, 'lr': 0.002}
{'batchsize': 256, 'lr': 0.0002}
"""


class Accuracy(Metric):
    """A user's metric, as tinydl's README describes them: a name and calculate(scores, targets)."""

    def __init__(self):
        super().__init__("ACC")

    def calculate(self, scores, targets):
        self.value = (scores.argmax(dim=1) == targets).float().mean()
        return self.value


class Collector(Reporter):
    """A user's reporter that keeps every value it is told: (stage, metric name, value)."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def report(self):
        self.seen.extend((item.stage, item.metric_name, float(item.metric_value)) for item in self.reports)
        self.reports = []


class CountingLoader(DataLoader):
    """A DataLoader that counts how many times it is read from the start."""

    passes = 0

    def __iter__(self):
        self.passes += 1
        return super().__iter__()


def test_the_readme_hyperparameter_example_prints_what_the_readme_shows(capsys):
    from trainwell.compat.tinydl.Hyperparameter import Hyperparameter  # the README's path

    hparam = {"batchsize": [128, 256], "lr": [2e-3, 2e-4]}
    hyperparameter = Hyperparameter(hparam)
    for experiment in hyperparameter.get_experiments():
        print(experiment)
    assert capsys.readouterr().out == README_GRID
    # tinydl's generator was spent after one loop; trainwell's grid can be read again.
    assert list(hyperparameter.get_experiments()) == list(hyperparameter.get_experiments())
    assert len(hyperparameter.get_experiments()) == hyperparameter.num_experiments == 4


def test_the_example_module_path_and_single_values_work_as_in_tinydl():
    from trainwell.compat.tinydl.hyperparameter import Hyperparameter

    grid = Hyperparameter({"lr": [0.1, 0.01], "betas": (0.9, 0.99), "epochs": 3})
    assert grid.experiments == [
        {"lr": 0.1, "betas": (0.9, 0.99), "epochs": 3},
        {"lr": 0.01, "betas": (0.9, 0.99), "epochs": 3},
    ]
    with pytest.raises(TypeError, match=r"`hparam` must be a dict"):
        Hyperparameter([("lr", [0.1])])


def test_the_readme_trainer_validator_and_runner_write_one_tensorboard_run():
    torch.manual_seed(0)
    train_loader, val_loader, _ = digits_loaders(batch_size=100)
    experiment = {"batchsize": 100, "lr": 1e-2}
    model = mlp()
    optimizer = torch.optim.Adam(model.parameters(), lr=experiment["lr"])
    loss_fn = nn.CrossEntropyLoss()

    # The README's Reporter section (the validation reporter as in its showcase).
    tbscalar_reporter = TensorboardScalarReporter(hparam=experiment)
    tbscalar_reporter.add_metrics([CrossEntropy()])
    tbscalar_reporter_val = TensorboardScalarReporter(hparam=experiment)
    tbscalar_reporter_val.add_metrics([CrossEntropy()])
    tbhparam_reporter = TensorboardHparamReporter(hparam=experiment)
    tbhparam_reporter.add_metrics([CrossEntropy()])

    # The README's Trainer, Validator and Runner sections, in order.
    TRAINER = Trainer(loader=train_loader, optimizer=optimizer, loss_fn=loss_fn, batch_reporters=tbscalar_reporter)
    TRAINER.train(model)
    VALIDATOR = Validator(loader=val_loader, batch_reporters=tbscalar_reporter_val)
    VALIDATOR.validate(model)
    RUNNER = Runner(model=model, trainer=TRAINER, validator=VALIDATOR, run_reporters=tbhparam_reporter)
    RUNNER.run(3)

    runs = sorted(Path("runs").iterdir())
    assert len(runs) == 1 and runs[0].name.endswith("_batchsize_100_lr_0.01")  # one grid point, one run
    written = scalars(runs[0])
    # One training step per batch: the standalone epoch, then the run's three.
    assert [step for step, _ in written["CE_TRAIN"]] == list(range(4 * len(train_loader)))
    assert [step for step, _ in written["CE_VALIDATION"]] == list(range(4 * len(val_loader)))
    first_val = sum(value for _, value in written["CE_VALIDATION"][: len(val_loader)])
    last_val = sum(value for _, value in written["CE_VALIDATION"][-len(val_loader) :])
    assert last_val < 0.7 * first_val  # it learned
    # The HParams entry: the grid point and the final epoch's values, as the run computed them.
    hparams, metrics = hparams_entry(runs[0] / "hparams")
    assert hparams == {"batchsize": 100.0, "lr": pytest.approx(1e-2)}
    final = RUNNER.history[-1]
    assert metrics == {"CE_TRAIN": pytest.approx(final["CE"]), "CE_VALIDATION": pytest.approx(final["val_CE"])}
    assert RUNNER.history[-1]["epoch"] == 3 and TRAINER.epochs_done == 4


def test_the_showcase_grid_gives_each_point_its_run_and_hparams_entry():
    # example_alexnet_mnist.py's loop, on the digits with a small network.
    from trainwell.compat.tinydl.hyperparameter import Hyperparameter  # the example's path

    train_ds, validation_ds, _ = digits_sets(train=400, valid=100)
    hparam = {"batchsize": [100, 200], "lr": [2e-3]}
    hyperparameter = Hyperparameter(hparam)
    finals = {}
    for experiment in hyperparameter.get_experiments():
        train_loader = DataLoader(dataset=train_ds, batch_size=experiment["batchsize"], shuffle=True)
        val_loader = DataLoader(dataset=validation_ds, batch_size=experiment["batchsize"])
        model = mlp()
        optimizer = torch.optim.Adam(params=model.parameters(), lr=experiment["lr"], weight_decay=1e-4)
        tbscalar_reporter = TensorboardScalarReporter(hparam=experiment)
        tbscalar_reporter.add_metrics([CrossEntropy()])
        tbscalar_reporter_val = TensorboardScalarReporter(hparam=experiment)
        tbscalar_reporter_val.add_metrics([CrossEntropy()])
        tbhparam_reporter = TensorboardHparamReporter(hparam=experiment)
        tbhparam_reporter.add_metrics([CrossEntropy()])
        TRAINER = Trainer(loader=train_loader, optimizer=optimizer, loss_fn=nn.CrossEntropyLoss(),
                          batch_reporters=tbscalar_reporter)  # fmt: skip
        VALIDATOR = Validator(loader=val_loader, batch_reporters=tbscalar_reporter_val)
        RUNNER = Runner(model=model, trainer=TRAINER, validator=VALIDATOR, run_reporters=tbhparam_reporter)
        RUNNER.run(2)
        finals[experiment["batchsize"]] = RUNNER.history[-1]

    runs = sorted(Path("runs").iterdir())
    assert [run.name.split("_", 3)[-1] for run in runs] == ["batchsize_100_lr_0.002", "batchsize_200_lr_0.002"]
    for run, batchsize in zip(runs, (100, 200)):
        hparams, metrics = hparams_entry(run / "hparams")
        assert hparams == {"batchsize": batchsize, "lr": pytest.approx(2e-3)}
        assert metrics["CE_VALIDATION"] == pytest.approx(finals[batchsize]["val_CE"])
        assert len(scalars(run)["CE_TRAIN"]) == 2 * math.ceil(400 / batchsize)


def test_epoch_values_cover_the_whole_epoch_and_run_values_are_the_last_epochs():
    torch.manual_seed(1)
    train_loader, val_loader, _ = digits_loaders(batch_size=64)  # 600 = 9 * 64 + 24: a short last batch
    model = mlp()
    per_batch, per_epoch, per_run = Collector(), Collector(), Collector()
    for reporter in (per_batch, per_epoch, per_run):
        reporter.add_metrics([Accuracy(), CrossEntropy()])
    trainer = Trainer(train_loader, torch.optim.Adam(model.parameters(), lr=1e-2), nn.CrossEntropyLoss(),
                      batch_reporters=per_batch, epoch_reporters=per_epoch, verbose=False)  # fmt: skip
    validator = Validator(val_loader, epoch_reporters=per_epoch, verbose=False)
    history = Runner(model, trainer, validator, run_reporters=per_run, verbose=False).run(2)

    batch_acc = [value for stage, name, value in per_batch.seen if name == "ACC"]
    sizes = [64] * 9 + [24]
    assert len(batch_acc) == 2 * len(sizes)
    second_epoch = batch_acc[len(sizes) :]
    whole_epoch = sum(value * size for value, size in zip(second_epoch, sizes)) / 600
    reported = {(stage, name): value for stage, name, value in per_epoch.seen[-4:]}
    assert reported[(Stage.TRAIN, "ACC")] == pytest.approx(whole_epoch, abs=1e-6)
    assert reported[(Stage.TRAIN, "ACC")] != pytest.approx(second_epoch[-1], abs=1e-6)  # tinydl's last-batch value
    # Validation: the final model on the whole validation set.
    x_val, y_val = val_loader.dataset.tensors
    model.eval()
    with torch.no_grad():
        expected_ce = float(nn.functional.cross_entropy(model(x_val), y_val))
        expected_acc = float((model(x_val).argmax(1) == y_val).float().mean())
    assert reported[(Stage.VALIDATION, "CE")] == pytest.approx(expected_ce, rel=1e-5)
    assert reported[(Stage.VALIDATION, "ACC")] == pytest.approx(expected_acc)
    # The run reporter gets the last epoch's values, training then validation.
    assert per_run.seen == [
        (Stage.TRAIN, "ACC", pytest.approx(history[-1]["ACC"])),
        (Stage.TRAIN, "CE", pytest.approx(history[-1]["CE"])),
        (Stage.VALIDATION, "ACC", pytest.approx(expected_acc)),
        (Stage.VALIDATION, "CE", pytest.approx(expected_ce, rel=1e-5)),
    ]


def test_run_reporters_do_not_read_the_loaders_again():
    train_ds, valid_ds, _ = digits_sets(train=128, valid=64)
    passes = []
    for run_reporters in (None, ConsoleReporter(file=io.StringIO())):
        if run_reporters is not None:
            run_reporters.add_metrics(CrossEntropy())
        train, valid = CountingLoader(train_ds, batch_size=32), CountingLoader(valid_ds, batch_size=32)
        model = mlp()
        trainer = Trainer(train, torch.optim.SGD(model.parameters(), lr=0.1), nn.CrossEntropyLoss(), verbose=False)
        Runner(model, trainer, Validator(valid, verbose=False), run_reporters=run_reporters, verbose=False).run(2)
        passes.append((train.passes, valid.passes))
    assert passes[0] == passes[1]  # reporting the run costs no pass over the data (tinydl made one per loader)


def test_console_reporters_print_tinydls_lines(capsys):
    train_loader, val_loader, _ = digits_loaders(batch_size=200, train=400, valid=200)
    console = ConsoleReporter()
    console.add_metrics(CrossEntropy())
    model = mlp()
    optimizer = torch.optim.Adam(model.parameters())
    TRAINER = Trainer(loader=train_loader, optimizer=optimizer, loss_fn=nn.CrossEntropyLoss(), batch_reporters=console,
                      verbose=False)  # fmt: skip
    TRAINER.train(model)
    results = Validator(loader=val_loader, epoch_reporters=console, verbose=False).validate(model)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and all(
        line.startswith("(ConsoleReporter) stage: TRAIN, metric: CE, value: ") for line in lines[:2]
    )
    assert lines[2] == f"(ConsoleReporter) stage: VALIDATION, metric: CE, value: {results['test_CE']:.6f}"
    assert "test_loss" not in results  # tinydl's Validator has no loss; Validator(loss_fn=...) adds one


def test_reporters_keep_one_metric_per_name_and_check_their_arguments():
    reporter = ConsoleReporter()
    reporter.add_metrics([CrossEntropy(), CrossEntropy(), Accuracy()])
    assert [metric.name for metric in reporter.metrics] == ["CE", "ACC"]
    reporter.remove_metrics(CrossEntropy())
    assert [metric.name for metric in reporter.metrics] == ["ACC"]
    reporter.calculate_metrics(Stage.TEST, torch.tensor([[0.0, 1.0], [1.0, 0.0]]), torch.tensor([1, 1]))
    assert [(item.stage, float(item.metric_value)) for item in reporter.reports] == [(Stage.TEST, 0.5)]
    reporter.flush_metrics()
    assert reporter.metrics == []
    with pytest.raises(TypeError, match=r"`metrics` must hold Metric objects"):
        reporter.add_metrics(["CE"])
    with pytest.raises(TypeError, match=r"`batch_reporters` must hold Reporter objects"):
        Trainer(None, None, None, batch_reporters=[CrossEntropy()])


def test_a_metric_returning_something_else_than_a_number_is_named():
    class Broken(Metric):
        def calculate(self, scores, targets):
            return "high"

    reporter = ConsoleReporter()
    reporter.add_metrics(Broken())
    with pytest.raises(TypeError, match=r"Broken.calculate\(scores, targets\) must return one number"):
        reporter.calculate_metrics(Stage.TRAIN, torch.zeros(2, 2), torch.zeros(2))


def _syncs(samples):
    x, y = torch.randn(samples, 5), torch.randint(0, 3, (samples,))
    loader = DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=4)
    epoch = ConsoleReporter(file=io.StringIO())
    epoch.add_metrics([CrossEntropy(), Accuracy()])
    model = nn.Linear(5, 3)
    trainer = Trainer(loader, torch.optim.SGD(model.parameters(), lr=0.1), nn.CrossEntropyLoss(),
                      epoch_reporters=epoch, device="cpu", verbose=False)  # fmt: skip
    with SyncGuard(strict=False) as guard:
        Runner(
            model, trainer, Validator(loader, epoch_reporters=epoch, verbose=False), device="cpu", verbose=False
        ).run(1)
    return len(guard.calls)


def test_epoch_reporters_cost_no_host_sync_per_batch():
    assert _syncs(16) == _syncs(160)
