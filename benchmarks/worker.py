"""Runs ONE (framework, scenario) measurement in this (fresh) process and prints one JSON line.

``python -m benchmarks.worker --framework poutyne --scenario A1 [--smoke]``

(Smoke runs pass several scenarios to one process, to stay fast; real measurements never do.)

The measurement: import the adapter, run a short warm-up of the same scenario on a few batches
(excluded), build a fresh seeded task, time the one training/evaluation/prediction call with
``time.perf_counter``, then report samples/s and the process's max RSS. GPU scenarios also count
host-device synchronizations per step with the torch profiler, on a separate short run.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import os
import resource
import sys
import time
import traceback
from dataclasses import replace
from typing import Any

RESULT_PREFIX = "BENCH_RESULT "
WARMUP_BATCHES = 10
PROFILE_BATCHES = 20
# Runtime calls that make the host wait for the device (``.item()`` is a copy then a stream sync).
SYNC_EVENTS = ("cudaStreamSynchronize", "cudaDeviceSynchronize", "cudaEventSynchronize", "cudaMemcpy")


def limit_threads() -> None:
    """One intra-op and one inter-op thread, whoever asks (torch, OpenMP, MKL, OpenBLAS)."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    os.environ.setdefault("KERAS_BACKEND", "torch")
    import torch

    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)


def _max_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def count_syncs(prepare: Any, scenario: Any) -> float:
    """Host-device syncs per step over a short profiled training run (a fresh task, not the timed one)."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    from benchmarks.common import make_task

    samples = min(scenario.samples, PROFILE_BATCHES * scenario.batch_size)
    short = replace(scenario, epochs=1, repeats=1, samples=samples)
    call = prepare(make_task(short))
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        call()
        torch.cuda.synchronize()
    syncs = sum(e.count for e in prof.key_averages() if e.key in SYNC_EVENTS)
    return syncs / short.steps


def _check_output(kind: str, output: Any, samples: int) -> None:
    """Cheap sanity check that the adapter really did the work (predictions: one row per sample)."""
    if kind == "predict":
        import numpy as np

        shape = np.asarray(output).shape
        if shape != (samples, 10):
            raise AssertionError(f"predict returned shape {shape}, expected {(samples, 10)}")


def measure(framework: str, scenario_name: str, smoke: bool) -> dict[str, Any]:
    """One measurement, as a JSON-able record (call :func:`limit_threads` first)."""
    import torch

    from benchmarks.common import make_task, scenarios
    from benchmarks.frameworks import FRAMEWORKS

    scenario = scenarios(smoke)[scenario_name]
    record: dict[str, Any] = {"framework": framework, "scenario": scenario_name, "smoke": smoke}
    if scenario.device == "cuda" and not torch.cuda.is_available():
        return {**record, "status": "skipped", "message": "no GPU"}
    try:
        adapter = importlib.import_module(FRAMEWORKS[framework].module)
    except ImportError as exc:
        return {**record, "status": "unavailable", "message": f"{type(exc).__name__}: {exc}"}
    record.update(version=adapter.VERSION, torch=torch.__version__)

    warmup = make_task(scenario, samples=WARMUP_BATCHES * scenario.batch_size)
    adapter.prepare(replace(warmup, scenario=replace(warmup.scenario, epochs=1)))()
    del warmup

    task = make_task(scenario)
    call = adapter.prepare(task)
    gc.collect()
    if scenario.device == "cuda":
        torch.cuda.synchronize()
    start, cpu_start = time.perf_counter(), time.process_time()
    for _ in range(scenario.repeats):
        output = call()
    if scenario.device == "cuda":
        torch.cuda.synchronize()
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    _check_output(scenario.kind, output, scenario.samples)

    record.update(
        status="ok",
        seconds=seconds,
        cpu_seconds=cpu_seconds,
        cpu_share=cpu_seconds / seconds,  # below 1: other processes took the CPU from this one
        samples=scenario.processed,
        samples_per_s=scenario.processed / seconds,
        max_rss_mib=_max_rss_mib(),
        threads=torch.get_num_threads(),
    )
    if scenario.device == "cuda":
        record["syncs_per_step"] = count_syncs(adapter.prepare, scenario)
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--framework", required=True)
    parser.add_argument(
        "--scenario", nargs="+", required=True, help="one (several only for smoke runs: one process for all)"
    )
    parser.add_argument("--smoke", action="store_true", help="tiny sizes")
    args = parser.parse_args(argv)
    limit_threads()
    for scenario in args.scenario:
        try:
            record = measure(args.framework, scenario, args.smoke)
        except Exception as exc:
            traceback.print_exc()
            record = {
                "framework": args.framework,
                "scenario": scenario,
                "smoke": args.smoke,
                "status": "error",
                "message": f"{type(exc).__name__}: {exc}"[:300],
            }
        sys.stdout.flush()
        print(RESULT_PREFIX + json.dumps(record), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
