"""Gradient accumulation of token-averaged losses is exact (the Hugging Face Trainer bug, transformers PR #34191).

Three micro-batches with very different numbers of real tokens, accumulated with ``batches_per_step=3``,
must give the update of one batch of all their sequences, whose loss averages over all its real tokens.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

pytest.importorskip("transformers")

from transformers import BertForTokenClassification, GPT2Config, GPT2LMHeadModel

from tests.integrations.tiny import tiny_bert_config
from trainwell import ClipNorm, Model
from trainwell.integrations.transformers import ModelLoss, ModelWrapper, TokenAveragedLoss, TransformerCollator

LENGTH = 12


def micro_batches(real_tokens: list[int], sequences: int = 4, seed: int = 0) -> list[list[dict[str, torch.Tensor]]]:
    """Per micro-batch, ``sequences`` samples padded to LENGTH; micro-batch i has about real_tokens[i] each."""
    generator = torch.Generator().manual_seed(seed)
    batches = []
    for tokens in real_tokens:
        samples = []
        for _ in range(sequences):
            length = max(1, min(LENGTH, tokens + int(torch.randint(-1, 2, (1,), generator=generator))))
            mask = (torch.arange(LENGTH) < length).long()
            ids = torch.randint(4, 64, (LENGTH,), generator=generator) * mask
            labels = torch.randint(0, 3, (LENGTH,), generator=generator).masked_fill(mask == 0, -100)
            samples.append({"input_ids": ids, "attention_mask": mask, "labels": labels})
        batches.append(samples)
    return batches


def token_model() -> nn.Module:
    torch.manual_seed(0)
    return ModelWrapper(BertForTokenClassification(tiny_bert_config(num_labels=3)))


def one_step(network: nn.Module, batches: list, loss: object, batches_per_step: int, callbacks=()) -> nn.Module:
    model = Model(network, torch.optim.SGD(network.parameters(), lr=1.0), loss)
    model.fit_generator(batches, epochs=1, batches_per_step=batches_per_step, callbacks=list(callbacks), verbose=False)
    return network


def max_difference(a: nn.Module, b: nn.Module) -> float:
    return max(float((p - q).detach().abs().max()) for p, q in zip(a.parameters(), b.parameters()))


@pytest.fixture(scope="module")
def setting() -> tuple[nn.Module, list, list]:
    collate = TransformerCollator("labels")
    samples = micro_batches([11, 2, 6])
    micro = [collate(group) for group in samples]
    big = [collate([sample for group in samples for sample in group])]
    reference = one_step(token_model(), big, ModelLoss(), 1)  # one batch of the 12 sequences, one token mean
    return reference, micro, big


def test_accumulated_token_means_give_the_big_batch_update(setting):
    reference, micro, _ = setting
    tokens = [int((labels != -100).sum()) for _, labels in micro]
    assert max(tokens) > 3 * min(tokens)  # the micro-batches differ a lot
    loss = TokenAveragedLoss()
    accumulated = one_step(token_model(), micro, loss, 3, callbacks=[loss])
    assert max_difference(accumulated, reference) < 1e-5
    # The control: weighting each micro-batch's token mean by its number of sequences (what
    # batches_per_step does for a mean over examples, and what the Trainer did) is visibly wrong.
    naive = one_step(token_model(), micro, ModelLoss(), 3)
    assert max_difference(naive, reference) > 1e-3


def test_without_the_callback_it_is_a_plain_token_mean(setting):
    _, micro, big = setting
    alone = one_step(token_model(), big, TokenAveragedLoss(), 1)  # one batch: exact without the callback
    assert max_difference(alone, one_step(token_model(), big, ModelLoss(), 1)) == 0
    unattached = one_step(token_model(), micro, TokenAveragedLoss(), 3)
    assert max_difference(unattached, one_step(token_model(), micro, ModelLoss(), 3)) == 0


def test_clipping_sees_the_final_gradients(setting):
    reference_network, micro, big = setting
    clipped = []
    for batches, per_step in ((big, 1), (micro, 3)):
        network = token_model()
        loss = TokenAveragedLoss()
        clip = ClipNorm(network.parameters(), max_norm=0.05)
        clipped.append(one_step(network, batches, loss, per_step, callbacks=[clip, loss]))  # clip listed first
    assert max_difference(clipped[0], clipped[1]) < 1e-6
    assert max_difference(clipped[0], reference_network) > 1e-3  # the clipping did act


def test_logged_loss_is_the_token_mean_and_counts_stay_on_the_device(setting):
    _, micro, _ = setting
    loss = TokenAveragedLoss()
    network = token_model()
    model = Model(network, "sgd", loss)
    history = model.fit_generator(micro, epochs=1, batches_per_step=3, callbacks=[loss], verbose=False)
    initial = token_model()  # one step at the end: every micro-batch's loss is the initial model's
    with torch.no_grad():
        means = [float(initial(x)["loss"]) for x, _ in micro]
    sizes = [len(labels) for _, labels in micro]
    assert abs(history[0]["loss"] - sum(m * s for m, s in zip(means, sizes)) / sum(sizes)) < 1e-5
    assert loss.state_dict() == {"examples": 0, "tokens": None}  # reset by each optimizer step


def test_a_step_in_progress_is_part_of_the_callback_state():
    loss = TokenAveragedLoss()
    loss._active = True
    prediction = torch.tensor(1.5, requires_grad=True)
    value = TokenAveragedLoss(lambda outputs, labels: outputs * 1)
    value._active = True
    assert float(value(prediction, torch.tensor([[1, -100], [2, 3]]))) == 1.5
    state = value.state_dict()
    assert state["examples"] == 2 and int(state["tokens"]) == 3
    loss.load_state_dict(state)
    assert loss.state_dict()["examples"] == 2 and int(loss.state_dict()["tokens"]) == 3


def test_causal_language_models_count_shifted_labels():
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=64, n_positions=LENGTH, n_embd=32, n_layer=2, n_head=2)
    config.resid_pdrop = config.embd_pdrop = config.attn_pdrop = 0.0
    collate = TransformerCollator("labels")
    samples = micro_batches([10, 3], sequences=3, seed=1)
    for group in samples:
        for sample in group:
            sample["labels"] = sample["input_ids"].masked_fill(sample["attention_mask"] == 0, -100)
    micro = [collate(group) for group in samples]
    big = [collate([sample for group in samples for sample in group])]

    def lm() -> nn.Module:
        torch.manual_seed(0)
        return ModelWrapper(GPT2LMHeadModel(config))

    reference = one_step(lm(), big, ModelLoss(), 1)
    loss = TokenAveragedLoss(shift_labels=True)
    assert max_difference(one_step(lm(), micro, loss, 2, callbacks=[loss]), reference) < 1e-5
    unshifted = TokenAveragedLoss()
    assert max_difference(one_step(lm(), micro, unshifted, 2, callbacks=[unshifted]), reference) > 1e-4


def test_targets_without_labels_are_explained():
    loss = TokenAveragedLoss()
    with pytest.raises(TypeError, match=r"TransformerCollator\(y_keys='labels'\)"):
        loss.labels_of(torch.full((2,), float("nan")))
    with pytest.raises(KeyError, match=r"hold \['input_ids'\]"):
        loss.labels_of({"input_ids": torch.zeros(2, 3, dtype=torch.long)})
