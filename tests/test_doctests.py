"""Every ``>>>`` example in src/trainwell's docstrings runs and shows what it says (the house's rule: public
functions carry a runnable example), so an example cannot rot silently."""

from __future__ import annotations

import doctest
import importlib
import sys
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parents[1] / "src" / "trainwell"
MODULES = sorted(
    ".".join(path.relative_to(SOURCE.parent).with_suffix("").parts).removesuffix(".__init__")
    for path in SOURCE.rglob("*.py")
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # an example that writes a file writes it here
    if "matplotlib.pyplot" in sys.modules:
        sys.modules["matplotlib.pyplot"].close("all")  # plots draw on the current figure: start from none
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.failed == 0, (
        f"{result.failed} of {result.attempted} docstring examples of {name} failed (run it with -s)"
    )


def test_the_examples_are_found():
    # The parametrization above is only as good as its module list.
    assert "trainwell.model.model" in MODULES and "trainwell" in MODULES and len(MODULES) > 60
