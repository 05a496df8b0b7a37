"""The Hugging Face ``Trainer`` (scenario E only): the peer a user would pick to fine-tune a transformers model.

Same model, data (the ``datasets.Dataset``, collated by ``default_data_collator``), batch size and
optimizer (the task's AdamW, passed in ``optimizers=``) as the hand-written loop. What would otherwise
differ is switched off: the learning rate stays constant (``lr_scheduler_type="constant"``), gradients
are not clipped (``max_grad_norm=0``; the Trainer clips at 1.0 by default), nothing is logged, saved,
evaluated or reported, no progress bar. The Trainer computes no training accuracy (its metrics are for
evaluation); it keeps its running loss as a tensor, as trainwell does. Needs ``accelerate``.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from typing import Any

import transformers
from transformers import Trainer, TrainingArguments, default_data_collator

from benchmarks.common import SEED, Task

VERSION = transformers.__version__


def prepare(task: Task) -> Callable[[], Any]:
    """``Trainer(...).train()`` for scenario E."""
    if task.scenario.model != "bert":
        raise ValueError(f"the HF Trainer is measured in scenario E only, not {task.scenario.name}")
    output = tempfile.mkdtemp(prefix="hf-trainer-")
    arguments = TrainingArguments(
        output_dir=output,
        per_device_train_batch_size=task.batch_size,
        num_train_epochs=task.epochs,
        use_cpu=True,
        lr_scheduler_type="constant",
        max_grad_norm=0.0,
        logging_strategy="no",
        save_strategy="no",
        eval_strategy="no",
        report_to="none",
        disable_tqdm=True,
        dataloader_num_workers=0,
        dataloader_pin_memory=False,
        seed=SEED + 2,
    )
    trainer = Trainer(
        model=task.network,
        args=arguments,
        train_dataset=task.hf_dataset(),
        data_collator=default_data_collator,
        optimizers=(task.optimizer(), None),
    )
    return trainer.train
