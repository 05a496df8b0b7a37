"""The scratch working directory of the command's tests, holding the tiny config ``run.yaml``."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.helpers import TINY_CONFIG


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("cli")
    (directory / "run.yaml").write_text(TINY_CONFIG)
    return directory
