"""glibc's malloc, set for training on the CPU: large tensors reuse freed memory instead of new pages.

A training step on the CPU allocates and frees the same large buffers (a convolution's activations and
gradients, several MiB each) every step. With glibc's defaults, a freed block above the trim threshold at
the top of the heap goes back to the operating system, and one above the mmap threshold is unmapped; the
next step maps the pages again and the kernel zeroes each one (a minor page fault per 4 KiB). Measured on
the CNN scenario of ``benchmarks/`` (1x28x28, batch 64): about 1,200 page faults per step with the defaults,
about 40 with the thresholds below, and 10-20% more samples per second, for the hand-written loop and for
trainwell alike. A hand-written loop gets the same with ``MALLOC_MMAP_THRESHOLD_`` and
``MALLOC_TRIM_THRESHOLD_`` in its environment; trainwell sets them the first time a model runs on the CPU.

What it costs: the process keeps up to ``TRIM_THRESHOLD`` of freed memory for reuse instead of returning
it, so its resident size after training can stay that much higher. The setting is the process's, for the
rest of its life (glibc has no way back to its adaptive defaults). It is left alone when the user chose
(``TRAINWELL_MALLOC_TUNING=0``, any ``MALLOC_*`` variable or malloc tunable in the environment), under
another allocator (jemalloc or tcmalloc preloaded) and on any system without glibc.
"""

from __future__ import annotations

import ctypes
import os
import sys

__all__ = ["MMAP_THRESHOLD", "TRIM_THRESHOLD", "tune_malloc_for_cpu"]

# glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc's largest on 64-bit systems: blocks below come from the heap
TRIM_THRESHOLD = 128 * 1024 * 1024  # free memory kept at the heap's top before any goes back

_decided: bool | None = None  # None: not decided yet; then whether the thresholds were set


def _user_chose() -> bool:
    environment = os.environ
    if environment.get("TRAINWELL_MALLOC_TUNING", "1").strip().lower() in ("0", "false", "no", "off"):
        return True
    if any(name.startswith("MALLOC_") for name in environment):
        return True
    if "glibc.malloc" in environment.get("GLIBC_TUNABLES", ""):
        return True
    preloaded = environment.get("LD_PRELOAD", "")
    return "jemalloc" in preloaded or "tcmalloc" in preloaded or "mimalloc" in preloaded


def _glibc() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        return os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc")  # type: ignore[union-attr]
    except (ValueError, OSError, AttributeError):
        return False


def tune_malloc_for_cpu() -> bool:
    """Sets glibc's mmap and trim thresholds once per process (see the module's docstring).

    Returns:
        Whether the thresholds are trainwell's (False: left as they were, and why is in the docstring).
    """
    global _decided
    if _decided is not None:
        return _decided
    _decided = False
    if _user_chose() or not _glibc():
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the process's own C library
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    _decided = mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    return _decided
