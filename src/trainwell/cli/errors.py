"""Config errors the command reports with exit status 2: the key, what it received, what it expects.

jsonargparse finds most mistakes (a wrong type, an unknown key, an unimportable class path); its messages
are rewritten here into trainwell's form, with the closest valid keys or names for a misspelt one.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import re
from collections.abc import Iterable
from typing import Any

__all__ = ["ConfigError", "close_matches", "describe_parse_error", "import_error_hint"]


class ConfigError(Exception):
    """A bad config file or command-line argument: the command prints it and exits with status 2."""


def close_matches(received: str, valid: Iterable[str], *, limit: int = 3) -> list[str]:
    """The valid names closest to ``received`` (case-insensitive), best first.

    >>> close_matches('epochz', ['epochs', 'seed', 'directory'])
    ['epochs']
    """
    choices = sorted(set(valid))
    lowered = {choice.lower(): choice for choice in choices}
    found = difflib.get_close_matches(received.lower(), list(lowered), n=limit, cutoff=0.6)
    return [lowered[name] for name in found]


def _did_you_mean(received: str, valid: Iterable[str]) -> str:
    close = close_matches(received, valid)
    return f" Did you mean {' or '.join(repr(name) for name in close)}?" if close else ""


def import_error_hint(path: str) -> str:
    """Why ``path`` (``package.module.Name``) cannot be imported, with the closest names where it stops.

    >>> print(import_error_hint('torch.nn.Linaer'))
    module 'torch.nn' has no attribute 'Linaer'. Did you mean 'Linear' or 'Bilinear' or 'LazyLinear'?
    """
    parts = path.split(".")
    module: Any = None
    for index in range(len(parts), 0, -1):
        try:
            module = importlib.import_module(".".join(parts[:index]))
        except ModuleNotFoundError as error:
            if error.name is not None and not ".".join(parts[:index]).startswith(error.name):
                return f"importing {'.'.join(parts[:index])!r} failed: {error}"  # a dependency of it is missing
            continue
        except Exception as error:  # the module exists but fails on import: say so, not "not found"
            return f"importing {'.'.join(parts[:index])!r} raised {type(error).__name__}: {error}"
        else:
            break
    if module is None:
        return (
            f"no module named {parts[0]!r}: the class path must be importable from the working directory "
            "or PYTHONPATH (package.module.Name)"
        )
    found = ".".join(parts[:index])
    target: Any = module
    for position, name in enumerate(parts[index:], start=index):
        if not hasattr(target, name):
            names = [attribute for attribute in dir(target) if not attribute.startswith("_")]
            owner = ".".join(parts[:position])
            kind = "module" if inspect.ismodule(target) else "object"
            return f"{kind} {owner!r} has no attribute {name!r}.{_did_you_mean(name, names)}"
        target = getattr(target, name)
    return f"{found!r} imports, but {path!r} could not be used"


def parameters_of(path: str) -> list[str]:
    """The keyword parameters a class path's class or function takes ([] when it cannot be imported)."""
    try:
        module_name, name = path.rsplit(".", 1)
        target = getattr(importlib.import_module(module_name), name)
        signature = inspect.signature(target)
    except (ValueError, TypeError, ImportError, AttributeError):
        return []
    return [name for name, parameter in signature.parameters.items() if parameter.kind is not parameter.VAR_KEYWORD]


_UNKNOWN_IN_GROUP = re.compile(r"Group '(?P<group>[\w.]+)' does not accept option '(?P<key>[^']+)'")
_UNKNOWN_OPTION = re.compile(r"Option '(?P<key>[^']+)' is not accepted")
_UNRECOGNIZED = re.compile(r"unrecognized arguments: (?P<arguments>.*)")
_BAD_KEY = re.compile(r'Parser key "(?P<key>[^"]+)":\s*(?P<message>.*)', re.DOTALL)
_CLASS_PATH = re.compile(r"Problem with given class_path '(?P<path>[^']+)':\s*(?P<message>[^\n]*)")
_EXPECTED = re.compile(r"Expected a <class '(?P<type>[\w.]+)'>\. Got value: (?P<value>.*)$", re.DOTALL)
_REQUIRED = re.compile(r"Key \"(?P<key>[^\"]+)\" is required but not included in config object or its value is None")


def describe_parse_error(message: str, keys: Iterable[str]) -> str:
    """Jsonargparse's ``message`` in trainwell's words, naming the key; ``keys`` are the valid keys.

    >>> describe_parse_error("Option 'epochz' is not accepted", ['epochs', 'seed'])
    "Unknown key 'epochz'. Did you mean 'epochs'? Valid keys: 'epochs', 'seed'."
    """
    every = sorted({key for key in keys if not key.endswith(".help")})
    # The keys one sets (not a group's own entry, such as network.init_args), and the top-level ones.
    leaves = [key for key in every if not any(other.startswith(key + ".") for other in every)]
    tops = sorted({key.split(".")[0] for key in every})
    if match := _UNKNOWN_IN_GROUP.search(message):
        group, key = match["group"], match["key"]
        siblings = [name[len(group) + 1 :] for name in leaves if name.startswith(group + ".")]
        shown = ", ".join(repr(name) for name in siblings) or "none (it takes no arguments)"
        return (
            f"Unknown key '{group}.{key}' (received in the config or on the command line)."
            f"{_did_you_mean(key, siblings)}"
            f" Valid keys of {group}: {shown}."
        )
    if match := _UNRECOGNIZED.search(message):
        words = [word for word in match["arguments"].split() if word.startswith("--")]
        names = [word[2:].split("=", 1)[0] for word in words] or [match["arguments"]]
        return (
            "; ".join(
                f"Unknown option '--{name}'.{_did_you_mean('--' + name, _options_near(name, leaves))}" for name in names
            )
            + " (`trainwell fit --help` lists every key.)"
        )
    if match := _BAD_KEY.search(message):
        return _describe_bad_value(match["key"], match["message"])
    if match := _REQUIRED.search(message):
        key = match["key"]
        return f"The key {key!r} is required: set it in the config file or pass --{key} on the command line."
    if match := _UNKNOWN_OPTION.search(message):
        key = match["key"]
        shown = ", ".join(repr(name) for name in tops)
        return f"Unknown key {key!r}.{_did_you_mean(key, tops)} Valid keys: {shown}."
    return message.strip()


def _options_near(name: str, keys: list[str]) -> list[str]:
    """The options to suggest for ``--name``: those of its group when it has one (network.init_args.*)."""
    group = name.rsplit(".", 1)[0] if "." in name else None
    near = [key for key in keys if group is not None and key.startswith(group + ".")]
    return [f"--{key}" for key in (near or keys)]


def _type_name(name: str) -> str:
    return {"int": "an int", "float": "a float", "bool": "true or false", "str": "a string"}.get(name, f"a {name}")


def _describe_bad_value(key: str, message: str) -> str:
    """A value jsonargparse refused for ``key``: a bad class path, an unknown init_arg, or a wrong type."""
    if match := _CLASS_PATH.search(message):
        path, reason = match["path"], match["message"]
        if unknown := _UNKNOWN_OPTION.search(reason):
            name = unknown["key"]
            accepted = parameters_of(path)
            return (
                f"`{key}`: {path} takes no argument {name!r} (in {key}.init_args).{_did_you_mean(name, accepted)}"
                f" It takes: {', '.join(repr(parameter) for parameter in accepted) or 'no arguments'}."
            )
        if "has no attribute" in reason or "No module named" in reason or "import" in reason.lower():
            return f"`{key}`: the class path {path!r} cannot be imported: {import_error_hint(path)}."
        return f"`{key}`: {path}: {reason.strip()}"
    if match := _EXPECTED.match(message.strip()):
        return f"`{key}` must be {_type_name(match['type'])}. Received: {key}={match['value']!r}."
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    # The first line says what was expected; "Got value" (when present) says what was received.
    received = next((line for line in lines if line.startswith(("Got value", "Given value"))), None)
    summary = " ".join(line for line in lines[:6] if not line.startswith(("Subtypes", "Errors", "Given value")))
    text = f"`{key}` has a bad value: {summary}"
    if received and received not in summary:
        text += f" ({received})"
    return text
