"""Turns measurement records into ``results.md`` (tables) and ``results.png`` (bar chart).

``python -m benchmarks.report [benchmarks/results/results.json]`` regenerates both from saved records.
matplotlib is imported here only, and only for the chart; without it the PNG is skipped with a message.
"""

from __future__ import annotations

import json
import statistics
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.frameworks import FRAMEWORKS, REFERENCE

# Frameworks that have no in-memory fit(x, y) and get the same data through a shuffled DataLoader.
LOADER_ONLY = {"lightning": "A1", "ignite": "A1"}


@dataclass(frozen=True)
class Stat:
    """Median and range of a set of measurements."""

    median: float
    low: float
    high: float
    n: int

    @classmethod
    def of(cls, values: Iterable[float]) -> Stat:
        data = list(values)
        return cls(statistics.median(data), min(data), max(data), len(data))


def _label(framework: str) -> str:
    return FRAMEWORKS[framework].label if framework in FRAMEWORKS else framework


def _ordered(keys: Iterable[str]) -> list[str]:
    order = list(FRAMEWORKS)
    return sorted(set(keys), key=lambda k: (order.index(k) if k in order else len(order), k))


def throughput(records: list[dict[str, Any]], cpu: bool = False) -> dict[tuple[str, str], Stat]:
    """Samples/s per (scenario, framework) from the successful measurements, per wall or CPU second."""
    values: dict[tuple[str, str], list[float]] = {}
    for r in records:
        if r.get("kind", "run") == "run" and r.get("status") == "ok" and (not cpu or "cpu_seconds" in r):
            rate = r["samples"] / r["cpu_seconds"] if cpu else r["samples_per_s"]
            values.setdefault((r["scenario"], r["framework"]), []).append(rate)
    return {key: Stat.of(v) for key, v in values.items()}


def _ratio_table(thr: dict[tuple[str, str], Stat]) -> list[str]:
    """Scenarios as rows, frameworks as columns, median ratios to the reference as cells."""
    scenarios = list(dict.fromkeys(s for s, _ in thr))
    frameworks = _ordered(f for _, f in thr)
    lines = [
        "| Scenario | " + " | ".join(_label(f) for f in frameworks) + " |",
        "|---|" + "---:|" * len(frameworks),
    ]
    for s in scenarios:
        ref = thr.get((s, REFERENCE))
        cells = [_ratio(thr.get((s, f)), ref) if (s, f) in thr else "–" for f in frameworks]
        lines.append(f"| {s} | " + " | ".join(cells) + " |")
    return lines


def _field(records: list[dict[str, Any]], scenario: str, framework: str, field: str) -> Stat | None:
    values = [
        r[field]
        for r in records
        if r.get("kind", "run") == "run"
        and r.get("status") == "ok"
        and (r["scenario"], r["framework"]) == (scenario, framework)
        and r.get(field) is not None
    ]
    return Stat.of(values) if values else None


def import_times(records: list[dict[str, Any]]) -> dict[str, Stat]:
    """Whole-process import seconds per framework (``torch`` is the ``python -c 'import torch'`` baseline)."""
    values: dict[str, list[float]] = {}
    for r in records:
        if r.get("kind") == "import" and r.get("status") == "ok":
            values.setdefault(r["framework"], []).append(r["seconds"])
    return {key: Stat.of(v) for key, v in values.items()}


def problems(records: list[dict[str, Any]]) -> dict[str, str]:
    """One message per framework (or framework/scenario) that was unavailable, skipped or failed."""
    out: dict[str, str] = {}
    for r in records:
        status = r.get("status")
        if status == "unavailable":
            out[_label(r["framework"])] = f"not measured: {r.get('message', '')}"
        elif status == "error":
            out[f"{_label(r['framework'])} / {r.get('scenario', 'import')}"] = f"error: {r.get('message', '')}"
        elif status == "skipped":
            out[f"{r.get('scenario')}"] = f"skipped: {r.get('message', '')}"
    return out


def _import_order(imports: dict[str, Stat]) -> list[str]:
    """The torch baseline first, then the frameworks in their usual order."""
    rest = _ordered(k for k in imports if k in FRAMEWORKS)
    return ["torch", *rest] if "torch" in imports else rest


def _fmt(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def _ratio(stat: Stat | None, ref: Stat | None) -> str:
    return f"{stat.median / ref.median:.2f}" if stat and ref else "n/a"


def markdown(payload: dict[str, Any]) -> str:
    """The whole report as Markdown."""
    records: list[dict[str, Any]] = payload["records"]
    meta: dict[str, Any] = payload.get("meta", {})
    thr = throughput(records)
    scenarios = list(dict.fromkeys(s for s, _ in thr))
    frameworks = _ordered(f for _, f in thr)
    lines = ["# trainwell benchmarks", ""]
    if meta.get("smoke"):
        lines += ["**Smoke run (tiny sizes): the numbers check the harness, they measure nothing.**", ""]
    lines += [
        f"Command: `{meta.get('command', 'python -m benchmarks.run')}`  ",
        f"Date: {meta.get('date', '?')}; machine: {meta.get('machine', '?')}; "
        f"Python {meta.get('python', '?')}; torch {meta.get('torch', '?')}; "
        f"torch threads: 1; rounds: {meta.get('rounds', '?')}.  ",
        "Versions: " + ", ".join(f"{_label(k)} {v}" for k, v in sorted(meta.get("versions", {}).items())) + ".",
        "",
        "Throughput is samples/s around the one `fit`/`evaluate`/`predict` call (warm-up excluded), "
        "each measurement in a fresh process, frameworks interleaved; median and min–max over rounds. "
        "**Ratio = median throughput / the hand-written loop's median (higher is better).**",
        "",
        "## Ratio to the hand-written loop",
        "",
        *_ratio_table(thr),
        "",
    ]
    cpu_thr = throughput(records, cpu=True)
    if cpu_thr:
        lines += [
            "The same per second of process CPU time instead of wall time: less sensitive to other "
            "processes on a busy machine (the CPU share column below shows how busy it was).",
            "",
            *_ratio_table(cpu_thr),
            "",
        ]
    lines += [
        "## Details",
        "",
        "| Scenario | Framework | samples/s (median) | min–max | ratio | CPU share | peak RSS MiB | runs |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    has_syncs = False
    for s in scenarios:
        ref = thr.get((s, REFERENCE))
        for f in frameworks:
            stat = thr.get((s, f))
            if stat is None:
                continue
            rss = _field(records, s, f, "max_rss_mib")
            share = _field(records, s, f, "cpu_share")
            note = " ¹" if LOADER_ONLY.get(f) == s else ""
            lines.append(
                f"| {s} | {_label(f)}{note} | {_fmt(stat.median)} | {_fmt(stat.low)}–{_fmt(stat.high)} | "
                f"{_ratio(stat, ref)} | {f'{share.median:.2f}' if share else '–'} | "
                f"{f'{rss.median:.0f}' if rss else '–'} | {stat.n} |"
            )
            has_syncs = has_syncs or _field(records, s, f, "syncs_per_step") is not None
    if any(key in thr for key in ((s, f) for f, s in LOADER_ONLY.items())):
        lines += ["", "¹ no in-memory `fit(x, y)`: the same tensors through a shuffled `DataLoader`."]
    lines.append("")
    if has_syncs:
        lines += [
            "## Host-device syncs per step (GPU, torch profiler)",
            "",
            "| Scenario | Framework | syncs/step |",
        ]
        lines.append("|---|---|---:|")
        for s in scenarios:
            for f in frameworks:
                syncs = _field(records, s, f, "syncs_per_step")
                if syncs is not None:
                    lines.append(f"| {s} | {_label(f)} | {syncs.median:.2f} |")
        lines.append("")
    imports = import_times(records)
    if imports:
        base = imports.get("torch")
        lines += [
            "## Import time",
            "",
            "Whole-process wall time of `python -c '<import>'`; **ratio to `python -c 'import torch'` "
            "(lower is better)**. The hand-written loop only imports torch.",
            "",
            "| Framework | import | seconds (median) | min–max | ratio |",
            "|---|---|---:|---:|---:|",
        ]
        for f in _import_order(imports):
            stat = imports[f]
            name, statement = ("torch (baseline)", "import torch") if f == "torch" else (_label(f), "")
            statement = statement or FRAMEWORKS[f].import_statement
            lines.append(
                f"| {name} | `{statement}` | {stat.median:.2f} | {stat.low:.2f}–{stat.high:.2f} | "
                f"{_ratio(stat, base)} |"
            )
        lines.append("")
    issues = problems(records)
    if issues:
        lines += ["## Not measured", ""] + [f"- {k}: {v}" for k, v in issues.items()] + [""]
    return "\n".join(lines)


def chart(payload: dict[str, Any], path: Path) -> bool:
    """Grouped bars of the ratio to the hand-written loop, min–max as error bars; False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: skipping the PNG chart", file=sys.stderr)
        return False
    records = payload["records"]
    thr = throughput(records)
    scenarios = [s for s in dict.fromkeys(s for s, _ in thr) if (s, REFERENCE) in thr]
    frameworks = _ordered(f for _, f in thr)
    imports = import_times(records)
    fig, (ax, ax_imp) = plt.subplots(
        1, 2, figsize=(13, 4.8), gridspec_kw={"width_ratios": [max(len(scenarios), 1), 1.6]}
    )
    width = 0.8 / max(len(frameworks), 1)
    for i, f in enumerate(frameworks):
        xs, ys, err_lo, err_hi = [], [], [], []
        for j, s in enumerate(scenarios):
            if (s, f) not in thr:
                continue
            ref, stat = thr[(s, REFERENCE)].median, thr[(s, f)]
            xs.append(j + (i - (len(frameworks) - 1) / 2) * width)
            ys.append(stat.median / ref)
            err_lo.append((stat.median - stat.low) / ref)
            err_hi.append((stat.high - stat.median) / ref)
        ax.bar(xs, ys, width, yerr=[err_lo, err_hi], capsize=2, label=_label(f))
    ax.axhline(1.0, color="black", linewidth=0.8, linestyle="--")
    ax.set_xticks(range(len(scenarios)), scenarios)
    ax.set_ylabel("throughput / hand-written loop (higher is better)")
    ax.set_title("Throughput ratio (median, min–max)")
    ax.legend(fontsize=8)
    names = _import_order(imports)
    if "torch" in imports:
        base = imports["torch"].median
        ax_imp.bar(range(len(names)), [imports[k].median / base for k in names], color="gray")
        ax_imp.set_xticks(range(len(names)), [k if k == "torch" else _label(k) for k in names], rotation=45)
        ax_imp.axhline(1.0, color="black", linewidth=0.8, linestyle="--")
    ax_imp.set_title("Import time / `import torch`\n(lower is better)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def write_report(payload: dict[str, Any], out_dir: Path) -> list[Path]:
    """Write ``results.md`` and, when matplotlib is there, ``results.png``; return the paths written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    md = out_dir / "results.md"
    md.write_text(markdown(payload), encoding="utf-8")
    written = [md]
    png = out_dir / "results.png"
    if chart(payload, png):
        written.append(png)
    return written


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    source = Path(args[0] if args else Path(__file__).parent / "results" / "results.json")
    payload = json.loads(source.read_text(encoding="utf-8"))
    for path in write_report(payload, source.parent):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
