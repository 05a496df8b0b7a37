"""Metric names users register: functions and classes found by name in ``batch_metrics`` and ``epoch_metrics``.

Poutyne's registration API. A registered function is used as it is (a batch metric, or averaged over the
epoch as an epoch metric); a registered class is instantiated without arguments each time its name is
used. A registration takes precedence over trainwell's predefined names. Lookups ignore case and
underscores, plus a trailing ``loss`` for functions and a trailing ``score`` for classes, so a function
registered as ``'my_loss'`` is found as ``'my'`` or ``'MyLoss'``.

>>> @register_metric_func('halved')
... def half_error(y_pred, y_true):
...     return (y_pred - y_true).abs().mean() / 2
>>> lookup_metric('HALVED')[1] is half_error
True
>>> unregister_metric_func(['halved'])
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from trainwell.metrics.naming import camel_to_snake

__all__ = [
    "clean_metric_class_name",
    "clean_metric_func_name",
    "do_register_metric_class",
    "do_register_metric_func",
    "lookup_metric",
    "register_metric_class",
    "register_metric_func",
    "registered_metric_names",
    "unregister_metric_class",
    "unregister_metric_func",
]

T = TypeVar("T")

# cleaned name -> (the log key it gives, or None for the object's own name; the function or class)
_FUNCS: dict[str, tuple[str | None, Any]] = {}
_CLASSES: dict[str, tuple[str | None, type]] = {}


def clean_metric_func_name(name: str) -> str:
    """The lookup key of a function name: lower case, no trailing ``loss``, no underscores.

    >>> clean_metric_func_name('Smooth_L1_Loss')
    'smoothl1'
    """
    name = name.lower()
    return name.removesuffix("loss").replace("_", "")


def clean_metric_class_name(name: str) -> str:
    """The lookup key of a class name: lower case, no trailing ``score``, no underscores.

    >>> clean_metric_class_name('F1_Score')
    'f1'
    """
    name = name.lower()
    return name.removesuffix("score").replace("_", "")


def _names(names: str | Sequence[str] | None, default: str, argument: str) -> list[str]:
    if names is None or (not isinstance(names, str) and len(names) == 0):
        return [default]
    listed = [names] if isinstance(names, str) else list(names)
    if not all(isinstance(name, str) and name for name in listed):
        raise TypeError(f"`{argument}` must be a name or a list of names. Received: {argument}={names!r}.")
    return listed


def do_register_metric_func(
    func: Callable[..., Any], names: str | Sequence[str] | None = None, unique_name: str | None = None
) -> list[str]:
    """Registers ``func`` under ``names`` (default: its ``__name__``); returns the lookup keys.

    Args:
        func: a metric ``func(y_pred, y_true)`` (a function or a callable object).
        names: the names it is found by.
        unique_name: the log key of the metric when used by name; default: the function's own name.
    """
    if not callable(func):
        raise TypeError(f"`func` must be callable, a metric f(y_pred, y_true). Received: func={func!r}.")
    default = getattr(func, "__name__", camel_to_snake(type(func).__name__))
    keys = [clean_metric_func_name(name) for name in _names(names, default, "names")]
    _FUNCS.update({key: (unique_name, func) for key in keys})
    return keys


def do_register_metric_class(
    clz: type, names: str | Sequence[str] | None = None, unique_name: str | None = None
) -> list[str]:
    """Registers the class ``clz`` under ``names`` (default: its name in snake case); returns the lookup keys.

    Args:
        clz: a metric class, instantiated without arguments each time one of the names is used.
        names: the names it is found by.
        unique_name: the log key of the metric when used by name; default: the object's own name.
    """
    if not isinstance(clz, type):
        raise TypeError(f"`clz` must be a class. Received: clz={clz!r} (type {type(clz).__name__}).")
    keys = [clean_metric_class_name(name) for name in _names(names, camel_to_snake(clz.__name__), "names")]
    _CLASSES.update({key: (unique_name, clz) for key in keys})
    return keys


def _decorator(register: Callable[..., list[str]]) -> Callable[..., Any]:
    def decorator(*args: Any, **kwargs: Any) -> Any:
        if len(args) == 1 and callable(args[0]) and not kwargs:  # used bare: @register_metric_func
            register(args[0])
            return args[0]

        def registering(obj: T) -> T:
            register(obj, list(args) or kwargs.pop("names", None), **kwargs)
            return obj

        return registering

    return decorator


register_metric_func = _decorator(do_register_metric_func)
register_metric_func.__doc__ = """Decorator registering a metric function: ``@register_metric_func`` or
``@register_metric_func('name', 'other_name', unique_name='key')``."""
register_metric_class = _decorator(do_register_metric_class)
register_metric_class.__doc__ = """Decorator registering a metric class: ``@register_metric_class`` or
``@register_metric_class('name', 'other_name', unique_name='key')``."""


def _unregister(registry: dict[str, Any], names: str | Iterable[str], kind: str) -> None:
    for name in [names] if isinstance(names, str) else list(names):
        if name not in registry:
            raise KeyError(f"No metric {kind} is registered under {name!r}. Registered: {sorted(registry)}.")
        del registry[name]


def unregister_metric_func(names: str | Iterable[str]) -> None:
    """Removes the functions registered under ``names`` (the keys :func:`do_register_metric_func` returned)."""
    _unregister(_FUNCS, names, "function")


def unregister_metric_class(names: str | Iterable[str]) -> None:
    """Removes the classes registered under ``names`` (the keys :func:`do_register_metric_class` returned)."""
    _unregister(_CLASSES, names, "class")


def lookup_metric(name: str) -> tuple[str | None, Any] | None:
    """``(log key or None, metric)`` for a registered name (a class is instantiated), else None."""
    found = _FUNCS.get(clean_metric_func_name(name))
    if found is not None:
        return found
    registered = _CLASSES.get(clean_metric_class_name(name))
    if registered is not None:
        unique_name, clz = registered
        return unique_name, clz()
    return None


def registered_metric_names() -> list[str]:
    """Every registered lookup key, for error messages."""
    return sorted({*_FUNCS, *_CLASSES})
