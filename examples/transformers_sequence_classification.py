"""Sequence classification with a transformers model built from its config, trained with ``Model.fit``.

Run: python examples/transformers_sequence_classification.py

A synthetic, learnable task with no download: each sequence is about one of three topics; most of its
tokens come from that topic's own vocabulary, the others are shared filler words, and the label is the
topic. The data is in memory (a dict of tensors, sliced into batches by ``fit``); the model computes its
own cross-entropy from the ``labels`` among its inputs (``ModelLoss``); accuracy and macro F1 read its
logits through ``MetricWrapper``.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import AutoConfig, AutoModelForSequenceClassification

from trainwell import Model, set_seeds
from trainwell.integrations.transformers import MetricWrapper, ModelLoss, ModelWrapper

TOPICS = 3
WORDS_PER_TOPIC = 20
FILLERS = 40
PAD, CLS = 0, 1
FIRST_WORD = 2  # ids 2.. are the filler words, then each topic's words
LENGTH = 24


def make_data(samples: int, seed: int) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """``(inputs, labels)``: ``[CLS]`` then 8 to 23 tokens, 40% of them from the topic's words, padded."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, TOPICS, (samples,), generator=generator)
    fillers = torch.randint(FIRST_WORD, FIRST_WORD + FILLERS, (samples, LENGTH), generator=generator)
    topic_words = (
        FIRST_WORD
        + FILLERS
        + labels[:, None] * WORDS_PER_TOPIC
        + torch.randint(0, WORDS_PER_TOPIC, (samples, LENGTH), generator=generator)
    )
    from_topic = torch.rand(samples, LENGTH, generator=generator) < 0.4
    input_ids = torch.where(from_topic, topic_words, fillers)
    lengths = torch.randint(9, LENGTH + 1, (samples,), generator=generator)
    attention_mask = (torch.arange(LENGTH) < lengths[:, None]).long()
    input_ids = input_ids.masked_fill(attention_mask == 0, PAD)
    input_ids[:, 0] = CLS
    # The labels are also an input: the model computes its own loss from them.
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}, labels


def make_transformer() -> Any:
    """A small BERT classifier built from its configuration (random weights, nothing downloaded)."""
    config = AutoConfig.for_model(
        "bert",
        vocab_size=FIRST_WORD + FILLERS + TOPICS * WORDS_PER_TOPIC,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=128,
        max_position_embeddings=LENGTH,
        num_labels=TOPICS,
        pad_token_id=PAD,
    )
    return AutoModelForSequenceClassification.from_config(config)


def main(train_samples: int = 2_000, epochs: int = 3, verbose: bool = True) -> dict[str, Any]:
    """Trains and tests; returns the history and the test results."""
    set_seeds(0)
    x_train, y_train = make_data(train_samples, seed=1)
    x_valid, y_valid = make_data(500, seed=2)
    x_test, y_test = make_data(500, seed=3)
    model = Model(
        ModelWrapper(make_transformer()),
        {"optim": "adamw", "lr": 1e-3},
        ModelLoss(),  # outputs['loss']: the model's cross-entropy
        batch_metrics=[MetricWrapper("accuracy")],
        epoch_metrics=[MetricWrapper("f1")],
    )
    history = model.fit(
        x_train, y_train, validation_data=(x_valid, y_valid), epochs=epochs, batch_size=32, verbose=verbose
    )
    test = model.evaluate(x_test, y_test, batch_size=128, return_dict_format=True, verbose=False)
    print(f"Test: loss {test['test_loss']:.3f}, accuracy {test['test_acc']:.1f}%, F1 {test['test_fscore_macro']:.3f}")
    return {"history": history, "test": test}


if __name__ == "__main__":
    main()
