"""The transformers examples run and learn: sentence ordering (the seed's experiment) and sequence classification.

Each example's ``main`` runs in this process at a reduced size (one thread, see conftest.py); what it
promises is checked on what it wrote: the test Kendall's tau clearly above the untrained model's, the
TensorBoard scalars and gradient statistics read back, a checkpoint per epoch, and an export that
``from_pretrained`` loads with the same outputs.
"""

from __future__ import annotations

import importlib.util
import random
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch

pytest.importorskip("transformers")
pytest.importorskip("datasets")
pytest.importorskip("scipy")
pytest.importorskip("tensorboard")

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def load_example(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def ordering(tmp_path_factory: pytest.TempPathFactory) -> tuple[ModuleType, Path, dict[str, Any]]:
    torch.set_num_threads(1)  # the module-scoped fixture runs before the per-test one-thread fixture
    example = load_example("transformers_sentence_ordering")
    directory = tmp_path_factory.mktemp("sentence_ordering")
    return example, directory, example.main(directory, stories=800, epochs=3, verbose=False)


def test_sentence_ordering_learns_the_order(ordering):
    _, _, results = ordering
    before, after = results["before"]["test_kendalls_tau"], results["after"]["test_kendalls_tau"]
    # Untrained, the [CLS] logits are random: tau near 0. Three short epochs already order the stories.
    assert abs(before) < 0.2
    assert after > before + 0.25 and after > 0.2  # here: -0.06 -> 0.36, the same in every run
    assert results["after"]["test_acc"] > results["before"]["test_acc"]
    assert set(results["after"]) >= {"test_loss", "test_acc", "test_mean_logits", "test_std_logits"}


def test_sentence_ordering_logs_checkpoints_and_exports(ordering):
    example, directory, results = ordering
    from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    experiment = directory / "experiment"
    assert sorted(path.name for path in experiment.glob("checkpoint_epoch_*.ckpt")) == [
        f"checkpoint_epoch_{epoch}.ckpt" for epoch in (1, 2, 3)
    ]  # save_every_epoch=True
    assert (experiment / "test_log.tsv").exists()
    runs = EventMultiplexer().AddRunsFromDirectory(str(directory / "runs")).Reload()
    tags = {tag for run in runs.Runs().values() for tag in run.get("scalars", [])}
    assert {"kendalls_tau", "loss"} <= tags  # TensorBoardLogger's add_scalars series
    assert any(tag.startswith("gradient_distributions/") for tag in tags)  # TensorBoardGradientTracker
    # The export is the tested (best) model, and its tokenizer makes the same inputs.
    tokenizer = AutoTokenizer.from_pretrained(results["export"])
    reloaded = AutoModelForTokenClassification.from_pretrained(results["export"]).eval()
    text = example.make_story(random.Random(7))["text"]
    inputs = tokenizer(text, add_special_tokens=False, return_tensors="pt")
    assert int((inputs["input_ids"] == tokenizer.cls_token_id).sum()) >= 3
    network = results["network"].eval()
    with torch.no_grad():
        assert torch.allclose(reloaded(**inputs).logits, network(dict(inputs))["logits"], atol=1e-6)
    assert (
        tokenizer(text, add_special_tokens=False)["input_ids"]
        == results["tokenizer"](text, add_special_tokens=False)["input_ids"]
    )


def test_sequence_classification_example_learns_the_topics():
    example = load_example("transformers_sequence_classification")
    results = example.main(train_samples=1_000, epochs=2, verbose=False)
    history, test = results["history"], results["test"]
    assert history[-1]["loss"] < 0.5 * history[0]["loss"]
    assert test["test_acc"] > 90 and test["test_fscore_macro"] > 0.9  # chance: 33%
