"""Callbacks: hooks around the training loop (see :mod:`trainwell.callbacks.base` for the protocol)."""

from trainwell.callbacks.base import Callback, CallbackList
from trainwell.callbacks.progress import ProgressionCallback

__all__ = ["Callback", "CallbackList", "ProgressionCallback"]
