"""Callbacks: hooks around the training loop (see :mod:`trainwell.callbacks.base` for the protocol).

Every callback is importable from here and from ``trainwell`` itself. Optional dependencies
(tensorboard, mlflow) are imported only when a callback that needs them is created.
"""

from trainwell.callbacks.base import Callback, CallbackList
from trainwell.callbacks.best_model_restore import BestModelRestore
from trainwell.callbacks.checkpoint import (
    LRSchedulerCheckpoint,
    ModelCheckpoint,
    OptimizerCheckpoint,
    RandomStatesCheckpoint,
    StateCheckpoint,
)
from trainwell.callbacks.clip import ClipNorm, ClipValue
from trainwell.callbacks.control import EarlyStopping, TerminateOnNaN
from trainwell.callbacks.csv_logger import AtomicCSVLogger, CSVLogger
from trainwell.callbacks.delay import DelayCallback
from trainwell.callbacks.gradients import GradientTracker, TensorBoardGradientTracker
from trainwell.callbacks.gradients_norms import (
    CSVGradientNormLogger,
    GradientNormLogger,
    MemoryGradientNormLogger,
    TensorBoardGradientNormLogger,
)
from trainwell.callbacks.interactive import ContinuePrompt
from trainwell.callbacks.lambda_callback import LambdaCallback
from trainwell.callbacks.lr_scheduler import (
    ChainedScheduler,
    ConstantLR,
    CosineAnnealingLR,
    CosineAnnealingWarmRestarts,
    CyclicLR,
    ExponentialLR,
    LambdaLR,
    LinearLR,
    LRScheduler,
    MultiplicativeLR,
    MultiStepLR,
    OneCycleLR,
    PolynomialLR,
    ReduceLROnPlateau,
    SequentialLR,
    StepLR,
)
from trainwell.callbacks.mlflow import MLFlowLogger
from trainwell.callbacks.monitor import Monitor
from trainwell.callbacks.notification import LoggingNotificator, NotificationCallback, Notificator, WebhookNotificator
from trainwell.callbacks.periodic import PeriodicSaveCallback, PeriodicSaveLambda
from trainwell.callbacks.policies import (
    OptimizerPolicy,
    Phase,
    cosinespace,
    linspace,
    one_cycle_phases,
    sgdr_phases,
)
from trainwell.callbacks.progress import EpochProgressionCallback, ProgressionCallback
from trainwell.callbacks.tensorboard import TensorBoardLogger

__all__ = [
    "AtomicCSVLogger",
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
    "CosineAnnealingLR",
    "CosineAnnealingWarmRestarts",
    "CyclicLR",
    "DelayCallback",
    "EarlyStopping",
    "EpochProgressionCallback",
    "ExponentialLR",
    "GradientNormLogger",
    "GradientTracker",
    "LRScheduler",
    "LRSchedulerCheckpoint",
    "LambdaCallback",
    "LambdaLR",
    "LinearLR",
    "LoggingNotificator",
    "MLFlowLogger",
    "MemoryGradientNormLogger",
    "ModelCheckpoint",
    "Monitor",
    "MultiStepLR",
    "MultiplicativeLR",
    "NotificationCallback",
    "Notificator",
    "OneCycleLR",
    "OptimizerCheckpoint",
    "OptimizerPolicy",
    "PeriodicSaveCallback",
    "PeriodicSaveLambda",
    "Phase",
    "PolynomialLR",
    "ProgressionCallback",
    "RandomStatesCheckpoint",
    "ReduceLROnPlateau",
    "SequentialLR",
    "StateCheckpoint",
    "StepLR",
    "TensorBoardGradientNormLogger",
    "TensorBoardGradientTracker",
    "TensorBoardLogger",
    "TerminateOnNaN",
    "WebhookNotificator",
    "cosinespace",
    "linspace",
    "one_cycle_phases",
    "sgdr_phases",
]
