"""``trainwell``'s entry point called in-process (the function the command runs): every mistake of a config
gets exit status 2 and a message naming the key, what was received and the closest valid names; a training
error gets 1. The real command in subprocesses (signals, resume) is tested in test_command.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.cli.helpers import TINY_CONFIG
from trainwell.cli import main
from trainwell.storage.checkpoints import write_checkpoint


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "run.yaml"
    path.write_text(TINY_CONFIG)
    return path


def _fails(capsys: pytest.CaptureFixture[str], *arguments: str, status: int = 2) -> str:
    assert main(list(arguments)) == status
    err = capsys.readouterr().err
    if status == 2:
        assert "Traceback" not in err
    return err


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        (
            ["--network.class_path", "tests.cli.parts.make_netwrk"],
            ["`network.class_path` cannot be imported", "'tests.cli.parts.make_netwrk'", "Did you mean 'make_network'"],
        ),
        (["--network.class_path", "nowhere.Net"], ["no module named 'nowhere'"]),
        (
            ["--network.init_args.hiden", "3"],
            ["Unknown option '--network.init_args.hiden'", "Did you mean '--network.init_args.hidden'"],
        ),
        (["--epochs", "three"], ["`epochs` must be an int. Received: epochs='three'."]),
        (["--epochs", "0"], ["`epochs` must be a positive int. Received: epochs=0."]),
        (["--epoch", "3"], ["Unknown option '--epoch'. Did you mean '--epochs'"]),
        (["--optimizer", "adm"], ["Unknown optimizer name for `optimizer`", "Received: optimizer='adm'", "'adam'"]),
        (
            ["--loss_function", "{class_path: torch.nn.CrossEntropyLoss, init_args: {label_smooth: 0.1}}"],
            ["`loss_function`: torch.nn.CrossEntropyLoss takes no argument 'label_smooth'", "'label_smoothing'"],
        ),
        (["--network.class_path", "tests.cli.parts.not_a_network"], ["must give a torch.nn.Module", "list"]),
        (["--data.class_path", "tests.cli.parts.broken_network"], ["`data.class_path` must give the splits"]),
        (
            ["--lr_schedulers", "[{class_path: trainwell.StepLR, init_args: {step_sise: 1}}]"],
            ["`lr_schedulers[0]`", "step_sise"],
        ),
    ],
)
def test_a_bad_key_or_value_is_named(config, capsys, arguments, expected) -> None:
    config.write_text(TINY_CONFIG.replace("  init_args: {hidden: 8}\n", ""))  # other networks take no `hidden`
    err = _fails(capsys, "fit", "--config", str(config), *arguments)
    for text in expected:
        assert text in err


def test_a_misspelt_key_in_the_file_lists_the_close_keys(config, capsys) -> None:
    config.write_text(TINY_CONFIG.replace("init_args: {hidden: 8}", "init_args: {hiden: 8}"))
    err = _fails(capsys, "fit", "--config", str(config))
    assert "Unknown key 'network.init_args.hiden'" in err and "Did you mean 'hidden'?" in err
    assert "Valid keys of network.init_args: 'classes', 'hidden'." in err
    config.write_text(TINY_CONFIG + "seeed: 3\n")
    assert "Unknown key 'seeed'. Did you mean 'seed'?" in _fails(capsys, "fit", "--config", str(config))
    config.write_text("network: [1, 2]\n")
    assert "`network` must be a mapping with `class_path`" in _fails(capsys, "fit", "--config", str(config))
    assert "`--config` cannot be read" in _fails(capsys, "fit", "--config", "missing.yaml")


def test_a_directory_holding_another_config_is_not_resumed(config, capsys) -> None:
    assert main(["fit", "--config", str(config), "--print_config"]) == 0
    saved = Path("runs/reference/config.yaml")
    saved.parent.mkdir(parents=True)
    saved.write_text(capsys.readouterr().out)
    assert yaml.safe_load(saved.read_text())["batch_size"] == 16
    # A directory holding a checkpoint holds a run (the checkpoint's content does not matter here).
    write_checkpoint(saved.parent / "checkpoints", "epoch_0001", {"weights.safetensors": b"unread"}, {"epoch": 1})
    before = saved.read_text()
    err = _fails(capsys, "fit", "--config", str(config), "--batch_size", "8")
    assert "holds a run of another config" in err and "batch_size: 16 there, 8 here" in err
    assert saved.read_text() == before  # untouched, and nothing trained
    assert sorted(path.name for path in saved.parent.iterdir()) == ["checkpoints", "config.yaml"]


def test_a_failed_first_call_does_not_block_another_config(config, capsys) -> None:
    config.write_text(TINY_CONFIG.replace("  init_args: {hidden: 8}\n", ""))
    # A training error in the first call leaves a config.yaml and no checkpoint: nothing to resume...
    _fails(capsys, "fit", "--config", str(config), "--network.class_path", "tests.cli.parts.broken_network", status=1)
    assert Path("runs/reference/config.yaml").is_file() and not Path("runs/reference/checkpoints").exists()
    # ...so another config may start there: it gets as far as building its (here misnamed) optimizer.
    err = _fails(capsys, "fit", "--config", str(config), "--optimizer", "adm")
    assert "Unknown optimizer name for `optimizer`" in err and "another config" not in err


def test_a_training_error_exits_1_with_its_traceback(config, capsys) -> None:
    config.write_text(TINY_CONFIG.replace("  init_args: {hidden: 8}\n", ""))
    err = _fails(
        capsys, "fit", "--config", str(config), "--network.class_path", "tests.cli.parts.broken_network",
        "--directory", "runs/broken", status=1,
    )  # fmt: skip
    assert "Traceback" in err and "trainwell fit: failed with ValueError" in err
    assert "cannot take the first batch" in err


def test_other_subcommands_refuse_what_is_not_a_run(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert "is not a directory" in _fails(capsys, "show", "nowhere")
    assert "`DIR` must be a run directory written by `trainwell fit`" in _fails(capsys, "test", str(tmp_path))
    assert "`DIR` must be a run directory" in _fails(capsys, "predict", str(tmp_path))
    assert "`--config` cannot be read" in _fails(capsys, "search", "--config", "x.yaml")
    assert "unknown subcommand 'fti'. Did you mean 'fit'?" in _fails(capsys, "fti")
    assert main(["--help"]) == 0 and "Exit status: 0 done" in capsys.readouterr().out


def test_the_digits_example_config_resolves(capsys, monkeypatch) -> None:
    root = Path(__file__).resolve().parents[2]
    monkeypatch.chdir(root)  # its class paths are examples.digits.*, from the repository's root
    assert main(["fit", "--config", "examples/configs/digits.yaml", "--print_config"]) == 0
    resolved = yaml.safe_load(capsys.readouterr().out)
    assert resolved["network"] == {"class_path": "examples.digits.make_network", "init_args": {"num_classes": 10}}
    assert resolved["data"]["class_path"] == "examples.digits.load_splits"
    assert resolved["lr_schedulers"] == [{"class_path": "trainwell.CosineAnnealingLR", "init_args": {"T_max": 12}}]
    assert resolved["epochs"] == 12 and resolved["task"] == "classif"


def test_the_strategy_key_is_checked_like_the_others(config, capsys) -> None:
    err = _fails(capsys, "fit", "--config", str(config), "--strategy", "fdsp")
    assert "`strategy` must be 'ddp', 'fsdp'" in err and "Received: strategy='fdsp'" in err
    err = _fails(capsys, "fit", "--config", str(config), "--strategy", "fsdp")  # one process: nothing to shard over
    assert "start the script with torchrun" in err
