"""Callbacks: hooks around the training loop (see :mod:`trainwell.callbacks.base` for the protocol)."""

from trainwell.callbacks.base import Callback, CallbackList
from trainwell.callbacks.clip import ClipNorm, ClipValue
from trainwell.callbacks.control import EarlyStopping, TerminateOnNaN
from trainwell.callbacks.delay import DelayCallback
from trainwell.callbacks.lambda_callback import LambdaCallback
from trainwell.callbacks.monitor import Monitor
from trainwell.callbacks.progress import EpochProgressionCallback, ProgressionCallback

__all__ = [
    "Callback",
    "CallbackList",
    "ClipNorm",
    "ClipValue",
    "DelayCallback",
    "EarlyStopping",
    "EpochProgressionCallback",
    "LambdaCallback",
    "Monitor",
    "ProgressionCallback",
    "TerminateOnNaN",
]
