"""torchrun without code changes: this process's place in the job, and values shared between processes.

``from trainwell import distributed`` gives every helper: :mod:`~trainwell.distributed.process` (rank,
world size, barrier, joining the group) and :mod:`~trainwell.distributed.collectives` (sums, gathers,
broadcasts of tensors, never pickles). The DistributedDataParallel wrapper of a model's network lives
with the loop, in :mod:`trainwell.engine.parallel`; data sharding in :mod:`trainwell.data.sharding`.
"""

from trainwell.distributed.collectives import (
    all_gather_structure,
    all_reduce_sum,
    any_rank,
    broadcast_tensor,
    gather_epoch_metric,
    interleave,
    reduce_sums,
)
from trainwell.distributed.process import (
    barrier,
    communication_device,
    is_distributed,
    is_main_process,
    launched_by_torchrun,
    local_rank,
    rank,
    setup,
    world_size,
)

__all__ = [
    "all_gather_structure",
    "all_reduce_sum",
    "any_rank",
    "barrier",
    "broadcast_tensor",
    "communication_device",
    "gather_epoch_metric",
    "interleave",
    "is_distributed",
    "is_main_process",
    "launched_by_torchrun",
    "local_rank",
    "rank",
    "reduce_sums",
    "setup",
    "world_size",
]
