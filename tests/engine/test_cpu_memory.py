"""glibc's malloc thresholds for CPU training (engine/cpu_memory.py): a real convolutional fit in a fresh
process, its page faults counted by the kernel, with trainwell's setting and with the user's opt-out."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from trainwell.engine import cpu_memory

pytestmark = pytest.mark.skipif(not cpu_memory._glibc(), reason="the setting is glibc's (Linux)")

SCRIPT = """
import resource, sys, torch
from torch import nn
from trainwell import Model
from trainwell.engine import cpu_memory
torch.manual_seed(0)
network = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
                        nn.Flatten(), nn.Linear(32 * 28 * 28, 10))
x, y = torch.randn(640, 1, 28, 28), torch.randint(0, 10, (640,))
model = Model(network, "sgd", "cross_entropy", sanity_check=False)
model.fit(x, y, batch_size=128, epochs=1, verbose=False)  # the heap grows to the working set
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
model.fit(x, y, batch_size=128, epochs=4, verbose=False)
print(cpu_memory.tune_malloc_for_cpu(), (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 20)
"""


def _faults_per_step(**environment: str) -> tuple[str, float]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("MALLOC_")}
    env.update(OMP_NUM_THREADS="1", **environment)
    result = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    tuned, faults = result.stdout.split()
    return tuned, float(faults)


def test_a_cpu_fit_reuses_freed_memory_instead_of_faulting_new_pages_every_step():
    tuned, with_setting = _faults_per_step()
    opted_out, defaults = _faults_per_step(TRAINWELL_MALLOC_TUNING="0")
    assert (tuned, opted_out) == ("True", "False")
    # glibc's defaults: the step's activations go back to the system and fault in again, 5,600-9,100 pages a
    # step on one machine (6 runs), 2,100-5,300 on another; with the thresholds, 0-470 (an occasional new
    # region of the heap). The margins leave room for both (a bound of 2,000 failed once on the second).
    assert defaults > 1000 and with_setting < defaults / 4, (with_setting, defaults)


@pytest.mark.parametrize(
    "environment",
    [
        {"TRAINWELL_MALLOC_TUNING": "off"},
        {"MALLOC_ARENA_MAX": "2"},
        {"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=0"},
        {"LD_PRELOAD": "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"},
    ],
)
def test_the_users_own_choice_is_left_alone(monkeypatch, environment):
    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    assert cpu_memory._user_chose()


def test_nothing_chosen_means_trainwell_sets_it(monkeypatch):
    for key in [key for key in os.environ if key.startswith("MALLOC_")] + ["TRAINWELL_MALLOC_TUNING", "LD_PRELOAD"]:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
    assert not cpu_memory._user_chose()
