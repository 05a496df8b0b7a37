"""Runs the benchmark suite: every (framework, scenario) in a fresh process, interleaved, several rounds.

``python -m benchmarks.run [--smoke] [--rounds N] [--frameworks ...] [--scenarios ...] [--out DIR]``

Writes ``results.json`` (the raw records), ``results.md`` and ``results.png`` to ``--out``
(default ``benchmarks/results``, or ``benchmarks/results/smoke`` with ``--smoke``).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from benchmarks.common import applies, scenarios
from benchmarks.frameworks import FRAMEWORKS, REFERENCE
from benchmarks.report import write_report
from benchmarks.worker import RESULT_PREFIX

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SCENARIOS = ["A1", "A2", "A3", "B", "C-evaluate", "C-predict", "D-A1", "D-B", "E"]


def worker_env() -> dict[str, str]:
    """The environment of every child: one thread everywhere, Keras on torch, the repo importable."""
    env = dict(os.environ)
    env.update(
        OMP_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
        OPENBLAS_NUM_THREADS="1",
        KERAS_BACKEND="torch",
        PYTHONWARNINGS="ignore",
        PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p),
    )
    return env


def run_worker(framework: str, scenarios: list[str], smoke: bool, timeout: float) -> list[dict[str, Any]]:
    """Measure in a fresh ``python -m benchmarks.worker`` process: one scenario (several for smoke runs)."""
    cmd = [sys.executable, "-m", "benchmarks.worker", "--framework", framework, "--scenario", *scenarios]
    if smoke:
        cmd.append("--smoke")
    base = {"kind": "run", "framework": framework, "smoke": smoke}
    try:
        proc = subprocess.run(
            cmd, cwd=ROOT, env=worker_env(), capture_output=True, text=True, timeout=timeout, check=False
        )
        stdout, message = (
            proc.stdout,
            f"worker exited {proc.returncode}: {(proc.stderr or proc.stdout)[-500:]}",
        )
    except subprocess.TimeoutExpired as exc:
        stdout, message = (exc.stdout or b"").decode(errors="replace"), f"timed out after {timeout:.0f} s"
    found = {}
    for line in stdout.splitlines():
        if line.startswith(RESULT_PREFIX):
            record = json.loads(line[len(RESULT_PREFIX) :])
            found[record["scenario"]] = {**base, **record}
    if any(r["status"] == "error" for r in found.values()):
        sys.stderr.write(proc.stderr[-3000:])
    return [found.get(s, {**base, "scenario": s, "status": "error", "message": message}) for s in scenarios]


def time_import(framework: str, timeout: float) -> dict[str, Any]:
    """Whole-process wall time of ``python -c '<import statement>'`` (``torch``: the baseline)."""
    statement = "import torch" if framework == "torch" else FRAMEWORKS[framework].import_statement
    start = time.perf_counter()
    try:
        proc = subprocess.run(
            [sys.executable, "-c", statement],
            cwd=ROOT,
            env=worker_env(),
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {"kind": "import", "framework": framework, "status": "error", "message": "timed out"}
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        return {"kind": "import", "framework": framework, "status": "unavailable", "message": "import failed"}
    return {"kind": "import", "framework": framework, "status": "ok", "seconds": seconds}


def rotated(items: list[str], shift: int) -> list[str]:
    """``items`` rotated by ``shift``, so no framework always runs first."""
    if not items:
        return items
    shift %= len(items)
    return items[shift:] + items[:shift]


def _describe(record: dict[str, Any]) -> str:
    if record["status"] == "ok":
        if record["kind"] == "import":
            return f"{record['seconds']:.2f} s"
        return f"{record['samples_per_s']:,.0f} samples/s, {record['max_rss_mib']:.0f} MiB"
    return f"{record['status']}: {record.get('message', '')}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, one round: checks the harness")
    parser.add_argument("--rounds", type=int, default=None, help="rounds (default 3, smoke 1)")
    parser.add_argument("--frameworks", nargs="+", default=list(FRAMEWORKS), choices=list(FRAMEWORKS))
    parser.add_argument("--scenarios", nargs="+", default=DEFAULT_SCENARIOS, choices=DEFAULT_SCENARIOS)
    parser.add_argument("--no-import-time", action="store_true", help="skip the import-time measurements")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per measurement")
    parser.add_argument("--out", type=Path, default=None, help="output directory")
    args = parser.parse_args(argv)
    rounds = args.rounds or (1 if args.smoke else 3)
    out_dir: Path = args.out or ROOT / "benchmarks" / "results" / ("smoke" if args.smoke else "")
    out_dir.mkdir(parents=True, exist_ok=True)

    chosen = list(dict.fromkeys(args.scenarios))
    records: list[dict[str, Any]] = []
    skipped: set[str] = set()  # scenarios a worker skipped (no GPU): not retried

    frameworks = list(dict.fromkeys(args.frameworks))
    unavailable: set[str] = set()
    versions: dict[str, str] = {}
    meta = {
        "command": "python -m benchmarks.run " + shlex.join(argv if argv is not None else sys.argv[1:]),
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {platform.processor() or ''} {os.cpu_count()} cores".strip(),
        "python": platform.python_version(),
        "rounds": rounds,
        "smoke": args.smoke,
        "versions": versions,
    }
    payload = {"meta": meta, "records": records}
    results_json = out_dir / "results.json"

    def save(record: dict[str, Any]) -> None:
        records.append({**record, "round": round_})
        results_json.write_text(json.dumps(payload, indent=1), encoding="utf-8")

    for round_ in range(1, rounds + 1):
        # A real measurement is one (framework, scenario) per process; a smoke run, one process per framework.
        jobs = [[s] for s in chosen if s not in skipped] if not args.smoke else [chosen]
        for job in jobs:
            order = rotated(frameworks, round_ - 1)
            # Each framework only in the scenarios it is measured in (the HF Trainer: E only).
            work = {
                framework: [name for name in job if applies(framework, scenarios(args.smoke)[name])]
                for framework in order
            }
            work = {framework: names for framework, names in work.items() if names and framework not in unavailable}
            results: dict[str, list[dict[str, Any]]] = {}
            if args.smoke:  # a smoke run checks the harness, not speed: its workers run side by side
                with ThreadPoolExecutor(max_workers=len(work) or 1) as pool:
                    futures = {f: pool.submit(run_worker, f, names, True, args.timeout) for f, names in work.items()}
                    results = {framework: future.result() for framework, future in futures.items()}
            for framework, measured in work.items():
                found = results[framework] if args.smoke else run_worker(framework, measured, args.smoke, args.timeout)
                for record in found:
                    name = record["scenario"]
                    print(f"[{round_}/{rounds}] {name:<10} {framework:<11} {_describe(record)}", file=sys.stderr)
                    if record["status"] == "unavailable":
                        unavailable.add(framework)
                    elif record["status"] == "skipped":
                        skipped.add(name)
                    if "version" in record:
                        versions[framework] = record["version"]
                        meta["torch"] = record.get("torch", "?")
                    save(record)
                if skipped.issuperset(job):
                    break
        if not args.no_import_time:
            names = ["torch", *(f for f in frameworks if f != REFERENCE and f not in unavailable)]
            for name in rotated(names, round_ - 1):
                record = time_import(name, args.timeout)
                print(f"[{round_}/{rounds}] import     {name:<11} {_describe(record)}", file=sys.stderr)
                save(record)

    for framework in sorted(unavailable):
        print(f"note: {framework} not measured (not importable)", file=sys.stderr)
    for path in write_report(payload, out_dir):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
