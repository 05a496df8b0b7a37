"""Running real ``torchrun`` processes from tests: the environment they get, waiting for them, killing a
whole process tree, and the one failure that is started again.

The intermittent failure: one gloo worker sometimes aborts ("terminate called without an active
exception", SIGABRT) as its interpreter shuts down, after its work is done. It was seen in about 1 of 5
full-suite runs on fresh clones and in none of ~45 runs of the same command alone; the one backtrace caught
had no Python frame (the main thread, at finalization). A run that ends that way is started once more and
the abort is reported as a warning, so that it stays visible; any other failure, or a second abort, fails.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

ROOT = Path(__file__).resolve().parents[2]
ENVIRONMENT = {
    **os.environ,
    "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)]),
    "OMP_NUM_THREADS": "1",  # torchrun's default too: two processes on two cores
    # A worker that aborts prints the Python stacks of its threads: where the abort hits.
    "PYTHONFAULTHANDLER": "1",
}
ABORT = "terminate called without an active exception"
T = TypeVar("T")


class WorkerAbortedError(AssertionError):
    """A run failed with the intermittent worker abort; the message is what the workers said."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def torchrun(
    script: Path | str,
    *arguments: str,
    options: Sequence[str] = ("--nproc_per_node=2",),
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.Popen[str]:
    """Starts ``torchrun [options] script arguments`` (a free port unless ``options`` names one)."""
    port = [] if any(option.startswith("--master_port") for option in options) else [f"--master_port={free_port()}"]
    command = [sys.executable, "-m", "torch.distributed.run", *options, *port, str(script), *arguments]
    return subprocess.Popen(
        command,
        env={**ENVIRONMENT, **(env or {})},
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def descendants(pid: int) -> list[int]:
    """Every process started below ``pid`` (torchrun puts its workers in sessions of their own)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def kill_all(process: subprocess.Popen[str]) -> None:
    """SIGKILL for ``process`` and everything below it, at once."""
    for pid in [process.pid, *descendants(process.pid)]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def worker_aborted(err: str) -> bool:
    """Whether a failed run's stderr shows the abort: its message, or torchrun's report of a SIGABRT."""
    return ABORT in err or "(SIGABRT)" in err


def failure(err: str) -> str:
    """What a failed run said: the workers' own errors (an abort's ``what()``, a traceback) come before
    torchrun's long summary, which alone would fill the message."""
    lines = err.splitlines()
    markers = ("Traceback", "Error", "terminate called", "what()", "Abort", "Signal")
    first = next((index for index, line in enumerate(lines) if any(mark in line for mark in markers)), len(lines))
    return "\n".join(lines[max(0, first - 5) : first + 60]) + "\n...\n" + err[-3000:]


def finish(agents: Sequence[subprocess.Popen[str]], timeout: float = 150) -> tuple[str, str]:
    """Waits for every agent (one per "node") and returns their stdout and stderr, joined. A hung run is
    killed whole, so that no collective outlives the test; a failed one raises, WorkerAbortedError for the
    abort above."""
    outputs = []
    for process in agents:
        try:
            outputs.append(process.communicate(timeout=timeout))
        except subprocess.TimeoutExpired:
            for agent in agents:
                kill_all(agent)
                agent.communicate()
            raise
    out, err = "".join(out for out, _ in outputs), "".join(err for _, err in outputs)
    if all(process.returncode == 0 for process in agents):
        return out, err
    # The workers' own errors first: the progress bars on stdout would push them out of CI's log.
    said = f"{failure(err)}\nstdout's end:\n{out[-2000:]}"
    raise (WorkerAbortedError if worker_aborted(err) else AssertionError)(said)


def retrying_abort(scenario: Callable[[int], T], what: str) -> T:
    """``scenario(attempt)``, run once more (attempt 1) if it raised WorkerAbortedError, with a warning."""
    try:
        return scenario(0)
    except WorkerAbortedError as aborted:
        warnings.warn(f"a torchrun worker aborted in {what}; it was run again. What it said:\n{aborted}", stacklevel=2)
        return scenario(1)


def run(start: Callable[[], Sequence[subprocess.Popen[str]]], what: str, timeout: float = 150) -> tuple[str, str]:
    """Starts the agents ``start()`` returns and waits for them, once more on the abort."""
    return retrying_abort(lambda attempt: finish(start(), timeout), what)
