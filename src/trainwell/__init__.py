"""trainwell: train PyTorch models with a Keras-like, Poutyne-compatible API.

>>> import torch
>>> from trainwell import Model
>>> model = Model(torch.nn.Linear(4, 2), 'adam', 'cross_entropy', batch_metrics=['accuracy'])
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from trainwell import callbacks as _callbacks
from trainwell import metrics as _metrics
from trainwell import utils as _utils
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
    from trainwell.search.search import Search
    from trainwell.search.space import LogRange, Range
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
    "LogRange": "trainwell.search.space",
    "ModelBundle": "trainwell.experiment.experiment",
    "Range": "trainwell.search.space",
    "Search": "trainwell.search.search",
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
    # Metric and utils names not imported above (both packages are loaded already).
    **{name: "trainwell.metrics" for name in _metrics.__all__},
    **{name: "trainwell.utils" for name in _utils.__all__},
}

# The public API: the names above, plus every name of the callbacks', metrics' and utils' own __all__ (a
# name added there is public here too, without a second list to keep in step).
__all__ = sorted(
    {
        "Lambda",
        "Model",
        "OptimizerGroup",
        "StepContext",
        "StepOutputs",
        "__version__",
        *_LAZY,
        *_metrics.__all__,
        *_utils.__all__,
    }
)


__getattr__, __dir__ = lazy_names(globals(), _LAZY, __all__)
