"""No code in ``src/trainwell`` can unpickle: no ``pickle.load``/``loads``, no ``torch.load`` without
``weights_only=True``, no ``pickle_module=``. The scanner reads the syntax tree (so a docstring that
mentions ``torch.load(...)`` is not a call), follows import aliases, and is itself tested on bad code."""

from __future__ import annotations

import ast
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parents[1] / "src" / "trainwell"
UNPICKLERS = {("pickle", "load"), ("pickle", "loads"), ("pickle", "Unpickler"), ("_pickle", "load")}
UNPICKLERS |= {("_pickle", "loads"), ("dill", "load"), ("dill", "loads"), ("cloudpickle", "load")}
UNPICKLERS |= {("cloudpickle", "loads")}


@dataclass
class Scan:
    """What the scanner found in one source: the forbidden calls, and every ``torch.load`` it checked."""

    problems: list[str] = field(default_factory=list)
    torch_loads: int = 0


def _qualified_names(tree: ast.AST) -> dict[str, str]:
    """Local name -> the module or ``module.attribute`` it stands for (``import pickle as p``...)."""
    names = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                names[alias.asname or alias.name.split(".")[0]] = (
                    alias.name if alias.asname else alias.name.split(".")[0]
                )
        elif isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                names[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return names


def _called(function: ast.expr, names: dict[str, str]) -> tuple[str, str] | None:
    """``(module, attribute)`` that a call's function resolves to, e.g. ``('torch', 'load')``."""
    if isinstance(function, ast.Attribute) and isinstance(function.value, ast.Name):
        module = names.get(function.value.id, function.value.id)
        return module, function.attr
    if isinstance(function, ast.Name) and "." in names.get(function.id, ""):
        module, _, attribute = names[function.id].rpartition(".")
        return module, attribute
    return None


def scan_source(text: str, filename: str = "<snippet>") -> Scan:
    """Finds the calls that could unpickle in Python source ``text``."""
    tree = ast.parse(text, filename)
    names = _qualified_names(tree)
    scan = Scan()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        where = f"{filename}:{node.lineno}"
        if any(keyword.arg == "pickle_module" for keyword in node.keywords):
            scan.problems.append(f"{where}: pickle_module=")
        called = _called(node.func, names)
        if called in UNPICKLERS:
            scan.problems.append(f"{where}: {'.'.join(called)}(")
        elif called == ("torch", "load"):
            scan.torch_loads += 1
            safe = any(
                keyword.arg == "weights_only"
                and isinstance(keyword.value, ast.Constant)
                and keyword.value.value is True
                for keyword in node.keywords
            )
            if not safe:
                scan.problems.append(f"{where}: torch.load( without weights_only=True")
    return scan


def test_src_never_unpickles() -> None:
    files = sorted(SOURCE.rglob("*.py"))
    assert len(files) > 20 and SOURCE / "storage" / "files.py" in files  # the scan cannot pass on an empty glob
    problems, torch_loads = [], 0
    for path in files:
        scan = scan_source(path.read_text(encoding="utf-8"), str(path.relative_to(SOURCE.parent)))
        problems += scan.problems
        torch_loads += scan.torch_loads
    assert problems == []
    # storage/files.py's fallback for plain torch files is a real torch.load call: the scanner sees and checks it.
    assert torch_loads >= 1


BAD = {
    "pickle.load": "import pickle\nwith open('f', 'rb') as f:\n    pickle.load(f)\n",
    "pickle.loads": "import pickle\npickle.loads(b'')\n",
    "aliased module": "import pickle as p\np.loads(b'')\n",
    "imported function": "from pickle import loads as read\nread(b'')\n",
    "Unpickler": "import pickle\npickle.Unpickler(f).load()\n",
    "torch.load bare": "import torch\ntorch.load('w.pt')\n",
    "torch.load weights_only=False": "import torch\ntorch.load('w.pt', weights_only=False)\n",
    "torch.load weights_only variable": "import torch\nsafe = True\ntorch.load('w.pt', weights_only=safe)\n",
    "torch.load kwargs": "import torch\ntorch.load('w.pt', **options)\n",
    "from torch import load": "from torch import load\nload('w.pt', map_location='cpu')\n",
    "pickle_module": "import torch, pickle\ntorch.save(x, 'f', pickle_module=pickle)\n",
    "pickle_module with weights_only": "import torch, m\ntorch.load('f', weights_only=True, pickle_module=m)\n",
    "nested in a function": "def f():\n    import pickle\n    return [pickle.loads(b) for b in bs]\n",
}


@pytest.mark.parametrize("snippet", sorted(BAD))
def test_the_scanner_catches_each_forbidden_call(snippet: str) -> None:
    problems = scan_source(BAD[snippet], "bad.py").problems
    assert len(problems) == 1, problems
    last_line = len(BAD[snippet].rstrip().splitlines())
    assert problems[0].startswith(f"bad.py:{last_line}: ")


def test_the_scanner_accepts_safe_code_and_mentions_in_text() -> None:
    good = textwrap.dedent(
        '''
        """Plain torch files are read with ``torch.load(f, weights_only=True)``; never pickle.loads(data)."""
        import pickle
        import torch

        # torch.load(path) would unpickle; pickle_module= is forbidden
        state = torch.load("w.pt", map_location="cpu", weights_only=True)
        data = pickle.dumps({"a": 1})  # writing is not loading
        message = "pickle.load( and torch.load( are forbidden"
        '''
    )
    scan = scan_source(good, "good.py")
    assert scan.problems == [] and scan.torch_loads == 1
