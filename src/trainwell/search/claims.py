"""Who runs which trial: worker identities, whether a trial's worker is still alive, and the claim lock.

Workers share a study through its storage. Claiming a trial (adopting one whose worker died, or starting
the next one) happens under one lock per study, so two workers never take the same trial:

- a PostgreSQL storage: a transaction-level advisory lock on the server (released by the server when the
  holder's connection drops, so a SIGKILLed worker never leaves it held);
- any other storage: a lock file in the search directory (``filelock``, released by the OS when the
  holder dies): one machine, as an SQLite or journal file is.

A running trial records its worker (host, boot, process id and start time) and a heartbeat. A worker on
the same machine is known dead at once (its process is gone); one on another machine when its heartbeat
is older than ``stale_after`` seconds.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

__all__ = ["Heartbeat", "claim_lock", "worker_alive", "worker_identity"]


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _start_ticks(pid: int) -> str | None:
    """The process's start time (Linux ``/proc``), so a reused process id is not taken for the old worker."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()  # the name may hold spaces: fields start after its ')'
    if fields[0] == "Z":  # a zombie has exited: only its entry waits to be reaped
        return None
    return fields[19]


def worker_identity() -> dict[str, Any]:
    """This process as a trial's owner: host, boot, pid and its start time."""
    pid = os.getpid()
    return {"host": socket.gethostname(), "boot": _boot_id(), "pid": pid, "start": _start_ticks(pid)}


def worker_alive(owner: Mapping[str, Any] | None, heartbeat: float | None, stale_after: float) -> bool:
    """Whether the worker recorded as ``owner`` may still be running its trial."""
    if not owner:
        return False
    me = worker_identity()
    if owner.get("host") == me["host"] and owner.get("boot") == me["boot"]:
        pid = int(owner.get("pid", -1))
        if pid == me["pid"]:
            return False  # this very process: its earlier loop ended without finishing the trial
        if owner.get("start") is not None:
            return _start_ticks(pid) == owner["start"]
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return heartbeat is not None and time.time() - heartbeat < stale_after


def _postgres_key(study_name: str) -> int:
    # pg_advisory_xact_lock takes a bigint: a stable hash of the study name, kept in the signed range.
    return zlib.crc32(f"trainwell-search:{study_name}".encode()) - 2**31


@contextlib.contextmanager
def claim_lock(url: str | None, study_name: str, directory: Path) -> Iterator[None]:
    """Holds the study's claim lock (see the module's docstring) for the block."""
    if url is not None and url.startswith(("postgresql", "postgres")):
        import sqlalchemy

        engine = _engines.get(url)
        if engine is None:
            engine = _engines[url] = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
        with engine.begin() as connection:
            connection.execute(
                sqlalchemy.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _postgres_key(study_name)}
            )
            yield
        return
    from filelock import FileLock

    directory.mkdir(parents=True, exist_ok=True)
    with FileLock(str(directory / ".claim.lock")):
        yield


_engines: dict[str, Any] = {}


class Heartbeat:
    """A daemon thread calling ``beat()`` every ``interval`` seconds while a trial runs."""

    def __init__(self, beat: Callable[[], None], interval: float) -> None:
        self._beat = beat
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="trainwell-search-heartbeat", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            with contextlib.suppress(Exception):  # a missed beat only makes the trial look stale sooner
                self._beat()

    def __enter__(self) -> Heartbeat:
        self._beat()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
