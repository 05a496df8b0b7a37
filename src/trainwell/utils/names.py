"""Names given by users -> the objects they name: errors that list the closest valid names."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ["describe", "unknown_name_error"]


def unknown_name_error(kind: str, argument: str, received: str, valid: Iterable[str]) -> ValueError:
    """Builds the error raised for an unknown name, listing the closest valid names.

    >>> print(unknown_name_error('optimizer', 'optimizer', 'adm', ['adam', 'sgd']))  # doctest: +ELLIPSIS
    Unknown optimizer name for `optimizer`. Received: optimizer='adm'. Did you mean 'adam'? ...
    """
    valid = sorted(set(valid))
    close = difflib.get_close_matches(received.lower(), valid, n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(repr(name) for name in close)}?" if close else ""
    listing = ", ".join(repr(name) for name in valid)
    return ValueError(
        f"Unknown {kind} name for `{argument}`. Received: {argument}={received!r}.{hint} Valid names: {listing}."
    )


def describe(value: object) -> str:
    """``value`` with its type, as error messages show what they received."""
    return f"{value!r} (type {type(value).__name__})"
