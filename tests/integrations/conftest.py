"""Shared by the transformers integration tests: one thread (a shared 2-core machine), tiny BERT models."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    # Tiny models are dominated by thread synchronization: one thread is several times faster here,
    # and far faster when other processes share the cores.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
