"""Scaling scenarios run under ``torchrun`` (``python -m torch.distributed.run ... scale_script.py MODE DIR``).

Modes:
    nosync: ``batches_per_step=4`` under DDP, once through in-memory data (the loop knows the epoch's
        length, so micro-batches that do not step skip the all-reduce) and once through a generator of
        the same batches (length unknown: every micro-batch all-reduces, as before ``no_sync``). A DDP
        communication hook counts the all-reduces. Rank r writes ``DIR/nosync{r}.json``.
    fsdp: the same ``fit`` under DDP and under FSDP (``strategy='fsdp'``), with the share of parameters
        and optimizer state each rank holds, a bf16 run, and the errors of bad input; rank r writes
        ``DIR/fsdp{r}.json``.
    elastic: an ``Experiment`` in ``DIR`` (2 epochs of 6 global batches of 16, a checkpoint every 3 steps)
        whose per-process batch is 16 / W; ``STRATEGY`` picks DDP or FSDP. Every rank appends the sample
        indices of each training batch to ``DIR/seen{r}.txt``; ``KILL_AT=n`` makes every rank SIGKILL
        itself after step n (after the checkpoint of step n-1 is written). Rank 0 writes the final weights
        to ``DIR/weights.json``.
"""

import json
import os
import signal
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.algorithms.ddp_comm_hooks import default_hooks

from trainwell import Callback, Model, distributed
from trainwell.experiment.experiment import Experiment

GLOBAL_BATCH = 16


def data(samples: int = 96) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(samples, 8, generator=generator)
    y = (x[:, 0] + x[:, 1] > 0).long() + (x[:, 2] > 0.5).long()
    return x, y


def network() -> nn.Module:
    torch.manual_seed(1)
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))


def weights(model_network: nn.Module) -> dict[str, list]:
    return {name: tensor.tolist() for name, tensor in model_network.state_dict().items()}


# -- no_sync ------------------------------------------------------------------------------------------------
class AllReduceCounter(Callback):
    """Counts the DDP all-reduces of a fit: a communication hook on the wrapper fit built, then torch's own."""

    def __init__(self) -> None:
        self.calls = 0

    def on_train_begin(self, logs: dict) -> None:
        self.model._steps.network.register_comm_hook(self, AllReduceCounter.hook)

    @staticmethod
    def hook(state: "AllReduceCounter", bucket: dist.GradBucket) -> torch.futures.Future[torch.Tensor]:
        state.calls += 1
        return default_hooks.allreduce_hook(None, bucket)


def nosync(directory: Path) -> dict:
    x, y = data()
    rank, ranks = distributed.rank(), distributed.world_size()
    size = GLOBAL_BATCH // ranks
    # This rank's batches (the sharding every rank would get), as a list: its length is known.
    mine_x, mine_y = x[rank::ranks], y[rank::ranks]
    batches = [(mine_x[i : i + size], mine_y[i : i + size]) for i in range(0, len(mine_x), size)]
    known = Model(network(), "sgd", "cross_entropy", sanity_check=False)
    known_calls = AllReduceCounter()
    known.fit_generator(batches, epochs=1, batches_per_step=3, verbose=False, callbacks=[known_calls])
    # The same batches from a generator, whose length is unknown: every micro-batch all-reduces.
    unknown = Model(network(), "sgd", "cross_entropy", sanity_check=False)
    unknown_calls = AllReduceCounter()
    unknown.fit_generator(iter(batches), epochs=1, batches_per_step=3, verbose=False, callbacks=[unknown_calls])
    return {
        "known": known_calls.calls,
        "unknown": unknown_calls.calls,
        "steps": known.state.optimizer_steps,
        "known_weights": weights(known.network),
        "unknown_weights": weights(unknown.network),
    }


# -- FSDP -----------------------------------------------------------------------------------------------------
def _local_numel(tensors) -> tuple[int, int]:
    """(elements this rank holds, elements of the whole tensors) over DTensors or plain tensors."""
    held = total = 0
    for tensor in tensors:
        local = tensor.to_local() if hasattr(tensor, "to_local") else tensor
        held += local.numel()
        total += tensor.numel()
    return held, total


def _error(build) -> str:
    try:
        build()
    except (ValueError, RuntimeError) as error:
        return f"{type(error).__name__}: {error}"
    return "no error"


def fsdp(directory: Path) -> dict:
    x, y = data()
    size = GLOBAL_BATCH // distributed.world_size()
    fits = {}
    for strategy in ("ddp", "fsdp"):
        torch.manual_seed(2)
        model = Model(network(), "adam", "cross_entropy", batch_metrics=["accuracy"], strategy=strategy)
        history = model.fit(x, y, epochs=2, batch_size=size, batches_per_step=2, verbose=False)
        fits[strategy] = {"history": [epoch["loss"] for epoch in history], "weights": weights_of(model)}
        if strategy == "fsdp":
            optimizer_state = [t for entry in model.optimizer.state.values() for k, t in entry.items() if k != "step"]
            shares = {
                "parameters": _local_numel(model.network.parameters()),
                "optimizer": _local_numel(optimizer_state),
            }
            wrapped = type(model._steps.network).__name__
            # A checkpoint's snapshot: the whole tensors, on rank 0's host only.
            snapshot = model.training_state()
            kept = {
                "network": {name: list(tensor.shape) for name, tensor in snapshot["network"].items()},
                "optimizer": sum(len(entry) for entry in snapshot["optimizer"]["state"].values()),
            }
    # bf16: FSDP's mixed precision (the layers compute with bfloat16 weights; the shards stay float32).
    torch.manual_seed(2)
    bf16 = Model(network(), "adam", "cross_entropy", precision="bf16", strategy="fsdp")
    seen = []
    bf16.network[0].register_forward_pre_hook(lambda module, args: seen.append(str(module.weight.dtype)))
    bf16_history = bf16.fit(x, y, epochs=2, batch_size=size, verbose=False)
    output = bf16.predict(x[:4], verbose=False)
    errors = {
        "instance": _error(
            lambda: Model(network(), torch.optim.SGD(network().parameters(), lr=0.1), "mse", strategy="fsdp")
        ),
        "nothing": _error(lambda: Model(network().requires_grad_(False), "sgd", "mse", strategy="fsdp")),
        "fp16": _error(lambda: Model(network(), "sgd", "mse", precision="16", strategy="fsdp")),
        "strategy": _error(lambda: Model(network(), "sgd", "mse", strategy="zero3")),
    }
    return {
        "fits": fits,
        "shares": shares,
        "wrapped": wrapped,
        "snapshot": kept,
        "bf16": {
            "losses": [epoch["loss"] for epoch in bf16_history],
            "compute_dtypes": sorted(set(seen)),
            "shard_dtype": str(next(bf16.network.parameters()).dtype),
            "output_dtype": str(output.dtype),
        },
        "errors": errors,
    }


def weights_of(model: Model) -> dict[str, list]:
    return {name: tensor.tolist() for name, tensor in model.get_weight_copies().items()}


def two(directory: Path) -> None:
    """nosync and fsdp in one launch (a torchrun start costs seconds)."""
    result = {"nosync": nosync(directory), "fsdp": fsdp(directory)}
    (directory / f"two{distributed.rank()}.json").write_text(json.dumps(result))


# -- elastic resume -----------------------------------------------------------------------------------------
class Recorder(Callback):
    """Appends each training batch's sample indices (column 0 of x) to ``seen{rank}.txt``; ``KILL_AT`` kills."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.step: int | None = None

    def hook(self, module: nn.Module, args: tuple) -> None:
        if self.step is not None and module.training:
            indices = args[0][:, 0].long().tolist()
            with self.path.open("a") as handle:
                handle.write(f"{self.step} {','.join(map(str, indices))}\n")
            self.step = None

    def on_train_batch_begin(self, batch_number: int, logs: dict) -> None:
        self.step = self.model.state.global_step + 1

    def on_train_batch_end(self, batch_number: int, logs: dict) -> None:
        if self.model.state.global_step == int(os.environ.get("KILL_AT", "0")):
            os.kill(os.getpid(), signal.SIGKILL)  # every rank, after the same step: a real crash


class Indexed(nn.Module):
    """The test network, reading columns 1: of x (column 0 holds each sample's index)."""

    def __init__(self) -> None:
        super().__init__()
        self.body = network()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x[:, 1:])


def elastic(directory: Path) -> None:
    x, y = data()
    x = torch.cat([torch.arange(len(x), dtype=x.dtype)[:, None], x], dim=1)
    net = Indexed()
    recorder = Recorder(directory / f"seen_{os.environ.get('LEG', 'run')}_{distributed.rank()}.txt")
    net.register_forward_pre_hook(recorder.hook)
    strategy = os.environ.get("STRATEGY", "ddp")
    run = Experiment(directory, net, task="classif", optimizer="adam", strategy=strategy)
    run.train_data(
        x,
        y,
        epochs=2,
        batch_size=GLOBAL_BATCH // distributed.world_size(),
        verbose=False,
        checkpoint_every_n_steps=3,
        callbacks=[recorder],
        disable_tensorboard=True,
    )
    final = run.model.get_weight_copies()  # every rank takes part (gathered under FSDP)
    if distributed.is_main_process():
        (directory / "weights.json").write_text(json.dumps({k: v.tolist() for k, v in final.items()}))


if __name__ == "__main__":
    mode, target = sys.argv[1], Path(sys.argv[2])
    {"two": two, "elastic": elastic}[mode](target)
