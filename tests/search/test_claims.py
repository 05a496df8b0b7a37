"""Whether a trial's worker is alive: this machine's by its process, another machine's by its heartbeat."""

import os
import subprocess
import sys
import time
from pathlib import Path

from trainwell.search.claims import worker_alive, worker_identity


def test_a_worker_of_this_machine_is_alive_while_its_process_runs():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        owner = {**worker_identity(), "pid": child.pid}
        owner["start"] = Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
        assert worker_alive(owner, heartbeat=None, stale_after=1.0)  # no heartbeat needed: the process is there
        assert not worker_alive({**owner, "start": "1"}, heartbeat=time.time(), stale_after=60)  # a reused pid
    finally:
        child.kill()
        child.wait()
    assert not worker_alive(owner, heartbeat=time.time(), stale_after=60)  # gone: taken over at once


def test_a_worker_of_another_machine_is_alive_while_its_heartbeat_is_fresh():
    owner = {"host": "elsewhere", "boot": "another-boot", "pid": os.getpid(), "start": "1"}
    assert worker_alive(owner, heartbeat=time.time() - 5, stale_after=30)
    assert not worker_alive(owner, heartbeat=time.time() - 31, stale_after=30)
    assert not worker_alive(owner, heartbeat=None, stale_after=30)
    assert not worker_alive(None, heartbeat=time.time(), stale_after=30)
