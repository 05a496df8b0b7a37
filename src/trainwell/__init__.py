"""trainwell: train PyTorch models with a Keras-like, Poutyne-compatible API.

>>> import torch
>>> from trainwell import Model
>>> model = Model(torch.nn.Linear(4, 2), 'adam', 'cross_entropy', batch_metrics=['accuracy'])
"""

from trainwell.callbacks import (
    Callback,
    CallbackList,
    ClipNorm,
    ClipValue,
    DelayCallback,
    EarlyStopping,
    EpochProgressionCallback,
    LambdaCallback,
    ProgressionCallback,
    TerminateOnNaN,
)
from trainwell.layers import Lambda
from trainwell.metrics import (
    F1,
    MAE,
    MSE,
    R2,
    RMSE,
    BatchMetric,
    EpochMetric,
    FBeta,
    Precision,
    Recall,
    SKLearnMetrics,
)
from trainwell.model import Model
from trainwell.utils import numpy_to_torch, set_seeds, torch_apply, torch_to, torch_to_numpy

__version__ = "0.1.0"

__all__ = [
    "F1",
    "MAE",
    "MSE",
    "R2",
    "RMSE",
    "BatchMetric",
    "Callback",
    "CallbackList",
    "ClipNorm",
    "ClipValue",
    "DelayCallback",
    "EarlyStopping",
    "EpochMetric",
    "EpochProgressionCallback",
    "FBeta",
    "Lambda",
    "LambdaCallback",
    "Model",
    "Precision",
    "ProgressionCallback",
    "Recall",
    "SKLearnMetrics",
    "TerminateOnNaN",
    "__version__",
    "numpy_to_torch",
    "set_seeds",
    "torch_apply",
    "torch_to",
    "torch_to_numpy",
]
