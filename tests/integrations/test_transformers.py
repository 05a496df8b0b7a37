"""trainwell.integrations.transformers on real (tiny) BERT models built from configs: no download, no mock."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn

pytest.importorskip("transformers")
pytest.importorskip("datasets")

from transformers import (
    AutoModelForSequenceClassification,
    BertForSequenceClassification,
    DataCollatorWithPadding,
    PreTrainedTokenizerFast,
)

from tests.integrations.tiny import learnable_dataset, tiny_bert_config
from trainwell import Experiment, Model
from trainwell.integrations.transformers import (
    EpochMetricWrapper,
    MetricWrapper,
    ModelLoss,
    ModelWrapper,
    TransformerCollator,
    export_pretrained,
    is_transformers_model,
)
from trainwell.metrics import BatchMetric


def classifier(seed: int = 0) -> BertForSequenceClassification:
    torch.manual_seed(seed)
    return BertForSequenceClassification(tiny_bert_config(num_labels=2))


def samples() -> list[dict[str, torch.Tensor]]:
    return [
        {"input_ids": torch.tensor([5, 6, 7]), "attention_mask": torch.tensor([1, 1, 0]), "labels": torch.tensor(1)},
        {"input_ids": torch.tensor([8, 9, 0]), "attention_mask": torch.tensor([1, 1, 0]), "labels": torch.tensor(0)},
    ]


# -- TransformerCollator ---------------------------------------------------------------------------------------
def test_collator_without_y_keys_gives_nan_targets_and_keeps_everything():
    inputs, targets = TransformerCollator()(samples())
    assert sorted(inputs) == ["attention_mask", "input_ids", "labels"]
    assert targets.shape == (2,) and bool(targets.isnan().all())


def test_collator_with_one_key_copies_or_removes_it():
    inputs, targets = TransformerCollator(y_keys="labels")(samples())
    assert torch.equal(targets, torch.tensor([1, 0])) and "labels" in inputs
    inputs, targets = TransformerCollator(y_keys="labels", remove_labels=True)(samples())
    assert torch.equal(targets, torch.tensor([1, 0])) and "labels" not in inputs


def test_collator_with_a_list_removes_only_label_fields():
    inputs, targets = TransformerCollator(y_keys=["labels", "input_ids"], remove_labels=True)(samples())
    assert sorted(targets) == ["input_ids", "labels"]
    assert sorted(inputs) == ["attention_mask", "input_ids"]  # input_ids is copied, labels moved
    assert torch.equal(inputs["input_ids"], targets["input_ids"])


def test_collator_names_a_missing_key_and_lists_the_present_ones():
    with pytest.raises(KeyError, match=r"no 'label_ids'; its keys are \['attention_mask', 'input_ids', 'labels'\]"):
        TransformerCollator(y_keys=["labels", "label_ids"])(samples())


def test_collator_renames_label_through_the_default_collator_and_uses_a_custom_one():
    raw = [{"input_ids": [5, 6, 7], "label": 1}, {"input_ids": [8], "label": 0}]
    tokenizer = _tokenizer()
    inputs, targets = TransformerCollator("labels", custom_collator=DataCollatorWithPadding(tokenizer))(raw)
    assert inputs["input_ids"].shape == (2, 3) and torch.equal(inputs["attention_mask"][1], torch.tensor([1, 0, 0]))
    assert torch.equal(targets, torch.tensor([1, 0]))


def test_collator_checks_its_arguments():
    with pytest.raises(TypeError, match="y_keys"):
        TransformerCollator(y_keys=3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="custom_collator"):
        TransformerCollator(custom_collator="pad")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="collator must return a dict"):
        TransformerCollator(custom_collator=lambda batch: torch.zeros(2))(samples())


def _tokenizer() -> PreTrainedTokenizerFast:
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {"[PAD]": 0, "[UNK]": 1, **{f"w{i}": i for i in range(2, 64)}}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="[PAD]", unk_token="[UNK]")


# -- ModelWrapper ---------------------------------------------------------------------------------------------
def test_wrapper_unpacks_the_inputs_and_keeps_the_parameters():
    transformer = classifier()
    wrapper = ModelWrapper(transformer)
    inputs, _ = TransformerCollator()(samples())
    outputs = wrapper(inputs)
    assert torch.equal(outputs["logits"], transformer(**inputs)["logits"]) and outputs["loss"].dim() == 0
    assert [p is q for p, q in zip(wrapper.parameters(), transformer.parameters())] == [True] * len(
        list(transformer.parameters())
    )
    assert repr(wrapper).startswith("ModelWrapper(BertForSequenceClassification(")
    assert wrapper.config is transformer.config and is_transformers_model(transformer)
    assert not is_transformers_model(wrapper)


def test_wrapper_of_a_module_without_save_pretrained_says_so():
    with pytest.raises(TypeError, match="has no save_pretrained"):
        ModelWrapper(nn.Linear(2, 2)).save_pretrained("somewhere")
    with pytest.raises(TypeError, match="must be a torch.nn.Module"):
        ModelWrapper("bert")  # type: ignore[arg-type]


# -- MetricWrapper --------------------------------------------------------------------------------------------
def test_metric_wrapper_keeps_a_function_name_and_converts_numpy_values():
    def share_of_ones(y_pred, y_true):
        return (y_pred.argmax(1) == 1).float().mean().numpy()

    metric = MetricWrapper(share_of_ones)
    assert metric.__name__ == "share_of_ones" and metric.names == ("share_of_ones",)
    value = metric({"logits": torch.tensor([[0.0, 1.0], [1.0, 0.0]])}, torch.zeros(2))
    assert isinstance(value, torch.Tensor) and float(value) == 0.5


def test_metric_wrapper_picks_keys_and_explains_a_missing_one():
    outputs = {"logits": torch.tensor([[2.0, 0.0], [0.0, 2.0]]), "other": torch.tensor([[0.0, 2.0], [2.0, 0.0]])}
    targets = {"labels": torch.tensor([0, 1]), "input_ids": torch.zeros(2, 3)}
    assert float(MetricWrapper("accuracy", y_key="labels")(outputs, targets)) == 100.0
    assert float(MetricWrapper("accuracy", pred_key="other", y_key="labels")(outputs, targets)) == 0.0
    with pytest.raises(KeyError, match=r"looks for 'scores' in the model's outputs, which hold \['logits', 'other'\]"):
        MetricWrapper("accuracy", pred_key="scores")(outputs, targets["labels"])
    with pytest.raises(KeyError, match="y_key='label_ids'"):
        MetricWrapper("accuracy", y_key="label_ids")(outputs, targets)


def test_metric_wrapper_of_an_epoch_metric_accumulates_over_the_epoch():
    f1 = MetricWrapper("f1")
    assert isinstance(f1, EpochMetricWrapper) and f1.names == ("fscore_macro",)
    assert isinstance(MetricWrapper("mse"), BatchMetric)  # a loss name is a batch metric, as in batch_metrics
    f1.update({"logits": torch.tensor([[2.0, 0.0]])}, torch.tensor([0]))
    f1.update({"logits": torch.tensor([[2.0, 0.0]])}, torch.tensor([1]))
    state = f1.state_dict()
    f1.reset()
    f1.load_state_dict(state)
    assert math.isclose(float(f1.compute()), 1 / 3, rel_tol=1e-6)


def test_wrapped_accuracy_counts_exactly_over_batches_of_different_sizes():
    model = Model(ModelWrapper(classifier()), "adamw", ModelLoss(), batch_metrics=[MetricWrapper("accuracy")])
    data = learnable_dataset(100)
    collate = TransformerCollator("labels")
    _, acc = model.evaluate_dataset(data, batch_size=32, collate_fn=collate, verbose=False)
    logits = model.predict_dataset(data, batch_size=100, collate_fn=collate, has_ground_truth=True, verbose=False)[
        "logits"
    ]
    expected = 100 * float((torch.as_tensor(logits).argmax(1) == data[:]["label"]).float().mean())
    assert math.isclose(acc, expected, rel_tol=1e-6)


# -- training: the model's own loss, datasets, errors ---------------------------------------------------------------
def test_a_model_trains_on_its_own_loss_from_a_datasets_dataset():
    data = learnable_dataset(256).train_test_split(test_size=0.25, seed=0)
    model = Model(
        ModelWrapper(classifier()),
        {"optim": "adamw", "lr": 3e-3},
        ModelLoss(),
        batch_metrics=[MetricWrapper("accuracy")],
        epoch_metrics=[MetricWrapper("f1")],
    )
    history = model.fit_dataset(
        data["train"], data["test"], epochs=4, batch_size=32, collate_fn=TransformerCollator("labels"), verbose=False
    )
    keys = ["acc", "epoch", "fscore_macro", "loss", "time", "val_acc", "val_fscore_macro", "val_loss"]
    assert sorted(history[0]) == keys
    assert history[-1]["loss"] < history[0]["loss"] and history[-1]["val_acc"] > 90


def test_the_logged_loss_is_the_models_own():
    network = ModelWrapper(classifier())
    data = learnable_dataset(64)
    collate = TransformerCollator("labels")
    model = Model(network, "sgd", ModelLoss())
    loss = model.evaluate_dataset(data, batch_size=64, collate_fn=collate, verbose=False)
    inputs, _ = collate([data[i] for i in range(64)])
    network.eval()
    with torch.no_grad():
        assert math.isclose(loss, float(network(inputs)["loss"]), rel_tol=1e-5)


def test_a_bare_transformers_model_gets_a_clear_error():
    model = Model(classifier(), "adamw", ModelLoss())
    with pytest.raises(TypeError, match=r"Wrap it: Model\(ModelWrapper\(model\), \.\.\.\)"):
        model.fit_dataset(learnable_dataset(64), epochs=1, collate_fn=TransformerCollator("labels"), verbose=False)
    # The check is made where the first batch fails, not by a hook on every module call.
    assert not nn.modules.module._global_forward_pre_hooks


def test_a_bare_transformers_model_given_dicts_any_other_way_gets_the_same_error():
    data = learnable_dataset(64)
    inputs = {"input_ids": data[:]["input_ids"], "attention_mask": data[:]["attention_mask"]}
    model = Model(classifier(), "adamw", lambda outputs, y: outputs["logits"].sum())
    expected = (
        r"BertForSequenceClassification\) was called with the whole batch dict of `x` "
        r"\(keys \['attention_mask', 'input_ids'\]\).*ModelWrapper\(model\)"
    )
    with pytest.raises(TypeError, match=expected):
        model.fit(inputs, data[:]["label"], epochs=1, verbose=False)  # in-memory dicts, no collator
    with pytest.raises(TypeError, match="Wrap it"):
        model.predict(inputs, verbose=False)
    batches = [(inputs, data[:]["label"])]
    with pytest.raises(TypeError, match=r"batch dict of `train_generator`.*Wrap it"):
        Model(classifier(), "adamw", ModelLoss(), sanity_check=False).fit_generator(batches, epochs=1, verbose=False)
    # Given tensors, a bare model is called as model(input_ids), which works: no error there.
    Model(classifier(), "adamw", ModelLoss()).predict(inputs["input_ids"], verbose=False)


def test_a_model_asked_for_its_own_loss_without_labels_says_why():
    model = Model(ModelWrapper(classifier()), "adamw", ModelLoss())
    collate = TransformerCollator("labels", remove_labels=True)
    with pytest.raises(ValueError, match=r"returned none: its outputs hold \['logits'\].*remove_labels=True"):
        model.fit_dataset(learnable_dataset(64), epochs=1, collate_fn=collate, verbose=False)


def test_bf16_trains_a_transformers_model_on_the_cpu():
    data = learnable_dataset(256)
    model = Model(
        ModelWrapper(classifier()),
        {"optim": "adamw", "lr": 3e-3},
        ModelLoss(),
        batch_metrics=[MetricWrapper("accuracy")],
        precision="bf16",
    )
    history = model.fit_dataset(data, epochs=4, batch_size=32, collate_fn=TransformerCollator("labels"), verbose=False)
    assert all(math.isfinite(epoch["loss"]) for epoch in history)
    assert history[-1]["loss"] < 0.7 * history[0]["loss"] and history[-1]["acc"] > 85
    loss, acc = model.evaluate_dataset(data, batch_size=64, collate_fn=TransformerCollator("labels"), verbose=False)
    assert math.isfinite(loss) and acc > 85


# -- Experiment: datasets in, save_pretrained out ---------------------------------------------------------------
def test_experiment_trains_on_datasets_and_exports_its_best_checkpoint(tmp_path: Path):
    data = learnable_dataset(192).train_test_split(test_size=64, seed=0)
    collate = TransformerCollator("labels")
    experiment = Experiment(
        tmp_path / "run",
        ModelWrapper(classifier()),
        optimizer={"optim": "adamw", "lr": 3e-3},
        loss_function=ModelLoss(),
        batch_metrics=[MetricWrapper("accuracy")],
        monitor_metric="val_loss",
        monitor_mode="min",
    )
    experiment.train_dataset(
        data["train"], data["test"], epochs=3, batch_size=32, collate_fn=collate, save_every_epoch=True
    )
    tested = experiment.test_dataset(data["test"], batch_size=32, collate_fn=collate)
    directory = export_pretrained(experiment, tmp_path / "exported", "best")
    assert (directory / "config.json").exists()
    reloaded = AutoModelForSequenceClassification.from_pretrained(directory).eval()
    inputs, _ = TransformerCollator()([data["test"][i] for i in range(16)])
    network = experiment.model.network.eval()
    with torch.no_grad():
        expected = network(inputs)["logits"]
        assert torch.allclose(reloaded(**inputs).logits, expected, atol=1e-6)
    # The export holds the best epoch's weights, the ones test used.
    assert math.isclose(tested["test_loss"], experiment.get_best_epoch_stats()["val_loss"].item(), rel_tol=1e-5)
    export_pretrained(experiment, tmp_path / "epoch1", 1)
    first = AutoModelForSequenceClassification.from_pretrained(tmp_path / "epoch1").eval()
    with torch.no_grad():
        assert not torch.allclose(first(**inputs).logits, expected)


def test_export_needs_an_experiment_with_a_transformers_network(tmp_path: Path):
    with pytest.raises(TypeError, match="must be a trainwell Experiment"):
        export_pretrained(Model(nn.Linear(2, 2), "sgd", "mse"), tmp_path)
    experiment = Experiment(tmp_path / "plain", nn.Linear(2, 2), optimizer="sgd", loss_function="mse")
    with pytest.raises(TypeError, match=r"give the Experiment ModelWrapper\(transformers_model\)"):
        export_pretrained(experiment, tmp_path / "out")
