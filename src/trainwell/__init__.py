"""trainwell: train PyTorch models with a Keras-like, Poutyne-compatible API.

>>> import torch
>>> from trainwell import Model
>>> model = Model(torch.nn.Linear(4, 2), 'adam', 'cross_entropy', batch_metrics=['accuracy'])
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from trainwell import callbacks as _callbacks
from trainwell.engine.step_context import StepContext
from trainwell.engine.step_outputs import StepOutputs
from trainwell.metrics import F1, MAE, MSE, R2, RMSE, BatchMetric, EpochMetric, FBeta, Precision, Recall, SKLearnMetrics
from trainwell.model.model import Model
from trainwell.optimizers import OptimizerGroup
from trainwell.tools.layers import Lambda
from trainwell.utils.lazy_names import lazy_names
from trainwell.utils.tensors import numpy_to_torch, set_seeds, torch_apply, torch_to, torch_to_numpy
from trainwell.version import __version__

if TYPE_CHECKING:  # what the lazy names below resolve to, for type checkers and IDEs
    from trainwell.callbacks import (
        AtomicCSVLogger,
        BestModelRestore,
        Callback,
        CallbackList,
        ChainedScheduler,
        ClipNorm,
        ClipValue,
        ConstantLR,
        ContinuePrompt,
        CosineAnnealingLR,
        CosineAnnealingWarmRestarts,
        CSVGradientNormLogger,
        CSVLogger,
        CyclicLR,
        DelayCallback,
        EarlyStopping,
        EpochProgressionCallback,
        ExponentialLR,
        GradientNormLogger,
        GradientTracker,
        LambdaCallback,
        LambdaLR,
        LinearLR,
        LoggingNotificator,
        LRScheduler,
        LRSchedulerCheckpoint,
        MemoryGradientNormLogger,
        MLFlowLogger,
        ModelCheckpoint,
        MultiplicativeLR,
        MultiStepLR,
        NotificationCallback,
        Notificator,
        OneCycleLR,
        OptimizerCheckpoint,
        OptimizerPolicy,
        PeriodicSaveCallback,
        PeriodicSaveLambda,
        Phase,
        PolynomialLR,
        ProgressionCallback,
        RandomStatesCheckpoint,
        ReduceLROnPlateau,
        SequentialLR,
        StateCheckpoint,
        StepLR,
        StepProfiler,
        TensorBoardGradientNormLogger,
        TensorBoardGradientTracker,
        TensorBoardLogger,
        TerminateOnNaN,
        WebhookNotificator,
        cosinespace,
        linspace,
        one_cycle_phases,
        sgdr_phases,
    )
    from trainwell.experiment.experiment import Experiment, ModelBundle
    from trainwell.search.grid import Hyperparameter
    from trainwell.storage.checkpoints import CorruptCheckpointError
    from trainwell.tools.lr_finder import LRFinderResult, find_lr
    from trainwell.tools.plotting import history_frame, plot_history, plot_metric
    from trainwell.tools.summary import Summary, materialize, summary


# Loaded on first use (PEP 562): `from trainwell import Model` does not pay for the experiment layer,
# every callback and the toolbox (each module costs milliseconds to import).
_LAZY = {
    "CorruptCheckpointError": "trainwell.storage.checkpoints",
    "Experiment": "trainwell.experiment.experiment",
    "Hyperparameter": "trainwell.search.grid",
    "LRFinderResult": "trainwell.tools.lr_finder",
    "ModelBundle": "trainwell.experiment.experiment",
    "Summary": "trainwell.tools.summary",
    "find_lr": "trainwell.tools.lr_finder",
    "history_frame": "trainwell.tools.plotting",
    "materialize": "trainwell.tools.summary",
    "plot_history": "trainwell.tools.plotting",
    "plot_metric": "trainwell.tools.plotting",
    "summary": "trainwell.tools.summary",
    # Every callback: trainwell.callbacks is loaded anyway (Model needs its base), and resolves its own
    # names lazily, one module each.
    **{name: "trainwell.callbacks" for name in _callbacks.__all__},
}

__all__ = [
    "F1",
    "MAE",
    "MSE",
    "R2",
    "RMSE",
    "AtomicCSVLogger",
    "BatchMetric",
    "BestModelRestore",
    "CSVGradientNormLogger",
    "CSVLogger",
    "Callback",
    "CallbackList",
    "ChainedScheduler",
    "ClipNorm",
    "ClipValue",
    "ConstantLR",
    "ContinuePrompt",
    "CorruptCheckpointError",
    "CosineAnnealingLR",
    "CosineAnnealingWarmRestarts",
    "CyclicLR",
    "DelayCallback",
    "EarlyStopping",
    "EpochMetric",
    "EpochProgressionCallback",
    "Experiment",
    "ExponentialLR",
    "FBeta",
    "GradientNormLogger",
    "GradientTracker",
    "Hyperparameter",
    "LRFinderResult",
    "LRScheduler",
    "LRSchedulerCheckpoint",
    "Lambda",
    "LambdaCallback",
    "LambdaLR",
    "LinearLR",
    "LoggingNotificator",
    "MLFlowLogger",
    "MemoryGradientNormLogger",
    "Model",
    "ModelBundle",
    "ModelCheckpoint",
    "MultiStepLR",
    "MultiplicativeLR",
    "NotificationCallback",
    "Notificator",
    "OneCycleLR",
    "OptimizerCheckpoint",
    "OptimizerGroup",
    "OptimizerPolicy",
    "PeriodicSaveCallback",
    "PeriodicSaveLambda",
    "Phase",
    "PolynomialLR",
    "Precision",
    "ProgressionCallback",
    "RandomStatesCheckpoint",
    "Recall",
    "ReduceLROnPlateau",
    "SKLearnMetrics",
    "SequentialLR",
    "StateCheckpoint",
    "StepContext",
    "StepLR",
    "StepOutputs",
    "StepProfiler",
    "Summary",
    "TensorBoardGradientNormLogger",
    "TensorBoardGradientTracker",
    "TensorBoardLogger",
    "TerminateOnNaN",
    "WebhookNotificator",
    "__version__",
    "cosinespace",
    "find_lr",
    "history_frame",
    "linspace",
    "materialize",
    "numpy_to_torch",
    "one_cycle_phases",
    "plot_history",
    "plot_metric",
    "set_seeds",
    "sgdr_phases",
    "summary",
    "torch_apply",
    "torch_to",
    "torch_to_numpy",
]


__getattr__, __dir__ = lazy_names(globals(), _LAZY, __all__)
