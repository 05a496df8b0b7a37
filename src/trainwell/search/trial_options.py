"""Each trial's own callbacks and schedulers: the objects a search is given are copied for every trial.

A search passes the same ``train*`` keyword arguments to every trial. Callbacks and learning-rate
schedulers carry a state (an ``EarlyStopping``'s best value and patience count, a scheduler's step), so
one object shared by the trials would start trial 2 where trial 1 ended. Each trial gets a deep copy of
the objects as they were given (unused), or the list a function of the trial's parameters returns.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

__all__ = ["trial_options"]

_PER_TRIAL = ("callbacks", "lr_schedulers")


def trial_options(options: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` with the trial's own ``callbacks`` and ``lr_schedulers``.

    Args:
        options: the search's ``train*`` keyword arguments; ``callbacks`` and ``lr_schedulers`` may each
            be a list of objects (copied) or a function ``f(params) -> list`` (called).
        params: the trial's parameters.

    Raises:
        TypeError: an object that cannot be copied (the message says to pass a function instead).

    >>> from trainwell import EarlyStopping
    >>> given = EarlyStopping(patience=2)
    >>> mine = trial_options({'callbacks': [given]}, {'lr': 0.1})['callbacks'][0]
    >>> type(mine).__name__, mine is given
    ('EarlyStopping', False)
    """
    result = dict(options)
    for key in _PER_TRIAL:
        if key not in result or result[key] is None:
            continue
        given = result[key]
        if callable(given):
            result[key] = list(given(dict(params)))
        else:
            result[key] = [_copy(item, key) for item in given]
    return result


def _copy(item: Any, key: str) -> Any:
    try:
        return copy.deepcopy(item)
    except Exception as error:  # a writer, a lock, a file: objects that cannot be duplicated
        raise TypeError(
            f"`{key}`: a {type(item).__name__} cannot be copied for each trial ({type(error).__name__}: {error}). "
            f"Pass `{key}` as a function of the trial's parameters returning new objects: "
            f"{key}=lambda params: [...]."
        ) from error
