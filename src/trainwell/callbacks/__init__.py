"""Callbacks: hooks around the training loop (see :mod:`trainwell.callbacks.base` for the protocol).

Every callback is importable from here and from ``trainwell`` itself. Optional dependencies
(tensorboard, mlflow, wandb) are imported only when a callback that needs them is created.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from trainwell.callbacks.base import Callback, CallbackList
from trainwell.callbacks.progress import EpochProgressionCallback, ProgressionCallback
from trainwell.utils.lazy_names import lazy_names

if TYPE_CHECKING:  # what the lazy names below resolve to, for type checkers and IDEs
    from trainwell.callbacks.best_model_restore import BestModelRestore
    from trainwell.callbacks.checkpoint import (
        LRSchedulerCheckpoint,
        ModelCheckpoint,
        OptimizerCheckpoint,
        RandomStatesCheckpoint,
        StateCheckpoint,
        load_random_states,
        save_random_states,
    )
    from trainwell.callbacks.clip import ClipNorm, ClipValue
    from trainwell.callbacks.color_progress import ColorProgress, EmptyStringAttrClass
    from trainwell.callbacks.control import EarlyStopping, TerminateOnNaN
    from trainwell.callbacks.csv_logger import AtomicCSVLogger, CSVLogger
    from trainwell.callbacks.delay import DelayCallback
    from trainwell.callbacks.gradient_logger import (
        AtomicCSVGradientLogger,
        CSVGradientLogger,
        GradientLoggerBase,
        MemoryGradientLogger,
        TensorBoardGradientLogger,
    )
    from trainwell.callbacks.gradients import GradientTracker, TensorBoardGradientTracker, WeightsGradientsStatsTracker
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
    from trainwell.callbacks.mlflow import MLFlowLogger, _get_git_commit
    from trainwell.callbacks.monitor import Monitor
    from trainwell.callbacks.notification import (
        LoggingNotificator,
        NotificationCallback,
        Notificator,
        WebhookNotificator,
    )
    from trainwell.callbacks.periodic import PeriodicSaveCallback, PeriodicSaveLambda
    from trainwell.callbacks.policies import (
        OptimizerPolicy,
        Phase,
        cosinespace,
        linspace,
        one_cycle_phases,
        sgdr_phases,
    )
    from trainwell.callbacks.profiler import StepProfiler
    from trainwell.callbacks.progress_bar import ProgressBar
    from trainwell.callbacks.tensorboard import TensorBoardLogger
    from trainwell.callbacks.wandb_logger import WandBLogger

# Loaded on first use (PEP 562): `from trainwell import Model` does not pay for the experiment layer,
# every callback and the toolbox (each module costs milliseconds to import).
_LAZY = {
    "WandBLogger": "trainwell.callbacks.wandb_logger",
    # Poutyne exports this private helper at its top level (its tests import it from there).
    "_get_git_commit": "trainwell.callbacks.mlflow",
    "AtomicCSVGradientLogger": "trainwell.callbacks.gradient_logger",
    "AtomicCSVLogger": "trainwell.callbacks.csv_logger",
    "BestModelRestore": "trainwell.callbacks.best_model_restore",
    "CSVGradientLogger": "trainwell.callbacks.gradient_logger",
    "CSVGradientNormLogger": "trainwell.callbacks.gradients_norms",
    "CSVLogger": "trainwell.callbacks.csv_logger",
    "ChainedScheduler": "trainwell.callbacks.lr_scheduler",
    "ClipNorm": "trainwell.callbacks.clip",
    "ClipValue": "trainwell.callbacks.clip",
    "ColorProgress": "trainwell.callbacks.color_progress",
    "ConstantLR": "trainwell.callbacks.lr_scheduler",
    "ContinuePrompt": "trainwell.callbacks.interactive",
    "CosineAnnealingLR": "trainwell.callbacks.lr_scheduler",
    "CosineAnnealingWarmRestarts": "trainwell.callbacks.lr_scheduler",
    "CyclicLR": "trainwell.callbacks.lr_scheduler",
    "DelayCallback": "trainwell.callbacks.delay",
    "EarlyStopping": "trainwell.callbacks.control",
    "EmptyStringAttrClass": "trainwell.callbacks.color_progress",
    "ExponentialLR": "trainwell.callbacks.lr_scheduler",
    "GradientLoggerBase": "trainwell.callbacks.gradient_logger",
    "GradientNormLogger": "trainwell.callbacks.gradients_norms",
    "GradientTracker": "trainwell.callbacks.gradients",
    "LRScheduler": "trainwell.callbacks.lr_scheduler",
    "LRSchedulerCheckpoint": "trainwell.callbacks.checkpoint",
    "LambdaCallback": "trainwell.callbacks.lambda_callback",
    "LambdaLR": "trainwell.callbacks.lr_scheduler",
    "LinearLR": "trainwell.callbacks.lr_scheduler",
    "LoggingNotificator": "trainwell.callbacks.notification",
    "MLFlowLogger": "trainwell.callbacks.mlflow",
    "MemoryGradientLogger": "trainwell.callbacks.gradient_logger",
    "MemoryGradientNormLogger": "trainwell.callbacks.gradients_norms",
    "ModelCheckpoint": "trainwell.callbacks.checkpoint",
    "Monitor": "trainwell.callbacks.monitor",
    "MultiStepLR": "trainwell.callbacks.lr_scheduler",
    "MultiplicativeLR": "trainwell.callbacks.lr_scheduler",
    "NotificationCallback": "trainwell.callbacks.notification",
    "Notificator": "trainwell.callbacks.notification",
    "OneCycleLR": "trainwell.callbacks.lr_scheduler",
    "OptimizerCheckpoint": "trainwell.callbacks.checkpoint",
    "OptimizerPolicy": "trainwell.callbacks.policies",
    "PeriodicSaveCallback": "trainwell.callbacks.periodic",
    "PeriodicSaveLambda": "trainwell.callbacks.periodic",
    "Phase": "trainwell.callbacks.policies",
    "PolynomialLR": "trainwell.callbacks.lr_scheduler",
    "ProgressBar": "trainwell.callbacks.progress_bar",
    "RandomStatesCheckpoint": "trainwell.callbacks.checkpoint",
    "load_random_states": "trainwell.callbacks.checkpoint",
    "save_random_states": "trainwell.callbacks.checkpoint",
    "ReduceLROnPlateau": "trainwell.callbacks.lr_scheduler",
    "SequentialLR": "trainwell.callbacks.lr_scheduler",
    "StateCheckpoint": "trainwell.callbacks.checkpoint",
    "StepLR": "trainwell.callbacks.lr_scheduler",
    "StepProfiler": "trainwell.callbacks.profiler",
    "TensorBoardGradientLogger": "trainwell.callbacks.gradient_logger",
    "TensorBoardGradientNormLogger": "trainwell.callbacks.gradients_norms",
    "TensorBoardGradientTracker": "trainwell.callbacks.gradients",
    "TensorBoardLogger": "trainwell.callbacks.tensorboard",
    "TerminateOnNaN": "trainwell.callbacks.control",
    "WebhookNotificator": "trainwell.callbacks.notification",
    "WeightsGradientsStatsTracker": "trainwell.callbacks.gradients",
    "cosinespace": "trainwell.callbacks.policies",
    "linspace": "trainwell.callbacks.policies",
    "one_cycle_phases": "trainwell.callbacks.policies",
    "sgdr_phases": "trainwell.callbacks.policies",
}

__all__ = [
    "AtomicCSVGradientLogger",
    "AtomicCSVLogger",
    "BestModelRestore",
    "CSVGradientLogger",
    "CSVGradientNormLogger",
    "CSVLogger",
    "Callback",
    "CallbackList",
    "ChainedScheduler",
    "ClipNorm",
    "ClipValue",
    "ColorProgress",
    "ConstantLR",
    "ContinuePrompt",
    "CosineAnnealingLR",
    "CosineAnnealingWarmRestarts",
    "CyclicLR",
    "DelayCallback",
    "EarlyStopping",
    "EmptyStringAttrClass",
    "EpochProgressionCallback",
    "ExponentialLR",
    "GradientLoggerBase",
    "GradientNormLogger",
    "GradientTracker",
    "LRScheduler",
    "LRSchedulerCheckpoint",
    "LambdaCallback",
    "LambdaLR",
    "LinearLR",
    "LoggingNotificator",
    "MLFlowLogger",
    "MemoryGradientLogger",
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
    "ProgressBar",
    "ProgressionCallback",
    "RandomStatesCheckpoint",
    "ReduceLROnPlateau",
    "SequentialLR",
    "StateCheckpoint",
    "StepLR",
    "StepProfiler",
    "TensorBoardGradientLogger",
    "TensorBoardGradientNormLogger",
    "TensorBoardGradientTracker",
    "TensorBoardLogger",
    "TerminateOnNaN",
    "WandBLogger",
    "WebhookNotificator",
    "WeightsGradientsStatsTracker",
    "_get_git_commit",
    "cosinespace",
    "linspace",
    "load_random_states",
    "one_cycle_phases",
    "save_random_states",
    "sgdr_phases",
]


__getattr__, __dir__ = lazy_names(globals(), _LAZY, __all__)
