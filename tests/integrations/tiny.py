"""Tiny transformers models and learnable data for the integration tests (built from configs, no download)."""

from __future__ import annotations

from typing import Any

import torch


def tiny_bert_config(**overrides: Any) -> Any:
    """A BERT small enough to train in seconds on one CPU thread, without dropout (deterministic)."""
    from transformers import BertConfig

    options: dict[str, Any] = {
        "vocab_size": 64,
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 64,
        "max_position_embeddings": 32,
        "hidden_dropout_prob": 0.0,
        "attention_probs_dropout_prob": 0.0,
    }
    options.update(overrides)
    return BertConfig(**options)


def learnable_dataset(samples: int = 256, length: int = 12, seed: int = 0) -> Any:
    """A ``datasets.Dataset`` in torch format: the label says whether the first token is in the upper half."""
    import datasets

    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(4, 64, (samples, length), generator=generator)
    lengths = torch.randint(length // 2, length + 1, (samples,), generator=generator)
    attention_mask = (torch.arange(length) < lengths[:, None]).long()
    input_ids = input_ids * attention_mask  # 0 is the padding token
    labels = (input_ids[:, 0] >= 34).long()
    data = datasets.Dataset.from_dict(
        {"input_ids": input_ids.tolist(), "attention_mask": attention_mask.tolist(), "label": labels.tolist()}
    )
    data.set_format("torch")
    return data
