"""Instructions executed, counted by valgrind's callgrind: a measure that other processes cannot disturb.

``python -m benchmarks.instructions [--scenarios C-evaluate C-predict] [--frameworks handwritten trainwell]
[--samples 4096] [--calls 3] [--imports]``

Wall-clock ratios on a shared 2-core machine move by several per cent from run to run; instruction
counts do not (the same binary, inputs and environment give the same count, whatever else runs). For
each (framework, scenario) this starts ``valgrind --tool=callgrind --instr-atstart=no`` on a child that
builds the scenario's task with the same adapter as ``benchmarks.run``, warms it up, then switches
counting on with ``callgrind_control`` around ``--calls`` timed calls only. ``--imports`` also counts the
whole process of ``python -c 'import torch'`` and of each framework's import statement.

Fewer instructions means less work, not always less time (cache misses and vector width differ), so this
explains the timed ratios of ``benchmarks.run``; it does not replace them.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_TOTAL = re.compile(r"Collected\s*:\s*(\d+)")


def _child(framework: str, scenario_name: str, samples: int, calls: int) -> None:
    """In the process valgrind runs: the task, a warm-up, then counting around ``calls`` calls."""
    import importlib

    from benchmarks.common import make_task, scenarios
    from benchmarks.frameworks import FRAMEWORKS
    from benchmarks.worker import limit_threads

    limit_threads()
    scenario = replace(scenarios()[scenario_name], samples=samples, repeats=1)
    adapter = importlib.import_module(FRAMEWORKS[framework].module)
    call = adapter.prepare(make_task(scenario))
    call()  # warm-up: first-call costs (lazy imports, allocator) are not the steady state
    pid = str(os.getpid())
    subprocess.run(["callgrind_control", "-i", "on", pid], check=True, capture_output=True)
    for _ in range(calls):
        call()
    subprocess.run(["callgrind_control", "-i", "off", pid], check=True, capture_output=True)


def _count(command: list[str], *, instrument_at_start: bool) -> int:
    """Instructions callgrind counted for ``command`` (only where counting was switched on, unless at start)."""
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "callgrind.out"
        valgrind = [
            "valgrind",
            "--tool=callgrind",
            f"--instr-atstart={'yes' if instrument_at_start else 'no'}",
            f"--callgrind-out-file={out}",
        ]
        environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
        proc = subprocess.run([*valgrind, *command], env=environment, capture_output=True, text=True, check=False)
        found = _TOTAL.findall(proc.stderr)
        if proc.returncode != 0 or not found:
            raise RuntimeError(f"{' '.join(command)} failed under callgrind:\n{proc.stderr[-2000:]}")
        return sum(int(value) for value in found)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", nargs="*", default=["C-evaluate", "C-predict"])
    parser.add_argument("--frameworks", nargs="+", default=["handwritten", "trainwell"])
    parser.add_argument("--samples", type=int, default=4096, help="dataset size (smaller than run's: valgrind is slow)")
    parser.add_argument("--calls", type=int, default=3, help="counted calls per scenario")
    parser.add_argument("--imports", action="store_true", help="also count each framework's whole import")
    parser.add_argument("--child", nargs=2, metavar=("FRAMEWORK", "SCENARIO"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(*args.child, args.samples, args.calls)
        return 0
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        print("valgrind (with callgrind_control) is needed: apt-get install valgrind", file=sys.stderr)
        return 2
    from benchmarks.frameworks import FRAMEWORKS

    print("| measured | " + " | ".join(args.frameworks) + " | ratio to the first |")
    print("|---|" + "---:|" * (len(args.frameworks) + 1))
    for scenario in args.scenarios:
        counts = []
        for framework in args.frameworks:
            child = ["--child", framework, scenario, "--samples", str(args.samples), "--calls", str(args.calls)]
            counts.append(_count([sys.executable, "-m", "benchmarks.instructions", *child], instrument_at_start=False))
        _row(f"{scenario} ({args.calls} calls, {args.samples} samples)", counts)
    if args.imports:
        counts = [_count([sys.executable, "-c", "import torch"], instrument_at_start=True)]
        counts += [
            _count([sys.executable, "-c", FRAMEWORKS[f].import_statement], instrument_at_start=True)
            for f in args.frameworks
            if f != "handwritten"
        ]
        names = ["import torch", *(FRAMEWORKS[f].import_statement for f in args.frameworks if f != "handwritten")]
        _row(f"imports: {', '.join(names)}", counts)
    return 0


def _ratios(counts: list[int]) -> str:
    """Each count over the first (below 1: fewer instructions than the reference)."""
    return ", ".join(f"{count / counts[0]:.3f}" for count in counts[1:])


def _row(label: str, counts: list[int]) -> None:
    print(f"| {label} | " + " | ".join(f"{c:,}" for c in counts) + " | " + _ratios(counts) + " |", flush=True)


if __name__ == "__main__":
    sys.exit(main())
