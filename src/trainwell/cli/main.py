"""The ``trainwell`` command: its subcommands, and the exit status each outcome gets.

Exit statuses: 0 done; 2 a bad config or argument (the message names the key); 130 / 143 interrupted by
SIGINT / SIGTERM (during training the Experiment writes a checkpoint first: run the same command again
to resume); 1 any other error (a training error: the traceback is printed).
"""

from __future__ import annotations

import os
import signal
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import Any

from trainwell.cli.errors import ConfigError, close_matches

__all__ = ["EXIT_BAD_CONFIG", "EXIT_ERROR", "EXIT_SIGINT", "EXIT_SIGTERM", "SUBCOMMANDS", "main"]

EXIT_ERROR, EXIT_BAD_CONFIG, EXIT_SIGINT, EXIT_SIGTERM = 1, 2, 130, 143

SUBCOMMANDS = {
    "fit": "train an Experiment from a config file (rerun on its directory: resume)",
    "test": "evaluate a run's checkpoint (best, last or an epoch) on a split of its data",
    "predict": "write a run's predictions on a split of its data (safetensors)",
    "show": "print a run's epochs, best epoch, test results, config and versions; compare runs",
    "search": "hyperparameter search from a fit config plus a search: section (one run per trial; rerun: resume)",
}

USAGE = "usage: trainwell {" + ",".join(SUBCOMMANDS) + "} ...  (trainwell SUBCOMMAND --help for its options)"


class _Terminated(BaseException):
    """SIGTERM outside training (while the config or the data loads): no checkpoint to write yet."""


def _on_sigterm(number: int, frame: Any) -> None:
    raise _Terminated


def _handler(name: str) -> Callable[[Sequence[str]], int]:
    # Imported on demand: `trainwell show` need not import jsonargparse, nor `--help` torch.
    if name == "fit":
        from trainwell.cli.fit import run_fit

        return run_fit
    if name in ("test", "predict"):
        from trainwell.cli import evaluate

        return evaluate.run_test if name == "test" else evaluate.run_predict
    if name == "show":
        from trainwell.cli.show import run_show

        return run_show
    from trainwell.cli.search import run_search

    return run_search


def _overview() -> str:
    lines = [USAGE, "", "Subcommands:"]
    lines += [f"  {name:<8} {text}" for name, text in SUBCOMMANDS.items()]
    lines += [
        "",
        "Exit status: 0 done, 1 training error, 2 bad config or arguments, 130/143 interrupted (checkpoint written).",
    ]
    return "\n".join(lines)


def _is_main_process() -> bool:
    from trainwell import distributed

    return distributed.is_main_process()


def main(argv: Sequence[str] | None = None) -> int:
    """Runs ``trainwell`` with ``argv`` (default: the command line); returns the exit status.

    >>> main(['--version']) == 0
    trainwell ...
    True
    """
    if argv is None and "" not in sys.path and os.getcwd() not in sys.path:
        # The `trainwell` script, unlike `python -m trainwell`, does not put the working directory on the
        # path: the config's class paths are imported from there too.
        sys.path.insert(0, os.getcwd())
    arguments = list(sys.argv[1:] if argv is None else argv)
    if not arguments or arguments[0] in ("-h", "--help"):
        print(_overview())
        return 0 if arguments else EXIT_BAD_CONFIG
    if arguments[0] == "--version":
        from trainwell.version import __version__

        print(f"trainwell {__version__}")
        return 0
    name, rest = arguments[0], arguments[1:]
    if name not in SUBCOMMANDS:
        close = close_matches(name, SUBCOMMANDS)
        hint = f" Did you mean {' or '.join(repr(word) for word in close)}?" if close else ""
        print(f"trainwell: unknown subcommand {name!r}.{hint}\n{USAGE}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    previous = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return _handler(name)(rest)
    except ConfigError as error:
        if _is_main_process():
            print(f"trainwell {name}: error: {error}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    except SystemExit as stop:  # the Experiment's exit after an interruption's checkpoint (130, 143), or --help
        return stop.code if isinstance(stop.code, int) else (0 if stop.code is None else EXIT_ERROR)
    except KeyboardInterrupt:
        print(f"trainwell {name}: interrupted (SIGINT).", file=sys.stderr)
        return EXIT_SIGINT
    except _Terminated:
        print(f"trainwell {name}: terminated (SIGTERM) before training started; nothing to save.", file=sys.stderr)
        return EXIT_SIGTERM
    except Exception as error:
        traceback.print_exc()
        print(f"trainwell {name}: failed with {type(error).__name__}: {error}", file=sys.stderr)
        return EXIT_ERROR
    finally:
        signal.signal(signal.SIGTERM, previous)
