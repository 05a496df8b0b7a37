"""The ``trainwell`` command: train, resume, test, predict and inspect runs from config files.

``trainwell fit --config run.yaml`` builds an :class:`~trainwell.Experiment` from a YAML config
(:mod:`~trainwell.cli.config`), trains it and saves the resolved config in the run directory;
``test``, ``predict`` and ``show`` work on a run directory. See ``docs/cli.md``. Modules:
:mod:`~trainwell.cli.main` (subcommands, exit statuses), :mod:`~trainwell.cli.config` (the config language),
:mod:`~trainwell.cli.components` (network and data), :mod:`~trainwell.cli.fit`,
:mod:`~trainwell.cli.evaluate` (test, predict), :mod:`~trainwell.cli.show`, :mod:`~trainwell.cli.search`
(a placeholder until the search issue), :mod:`~trainwell.cli.errors`.
"""

from trainwell.cli.main import main

__all__ = ["main"]
