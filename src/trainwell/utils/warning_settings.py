"""``warning_settings``: which of trainwell's optional warnings are shown (Poutyne's warning manager).

A plain dict users edit: ``warning_settings['batch_size'] = 'ignore'`` silences the warning that
:func:`~trainwell.utils.batch_size.get_batch_size` gives when a batch's size cannot be found.
"""

from __future__ import annotations

from typing import Any

__all__ = ["check_warning_setting", "warning_settings"]

warning_settings: dict[str, str] = {"batch_size": "warn"}

_VALUES = ("warn", "ignore")


def check_warning_setting(name: str) -> bool:
    """Whether the warning ``name`` is shown; an unknown setting value is refused, saying the valid ones.

    >>> check_warning_setting('batch_size')
    True
    """
    value: Any = warning_settings.get(name, "warn")
    if value not in _VALUES:
        raise ValueError(
            f"warning_settings[{name!r}] must be 'warn' or 'ignore'. Received: warning_settings[{name!r}]={value!r}."
        )
    return bool(value == "warn")
