"""``trainwell search``: a placeholder, until the hyperparameter search (the search issue, #15) lands.

The search issue builds the searches that run one Experiment per trial; this subcommand will read a
``search.yaml`` in ``fit``'s config language plus a search space. Until then it says so and exits with
status 2, so that a script calling it fails loudly instead of silently training nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

from trainwell.cli.errors import ConfigError

__all__ = ["run_search"]

MESSAGE = (
    "`trainwell search` is not available yet: it comes with the hyperparameter search (issue #15, "
    "searches running one Experiment per trial). Meanwhile, run `trainwell fit` once per configuration, "
    "with overrides such as `--optimizer.lr 3e-4 --directory runs/lr3e-4`, and compare the runs with "
    "`trainwell show runs/*`."
)


def run_search(argv: Sequence[str]) -> int:
    """Refuses with a message saying where the search comes from (exit status 2)."""
    raise ConfigError(MESSAGE)
