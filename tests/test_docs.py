"""Every Python example of README.md and docs/*.md runs as written, so a docs example that breaks fails CI.

The fenced ``python`` blocks of one Markdown file run in order in one namespace, as a reader pasting them
into one session would (a block may use what an earlier one defined), in a fresh temporary directory.
A comment on the line before a fence changes how its block runs:

- ``<!-- test: fresh -->``: the block starts a new namespace (a new example);
- ``<!-- test: needs cuda -->``: the block runs only where CUDA is available (skipped otherwise);
- ``<!-- test: torchrun N -->``: the block is a whole script, run by ``torchrun --nproc_per_node=N`` on the
  CPU (gloo) with a timeout; it must exit with status 0.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from tests.integration.torchrun import run, torchrun

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
MARKER = re.compile(r"<!--\s*test:\s*(.*?)\s*-->")


@dataclass
class Block:
    line: int  # of the opening fence, 1-based
    code: str
    options: str  # the text of the marker before the fence, '' if none


def python_blocks(path: Path) -> list[Block]:
    """The fenced python blocks of a Markdown file, with the marker (if any) on the line before each."""
    blocks: list[Block] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    index = 0
    while index < len(lines):
        if lines[index].strip() == "```python":
            start = index
            body: list[str] = []
            index += 1
            while index < len(lines) and lines[index].strip() != "```":
                body.append(lines[index])
                index += 1
            marker = MARKER.search(lines[start - 1]) if start > 0 else None
            blocks.append(Block(start + 1, "\n".join(body) + "\n", marker.group(1) if marker else ""))
        index += 1
    return blocks


def _torchrun(block: Block, path: Path, processes: int, directory: Path) -> None:
    """Runs the block as a script under torchrun (once more on the intermittent worker abort that
    tests/integration/torchrun.py describes)."""
    script = directory / f"{path.stem}_{block.line}.py"
    script.write_text(block.code, encoding="utf-8")
    options = [f"--nproc_per_node={processes}"]
    run(lambda: [torchrun(script, options=options, cwd=directory)], f"{path.name}:{block.line}", timeout=300)


@pytest.mark.parametrize("path", DOCUMENTS, ids=[path.name for path in DOCUMENTS])
def test_every_python_example_runs(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # what an example writes (checkpoints, logs, plots) lands here
    monkeypatch.setenv("MPLBACKEND", "Agg")
    namespace: dict[str, object] = {}
    skipped = []
    for block in python_blocks(path):
        if block.options == "fresh":
            namespace = {}
        if block.options == "needs cuda" and not torch.cuda.is_available():
            skipped.append(block.line)
            continue
        if block.options.startswith("torchrun"):
            _torchrun(block, path, int(block.options.split()[1]), tmp_path)
            continue
        assert block.options in ("", "fresh", "needs cuda"), f"{path.name}:{block.line}: unknown marker"
        namespace.setdefault("__name__", f"docs_{path.stem}")
        try:
            exec(compile(block.code, f"{path.name}:{block.line}", "exec"), namespace)
        except Exception as error:
            raise AssertionError(f"the example at {path.name}:{block.line} raised {error!r}") from error
    if skipped:
        warnings.warn(f"{path.name}: the blocks at lines {skipped} need CUDA and did not run here", stacklevel=1)


def test_the_documents_have_examples():
    # The test above is only as good as what it finds: the README and the docs hold examples.
    counts = {path.name: len(python_blocks(path)) for path in DOCUMENTS}
    assert counts["README.md"] >= 4 and sum(counts.values()) >= 15, counts
