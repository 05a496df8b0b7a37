"""Sentence ordering with a (tiny) BERT: the Poutyne-with-transformers experiment, runnable without a download.

Run: python examples/transformers_sentence_ordering.py [DIRECTORY]      (default: saves/sentence_ordering)

The task (as in the seed's ROCStories experiment): a story's sentences are shuffled, each one starts with a
``[CLS]`` token, and the model gives each ``[CLS]`` a number, a regression of the sentence's position in the
story. Sorting the sentences by those numbers restores the story; Kendall's tau compares the two orders.

Everything is built here: a story corpus generated from templates (each of five story steps has its own
phrasings, so the order can be learned from the words), a WordPiece tokenizer trained on it with
``tokenizers``, a small ``BertConfig`` model, and an in-memory ``datasets.DatasetDict`` tokenized with
``.map``. The experiment is then the seed's: ``TransformerCollator(y_keys=["labels", "input_ids"],
remove_labels=True)``, the ordering loss and ranking metrics through ``MetricWrapper``, TensorBoard logs and
gradient statistics, an Experiment monitoring ``val_loss`` that saves every epoch, a test, and
``save_pretrained``. The script prints the test Kendall's tau before and after training.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from datasets import Dataset, DatasetDict
from scipy.stats import kendalltau
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
from torch import nn
from torch.utils.data import DataLoader
from torch.utils.tensorboard import SummaryWriter
from transformers import AutoModelForTokenClassification, BertConfig, PreTrainedTokenizerFast, default_data_collator

from trainwell import Experiment, TensorBoardGradientTracker, TensorBoardLogger, set_seeds
from trainwell.integrations.transformers import MetricWrapper, ModelWrapper, TransformerCollator

LEARNING_RATE = 3e-3  # from scratch: far above the 3e-5 that fine-tunes a pretrained BERT
TRAIN_BATCH_SIZE = 16
VAL_BATCH_SIZE = 64
MAX_LENGTH = 72
EPOCHS = 6
IGNORE = -100  # the label of padding, as in transformers

# -- a story corpus in which the order of sentences can be learned ---------------------------------------------
# Five story steps, each with its own phrasings: the words of a sentence tell which step it is, and the steps
# always come in this order. A story keeps three to five of them, in order.
STEPS = [
    [
        "once upon a time there was a {role} called {name} .",
        "{name} was a {role} who lived in a small town .",
        "long ago a young {role} named {name} lived near the {place} .",
    ],
    [
        "every morning {name} walked to the {place} .",
        "each day {name} worked hard at the {place} .",
        "{name} usually spent the afternoons near the {place} .",
    ],
    [
        "one day {name} found a {thing} by the {place} .",
        "suddenly a {animal} appeared at the door .",
        "but one evening the {thing} went missing .",
    ],
    [
        "so {name} asked a friend for help .",
        "{name} searched the whole {place} for hours .",
        "together they followed the {animal} into the woods .",
    ],
    [
        "in the end {name} brought the {thing} home .",
        "finally everyone in town was happy again .",
        "from that day on {name} never forgot the {animal} .",
    ],
]
FILLERS = {
    "name": ["anna", "ben", "clara", "david", "emma", "felix", "grace", "hugo", "iris", "jack", "lena", "max"],
    "role": ["baker", "farmer", "painter", "sailor", "teacher", "tailor", "miner", "doctor"],
    "place": ["market", "river", "library", "harbor", "garden", "mill", "forest", "station"],
    "thing": ["key", "letter", "lamp", "map", "ring", "coin", "book", "hat"],
    "animal": ["cat", "dog", "fox", "horse", "owl", "goat"],
}


def make_story(rng: random.Random) -> dict[str, Any]:
    """One story: its sentences shuffled, ``[CLS]`` before each, and each one's position in the story."""
    fillers = {slot: rng.choice(words) for slot, words in FILLERS.items()}
    steps = sorted(rng.sample(range(len(STEPS)), rng.randint(3, len(STEPS))))
    sentences = [rng.choice(STEPS[step]).format(**fillers) for step in steps]
    order = list(range(len(sentences)))
    rng.shuffle(order)
    return {
        "text": " ".join(f"[CLS] {sentences[index]}" for index in order),
        "so_targets": order,  # the position in the story of each shuffled sentence
    }


def make_corpus(stories: int, seed: int = 0) -> DatasetDict:
    """Train, validation and test stories (80/10/10), generated from the templates, in memory."""
    rng = random.Random(seed)
    records = [make_story(rng) for _ in range(stories)]
    train, val = int(0.8 * stories), int(0.9 * stories)
    return DatasetDict(
        {
            "train": Dataset.from_list(records[:train]),
            "val": Dataset.from_list(records[train:val]),
            "test": Dataset.from_list(records[val:]),
        }
    )


def train_tokenizer(texts: list[str], vocab_size: int = 400) -> PreTrainedTokenizerFast:
    """A BERT-style WordPiece tokenizer trained on ``texts`` (no download)."""
    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    backend = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    backend.normalizer = normalizers.BertNormalizer(lowercase=True)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.decoder = decoders.WordPiece()
    backend.train_from_iterator(texts, trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=special))
    # The trainer breaks ties between equally frequent pairs in no fixed order, so two runs can differ in
    # their intermediate pieces and ids. Keeping the pieces the corpus uses plus the single characters, in
    # sorted order, makes the same corpus always give the same tokenizer (and the run reproducible).
    used = {token for text in texts for token in backend.encode(text).tokens}
    characters = {token for token in backend.get_vocab() if len(token.removeprefix("##")) == 1}
    tokens = special + sorted((used | characters) - set(special))
    backend.model = models.WordPiece({token: index for index, token in enumerate(tokens)}, unk_token="[UNK]")
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )


def make_tokenization_func(tokenizer: PreTrainedTokenizerFast, text_column: str, **kwargs: Any) -> Callable:
    """The function ``dataset.map(..., batched=True)`` calls: tokenizes the text column."""

    def tokenize(batch: dict[str, list[Any]]) -> Any:
        return tokenizer(batch[text_column], **kwargs)

    return tokenize


def so_data_collator(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Stacks the samples; stories have 3 to 5 sentences, so their labels are padded with -100."""
    longest = max(len(sample["labels"]) for sample in samples)
    labels = torch.full((len(samples), longest), IGNORE, dtype=torch.long)
    for row, sample in enumerate(samples):
        labels[row, : len(sample["labels"])] = torch.as_tensor(sample["labels"])
    batch = default_data_collator([{key: value for key, value in s.items() if key != "labels"} for s in samples])
    batch["labels"] = labels
    return batch


# -- the seed's loss and metrics ----------------------------------------------------------------------------------
class SequenceOrderingLoss:
    """The summed squared error between each ``[CLS]`` logit and its sentence's position, averaged over stories."""

    def __init__(self, target_token_id: int) -> None:
        self.target_token_id = target_token_id
        self.error = nn.MSELoss(reduction="sum")

    def __call__(self, outputs: Any, targets: dict[str, torch.Tensor]) -> torch.Tensor:
        logits = outputs["logits"]
        total = logits.new_zeros(())
        # Stories have different numbers of sentences: one story at a time.
        for labels, story_logits, input_ids in zip(targets["labels"], logits, targets["input_ids"]):
            positions = labels[labels != IGNORE].float()
            predicted = story_logits[input_ids == self.target_token_id].reshape(-1)
            # Truncation may have cut the last sentences off: compare as many as there are [CLS] tokens.
            positions = positions[: predicted.size(0)]
            total = total + self.error(predicted, positions)
        return total / logits.size(0)


def make_compute_metrics_functions(target_token_id: int) -> list[Callable[..., float]]:
    """The ranking metrics, one function each: accuracy of positions, Kendall's tau, mean and std of [CLS] logits.

    Each function receives the logits (``MetricWrapper`` picks them) and the targets, and returns the mean
    over the batch's stories.
    """

    def compute_ranking_func(logits: torch.Tensor, targets: dict[str, torch.Tensor], metric_key: str) -> float:
        batch_positions = targets["labels"].detach().cpu().numpy()
        batch_input_ids = targets["input_ids"].detach().cpu().numpy()
        batch_logits = logits.detach().float().cpu().numpy()
        values = []
        for positions, input_ids, story_logits in zip(batch_positions, batch_input_ids, batch_logits):
            positions = positions.reshape(-1)
            positions = positions[positions != IGNORE]  # (the seed compared with 100 here, keeping the padding)
            target_logits = story_logits.reshape(-1)[input_ids.reshape(-1) == target_token_id]
            positions = positions[: target_logits.shape[0]]
            if metric_key == "mean_logits":
                values.append(target_logits.mean())
            elif metric_key == "std_logits":
                values.append(target_logits.std())
            else:
                # argsort twice: the rank of each logit, i.e. the predicted position of each sentence.
                predicted = np.argsort(np.argsort(target_logits))
                if metric_key == "kendalls_tau":
                    values.append(kendalltau(positions, predicted).statistic)
                else:  # the share of sentences put at their place (sklearn's accuracy_score, without its checks)
                    values.append(np.mean(positions == predicted))
        return float(np.nanmean(values))  # tau is undefined (NaN) for a story of one sentence

    functions = []
    for name in ("acc", "kendalls_tau", "mean_logits", "std_logits"):
        function = partial(compute_ranking_func, metric_key=name)
        function.__name__ = name  # type: ignore[attr-defined]
        functions.append(function)
    return functions


# -- the experiment --------------------------------------------------------------------------------------------------
def main(directory: str | Path, stories: int = 2_500, epochs: int = EPOCHS, verbose: bool = True) -> dict[str, Any]:
    """Builds everything, trains, tests and exports; returns the test results before and after training."""
    directory = Path(directory)
    set_seeds(42)

    print("Generating the corpus and training the tokenizer.")
    dataset = make_corpus(stories)
    tokenizer = train_tokenizer(dataset["train"]["text"])
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=128,
        max_position_embeddings=MAX_LENGTH,
        num_labels=1,  # one regression logit per token, read at the [CLS] tokens
    )
    transformer = AutoModelForTokenClassification.from_config(config)

    print("Preparing the data.")
    tokenization_func = make_tokenization_func(
        tokenizer, "text", add_special_tokens=False, padding="max_length", truncation=True, max_length=MAX_LENGTH
    )
    dataset = dataset.map(tokenization_func, batched=True)
    dataset = dataset.rename_column("so_targets", "labels").remove_columns(["text"])
    dataset.set_format("torch")
    collate_fn = TransformerCollator(
        y_keys=["labels", "input_ids"], custom_collator=so_data_collator, remove_labels=True
    )
    train_dataloader = DataLoader(dataset["train"], batch_size=TRAIN_BATCH_SIZE, shuffle=True, collate_fn=collate_fn)
    val_dataloader = DataLoader(dataset["val"], batch_size=VAL_BATCH_SIZE, collate_fn=collate_fn)
    test_dataloader = DataLoader(dataset["test"], batch_size=VAL_BATCH_SIZE, collate_fn=collate_fn)

    print("Preparing training.")
    wrapped_transformer = ModelWrapper(transformer)
    optimizer = torch.optim.AdamW(wrapped_transformer.parameters(), lr=LEARNING_RATE)
    loss_fn = SequenceOrderingLoss(target_token_id=tokenizer.cls_token_id)
    metrics = [MetricWrapper(func) for func in make_compute_metrics_functions(tokenizer.cls_token_id)]
    writer = SummaryWriter(str(directory / "runs"))
    tensorboard_logger = TensorBoardLogger(writer)
    gradient_logger = TensorBoardGradientTracker(writer)

    experiment = Experiment(
        directory=directory / "experiment",
        network=wrapped_transformer,
        device="cuda:0" if torch.cuda.is_available() else "cpu",
        logging=True,
        optimizer=optimizer,
        loss_function=loss_fn,
        batch_metrics=metrics,
        monitoring=True,
        monitor_metric="val_loss",
        monitor_mode="min",
    )
    before = experiment.model.evaluate_generator(test_dataloader, return_dict_format=True, verbose=False)
    print(f"Test Kendall's tau before training: {before['test_kendalls_tau']:.3f}")

    experiment.train(
        train_generator=train_dataloader,
        valid_generator=val_dataloader,
        epochs=epochs,
        save_every_epoch=True,
        callbacks=[tensorboard_logger, gradient_logger],
        verbose=verbose,
    )
    writer.close()
    after = experiment.test(test_dataloader, verbose=verbose)  # the best epoch by val_loss
    print(
        f"Test Kendall's tau after training: {after['test_kendalls_tau']:.3f} "
        f"(before: {before['test_kendalls_tau']:.3f}); sentences in place: {after['test_acc']:.1%}"
    )
    export = directory / "pretrained"
    wrapped_transformer.save_pretrained(export)  # the best weights: test loaded them
    tokenizer.save_pretrained(export)
    print(f"The model and its tokenizer are in {export} (AutoModelForTokenClassification.from_pretrained).")
    return {"before": before, "after": after, "export": export, "network": wrapped_transformer, "tokenizer": tokenizer}


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "saves/sentence_ordering")
