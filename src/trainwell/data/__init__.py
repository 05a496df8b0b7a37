"""User input -> batch sources: the layer between the public API and the loop.

:mod:`~trainwell.data.inputs` is the one entry (``fit*``/``evaluate*``/``predict*`` arguments -> sources);
:mod:`~trainwell.data.sources` the sources the loop iterates; :mod:`~trainwell.data.loaders` the
DataLoaders trainwell builds; :mod:`~trainwell.data.sharding` each torchrun rank's part;
:mod:`~trainwell.data.batches` what a batch is (nested tensors, its size, moving it to a device).
"""

from trainwell.data.batches import batch_size_of, concatenate, flatten, split_batch, to_device
from trainwell.data.inputs import dataset_source, iterable_source, tensor_source
from trainwell.data.loaders import dataset_loader
from trainwell.data.sharding import ShardedSampler, shard, shard_length
from trainwell.data.sources import IterableBatches, TensorBatches, is_sharded, source_length

__all__ = [
    "IterableBatches",
    "ShardedSampler",
    "TensorBatches",
    "batch_size_of",
    "concatenate",
    "dataset_loader",
    "dataset_source",
    "flatten",
    "is_sharded",
    "iterable_source",
    "shard",
    "shard_length",
    "source_length",
    "split_batch",
    "tensor_source",
    "to_device",
]
