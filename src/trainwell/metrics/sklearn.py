"""Any scikit-learn metric function as a metric over the epoch (Poutyne's ``SKLearnMetrics``).

scikit-learn needs the whole epoch at once, so the batches are kept as detached device tensors (copying
each one to the host would sync every step) and moved to NumPy once, when the epoch is computed.
scikit-learn itself is never imported here: the functions come from the user.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from trainwell.metrics.base import check_names
from trainwell.metrics.metric import Metric

__all__ = ["SKLearnMetrics"]

_KEYS = ("y_pred", "y_true", "sample_weight")


def _sklearn_direction(name: str) -> bool | None:
    """scikit-learn's convention: ``*_score`` functions are better higher, ``*_error``/``*_loss`` lower.

    >>> _sklearn_direction('r2_score'), _sklearn_direction('mean_absolute_error'), _sklearn_direction('foo')
    (True, False, None)
    """
    if name.endswith("_score"):
        return True
    if name.endswith(("_error", "_loss")):
        return False
    return None


class SKLearnMetrics(Metric):
    """Computes one or several scikit-learn metrics ``f(y_true, y_pred, **kwargs)`` on the whole epoch.

    Args:
        funcs: a function or a list of functions with scikit-learn's signature ``f(y_true, y_pred, ...)``.
        kwargs: keyword arguments for the functions: one dict shared by all, or a list with one dict
            (or None) per function.
        names: the log keys, one per function; defaults to each function's ``__name__``.
        higher_is_better: whether a larger value is better (what checkpoints and early stopping
            follow): one bool for all functions or one per function (None: unknown). By default it comes
            from scikit-learn's naming: ``*_score`` is better higher, ``*_error``/``*_loss`` lower.

    The targets may be a pair ``(y_true, sample_weight)``; the weights are then passed as
    ``sample_weight=`` to every function.

    ``compute()`` returns ``{name: value}`` with each function's own value. Used as a batch metric,
    ``metric(y_pred, y_true)`` keeps the batch and returns the functions' values on it alone (which reads
    the batch back to the host: scikit-learn works on NumPy arrays).

    >>> from sklearn.metrics import mean_absolute_error
    >>> metric = SKLearnMetrics(mean_absolute_error)
    >>> metric.update(torch.tensor([1.0, 2.0]), torch.tensor([0.0, 0.0]))
    >>> metric.update(torch.tensor([3.0]), torch.tensor([0.0]))
    >>> metric.names, metric.compute()
    (('mean_absolute_error',), {'mean_absolute_error': 2.0})
    """

    def __init__(
        self,
        funcs: Callable[..., Any] | Sequence[Callable[..., Any]],
        kwargs: Mapping[str, Any] | Sequence[Mapping[str, Any] | None] | None = None,
        names: str | Sequence[str] | None = None,
        higher_is_better: bool | Sequence[bool | None] | None = None,
    ) -> None:
        super().__init__()
        self.funcs = [funcs] if callable(funcs) else list(funcs)
        if not self.funcs or not all(callable(func) for func in self.funcs):
            raise TypeError(
                f"`funcs` must be a function f(y_true, y_pred) or a non-empty list of them. Received: funcs={funcs!r}."
            )
        self.kwargs = self._check_kwargs(kwargs)
        if names is None:
            names = [getattr(func, "__name__", type(func).__name__) for func in self.funcs]
        self.names = check_names(names, "names")
        if len(self.names) != len(self.funcs):
            raise ValueError(f"`names` must give one name per function ({len(self.funcs)}). Received: names={names!r}.")
        self.__name__ = list(self.names)
        self.higher_is_better = self._check_directions(higher_is_better)  # type: ignore[assignment]
        self._batches: dict[str, list[torch.Tensor]] = {key: [] for key in _KEYS}

    def _check_directions(self, higher_is_better: Any) -> tuple[bool | None, ...]:
        if higher_is_better is None:
            return tuple(_sklearn_direction(getattr(func, "__name__", "")) for func in self.funcs)
        if isinstance(higher_is_better, bool):
            return (higher_is_better,) * len(self.funcs)
        if (
            isinstance(higher_is_better, Sequence)
            and len(higher_is_better) == len(self.funcs)
            and all(item is None or isinstance(item, bool) for item in higher_is_better)
        ):
            return tuple(higher_is_better)
        raise TypeError(
            f"`higher_is_better` must be a bool, None, or a list of {len(self.funcs)} bools or None (one per "
            f"function). Received: higher_is_better={higher_is_better!r}."
        )

    def _check_kwargs(self, kwargs: Any) -> list[dict[str, Any]]:
        if kwargs is None or isinstance(kwargs, Mapping):
            return [dict(kwargs or {}) for _ in self.funcs]
        if isinstance(kwargs, Sequence) and len(kwargs) == len(self.funcs):
            return [dict(item or {}) for item in kwargs]
        raise TypeError(
            f"`kwargs` must be a dict or a list of {len(self.funcs)} dicts (one per function). "
            f"Received: kwargs={kwargs!r}."
        )

    @staticmethod
    def _split(y_pred: torch.Tensor, y_true: Any) -> dict[str, torch.Tensor]:
        batch = {"y_pred": y_pred.detach()}
        if isinstance(y_true, (tuple, list)):
            y_true, sample_weight = y_true
            batch["sample_weight"] = sample_weight.detach()
        batch["y_true"] = y_true.detach()
        return batch

    def update(self, y_pred: torch.Tensor, y_true: Any) -> None:
        """Keeps the batch (detached, on its device) for the end of the epoch."""
        for key, value in self._split(y_pred, y_true).items():
            self._batches[key].append(value)

    def forward(self, y_pred: torch.Tensor, y_true: Any) -> dict[str, Any]:
        """Keeps the batch and returns ``{name: value}`` on this batch alone."""
        batch = self._split(y_pred, y_true)
        for key, value in batch.items():
            self._batches[key].append(value)
        return self._evaluate(batch)

    def _concatenated(self) -> dict[str, torch.Tensor]:
        return {key: torch.cat(batches) for key, batches in self._batches.items() if batches}

    def _evaluate(self, tensors: dict[str, torch.Tensor]) -> dict[str, Any]:
        arrays = {key: value.cpu().numpy() for key, value in tensors.items()}
        weights = {"sample_weight": arrays["sample_weight"]} if "sample_weight" in arrays else {}
        return {
            name: func(arrays["y_true"], arrays["y_pred"], **weights, **kwargs)
            for name, func, kwargs in zip(self.names, self.funcs, self.kwargs, strict=True)
        }

    def compute(self) -> dict[str, Any]:
        """Calls every function on the epoch's NumPy arrays; returns ``{name: value}``."""
        if not self._batches["y_true"]:
            raise RuntimeError("SKLearnMetrics.compute() was called before any update().")
        return self._evaluate(self._concatenated())

    def reset(self) -> None:
        """Forgets the epoch's batches."""
        for batches in self._batches.values():
            batches.clear()

    def _apply(self, fn: Any, recurse: bool = True) -> SKLearnMetrics:
        # nn.Module.to / cuda / cpu go through _apply: the kept batches move with the module.
        for batches in self._batches.values():
            batches[:] = [fn(batch) for batch in batches]
        return super()._apply(fn, recurse)

    def state_tensors(self) -> dict[str, torch.Tensor]:
        """Returns the epoch's batches concatenated, one tensor per key (none before the first update)."""
        return {key: value.clone() for key, value in self._concatenated().items()}

    def _save_to_state_dict(self, destination: dict[str, Any], prefix: str, keep_vars: bool) -> None:
        # nn.Module.state_dict() holds the kept samples too, as state_tensors() does.
        super()._save_to_state_dict(destination, prefix, keep_vars)
        for key, value in self._concatenated().items():
            destination[prefix + key] = value if keep_vars else value.detach()

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any) -> None:
        own = {key: state_dict.pop(prefix + key) for key in _KEYS if prefix + key in state_dict}
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        state_dict.update({prefix + key: value for key, value in own.items()})  # the caller's dict, as it was
        self.load_state_tensors(own)

    def merge_states(self, states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        """Concatenates the samples kept by several processes (scikit-learn then sees them all)."""
        return {key: torch.cat([state[key] for state in states]) for key in states[0]}

    def load_state_tensors(self, state: dict[str, torch.Tensor]) -> None:
        """Restores batches saved by :meth:`state_tensors`."""
        unknown = set(state) - set(_KEYS)
        if unknown:
            raise KeyError(f"Unexpected keys {sorted(unknown)} in SKLearnMetrics state; expected {_KEYS}.")
        self._batches = {key: [state[key].clone()] if key in state else [] for key in _KEYS}
