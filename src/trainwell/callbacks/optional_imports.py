"""Optional packages as module-level names, imported on first use (None when the package is missing).

A callback module that needs an optional package (colorama, git, mlflow, wandb) names it in a table:
the package is imported the first time the module's code asks for it, or the first time someone reads
the name from outside (``module.wandb``, PEP 562), and the result, the package or None, is stored in
the module's namespace. Code reads it with :func:`optional`, which looks in that namespace first, so
that a test (or a user) who sets the name, for example to None to see what happens without the
package, is obeyed.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any

__all__ = ["lazy_optional_names", "optional"]


def optional(namespace: MutableMapping[str, Any], name: str, table: Mapping[str, tuple[str, str | None]]) -> Any:
    """The value of the optional ``name`` in ``namespace``: imported (once) from ``table`` when not set yet.

    Args:
        namespace: the ``globals()`` of the module that uses the package.
        name: the module-level name, such as ``'wandb'`` or ``'MlflowClient'``.
        table: name -> (module to import, attribute of it or None for the module itself).

    >>> table = {'json_module': ('json', None), 'missing': ('no_such_package_here', None)}
    >>> namespace = {}
    >>> optional(namespace, 'json_module', table).__name__, optional(namespace, 'missing', table)
    ('json', None)
    """
    if name not in namespace:
        module_name, attribute = table[name]
        try:
            value: Any = importlib.import_module(module_name)
            if attribute is not None:
                value = getattr(value, attribute)
        except ImportError:
            value = None
        namespace[name] = value
    return namespace[name]


def lazy_optional_names(
    namespace: MutableMapping[str, Any], table: Mapping[str, tuple[str, str | None]]
) -> Callable[[str], Any]:
    """A module ``__getattr__`` that resolves the names of ``table`` with :func:`optional` when first read."""

    def getattr_(name: str) -> Any:
        if name in table:
            return optional(namespace, name, table)
        raise AttributeError(f"module {namespace['__name__']!r} has no attribute {name!r}")

    return getattr_
