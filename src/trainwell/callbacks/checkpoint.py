"""Checkpoint callbacks: weights, optimizer, LR scheduler, random generators and any stateful objects.

Each one is a :class:`~trainwell.callbacks.periodic.PeriodicSaveCallback` (same filename templates,
``save_best_only``, ``period``, atomic writes, resumable state) that writes one pickle-free file:
weights as plain safetensors, everything else through :func:`trainwell.storage.files.save_state`
(tensors in safetensors, the rest as JSON).
"""

from __future__ import annotations

import os
import random
import warnings
from collections.abc import Mapping
from typing import IO, Any

import numpy as np
import torch
from typing_extensions import Unpack

from trainwell.callbacks.base import HOOKS, Callback
from trainwell.callbacks.periodic import PeriodicSaveCallback, PeriodicSaveOptions
from trainwell.storage.files import PathOrFile, load_state, save_state

__all__ = [
    "LRSchedulerCheckpoint",
    "ModelCheckpoint",
    "OptimizerCheckpoint",
    "RandomStatesCheckpoint",
    "StateCheckpoint",
    "get_random_states",
    "load_random_states",
    "save_random_states",
    "set_random_states",
]


class ModelCheckpoint(PeriodicSaveCallback):
    """Saves the network's weights as a plain safetensors file at the end of some epochs.

    Any safetensors reader opens the files (``safetensors.torch.load_file``), and
    ``model.load_weights(path)`` loads them back. See :class:`PeriodicSaveCallback` for the arguments;
    with ``save_best_only=True, restore_best=True`` the best weights are loaded back when training ends
    (with a warning if no epoch ever improved).

    >>> import os, tempfile, torch
    >>> from trainwell import Model
    >>> directory = tempfile.mkdtemp()
    >>> checkpoint = ModelCheckpoint(os.path.join(directory, 'weights_{epoch:02d}.safetensors'))
    >>> model = Model(torch.nn.Linear(2, 1), 'sgd', 'mse')
    >>> history = model.fit(torch.randn(8, 2), torch.randn(8, 1), epochs=2, verbose=False, callbacks=[checkpoint])
    >>> sorted(os.listdir(directory))
    ['weights_01.safetensors', 'weights_02.safetensors']
    """

    def save_file(self, fd: IO[Any], epoch_number: int, logs: Mapping[str, Any]) -> None:  # noqa: D102
        self.model.save_weights(fd)

    def restore(self, fd: IO[Any]) -> None:  # noqa: D102
        self.model.load_weights(fd)


class OptimizerCheckpoint(PeriodicSaveCallback):
    """Saves the optimizer's state (without pickle) at the end of some epochs.

    Load a file back with ``model.load_optimizer_state(path)``. See :class:`PeriodicSaveCallback` for
    the arguments.

    >>> checkpoint = OptimizerCheckpoint('optimizer_{epoch}.safetensors', period=5)
    """

    def save_file(self, fd: IO[Any], epoch_number: int, logs: Mapping[str, Any]) -> None:  # noqa: D102
        self.model.save_optimizer_state(fd)

    def restore(self, fd: IO[Any]) -> None:  # noqa: D102
        self.model.load_optimizer_state(fd)


# The hooks an LR scheduler callback needs to be driven by LRSchedulerCheckpoint (Poutyne's set).
_DRIVEN_HOOKS = (
    "on_train_begin",
    "on_train_end",
    "on_epoch_begin",
    "on_epoch_end",
    "on_train_batch_begin",
    "on_train_batch_end",
    "on_backward_end",
)


class LRSchedulerCheckpoint(PeriodicSaveCallback):
    """Saves an LR scheduler's ``state_dict()`` at the end of some epochs.

    As in Poutyne, when ``lr_scheduler`` is a callback (a trainwell LR-scheduler callback), this
    checkpoint *drives* it: it calls the scheduler's hooks itself, before saving, so the scheduler must
    not also be passed to ``fit``. Any other object with ``state_dict()`` (a torch scheduler stepped
    elsewhere) is only saved. Load a file back with
    ``lr_scheduler.load_state_dict(trainwell.storage.files.load_state(path))``.

    Args:
        lr_scheduler: a scheduler callback, or any object with ``state_dict()`` (and
            ``load_state_dict()`` for ``restore_best``).
        filename: the path template (see :class:`PeriodicSaveCallback`).
        **kwargs: the options of :class:`PeriodicSaveCallback`.

    >>> import torch
    >>> optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    >>> scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=2)
    >>> checkpoint = LRSchedulerCheckpoint(scheduler, 'scheduler_{epoch}.safetensors')
    """

    reads_gradients = False  # its on_train_batch_end never looks at gradients

    def __init__(
        self, lr_scheduler: Any, filename: str | os.PathLike[str], **kwargs: Unpack[PeriodicSaveOptions]
    ) -> None:
        if not callable(getattr(lr_scheduler, "state_dict", None)):
            raise TypeError(
                f"`lr_scheduler` must have a state_dict() method (an LR scheduler callback or a torch "
                f"scheduler). Received: lr_scheduler of type {type(lr_scheduler).__name__}."
            )
        self.lr_scheduler = lr_scheduler
        super().__init__(filename, **kwargs)

    @property
    def drives_scheduler(self) -> bool:
        """Whether the scheduler is a callback whose hooks this checkpoint calls."""
        return isinstance(self.lr_scheduler, Callback)

    def _can_restore(self) -> bool:
        return callable(getattr(self.lr_scheduler, "load_state_dict", None))

    def save_file(self, fd: IO[Any], epoch_number: int, logs: Mapping[str, Any]) -> None:  # noqa: D102
        save_state(fd, self.lr_scheduler.state_dict())

    def restore(self, fd: IO[Any]) -> None:  # noqa: D102
        self.lr_scheduler.load_state_dict(load_state(fd))

    def listened_hooks(self) -> list[str]:
        """This checkpoint's own hooks, plus those of a driven scheduler: batch hooks only if it has some."""
        hooks = {"on_epoch_end", "on_train_end"}
        if self.drives_scheduler:
            inner = self.lr_scheduler
            listened = getattr(inner, "listened_hooks", None)
            inner_hooks = (
                listened()
                if callable(listened)
                else [hook for hook in HOOKS if getattr(type(inner), hook) is not getattr(Callback, hook)]
            )
            hooks.update(hook for hook in inner_hooks if hook in _DRIVEN_HOOKS)
        return [hook for hook in HOOKS if hook in hooks]

    def set_model(self, model: Any) -> None:  # noqa: D102
        if self.drives_scheduler:
            self.lr_scheduler.set_model(model)
        super().set_model(model)

    def set_params(self, params: dict[str, Any]) -> None:  # noqa: D102
        if self.drives_scheduler:
            self.lr_scheduler.set_params(params)
        super().set_params(params)

    def on_train_begin(self, logs: Mapping[str, Any]) -> None:  # noqa: D102
        if self.drives_scheduler:
            self.lr_scheduler.on_train_begin(logs)

    def on_epoch_begin(self, epoch_number: int, logs: Mapping[str, Any]) -> None:  # noqa: D102
        if self.drives_scheduler:
            self.lr_scheduler.on_epoch_begin(epoch_number, logs)

    def on_train_batch_begin(self, batch_number: int, logs: Mapping[str, Any]) -> None:  # noqa: D102
        if self.drives_scheduler:
            self.lr_scheduler.on_train_batch_begin(batch_number, logs)

    def on_backward_end(self, batch_number: int) -> None:  # noqa: D102
        if self.drives_scheduler:
            self.lr_scheduler.on_backward_end(batch_number)

    def on_train_batch_end(self, batch_number: int, logs: Mapping[str, Any]) -> None:  # noqa: D102
        if self.drives_scheduler:
            self.lr_scheduler.on_train_batch_end(batch_number, logs)

    def on_epoch_end(self, epoch_number: int, logs: Mapping[str, Any]) -> None:  # noqa: D102
        # The scheduler steps first, so the saved state is the one the next epoch starts from.
        if self.drives_scheduler:
            self.lr_scheduler.on_epoch_end(epoch_number, logs)
        super().on_epoch_end(epoch_number, logs)

    def on_train_end(self, logs: Mapping[str, Any]) -> None:  # noqa: D102
        if self.drives_scheduler:
            self.lr_scheduler.on_train_end(logs)
        super().on_train_end(logs)

    def state_dict(self) -> dict[str, Any]:
        """The checkpoint's state, and the driven scheduler's (nobody else collects it)."""
        state = super().state_dict()
        if self.drives_scheduler:
            state["scheduler"] = self.lr_scheduler.state_dict()
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restores :meth:`state_dict`."""
        super().load_state_dict(state)
        if self.drives_scheduler and "scheduler" in state:
            self.lr_scheduler.load_state_dict(state["scheduler"])


class StateCheckpoint(PeriodicSaveCallback):
    """Saves the ``state_dict()`` of several named objects in one file at the end of some epochs.

    Args:
        objects: names -> objects with ``state_dict()`` and ``load_state_dict()`` (networks,
            optimizers, schedulers, grad scalers, callbacks...).
        filename: the path template (see :class:`PeriodicSaveCallback`).
        **kwargs: the options of :class:`PeriodicSaveCallback`.

    The file holds ``{name: state_dict}`` (read it with :func:`trainwell.storage.files.load_state`);
    :meth:`restore` loads each entry back into the object of the same name.

    >>> import torch
    >>> network = torch.nn.Linear(2, 1)
    >>> checkpoint = StateCheckpoint({'network': network, 'optimizer': torch.optim.SGD(network.parameters(), lr=0.1)},
    ...                              'state_{epoch}.safetensors')
    """

    def __init__(
        self, objects: Mapping[str, Any], filename: str | os.PathLike[str], **kwargs: Unpack[PeriodicSaveOptions]
    ) -> None:
        if not isinstance(objects, Mapping) or not objects:
            raise TypeError(
                f"`objects` must be a non-empty dict of names to objects with state_dict(). Received: "
                f"objects of type {type(objects).__name__}."
            )
        for name, stateful in objects.items():
            if not isinstance(name, str):
                raise TypeError(f"`objects` keys must be strings. Received the key {name!r}.")
            if not callable(getattr(stateful, "state_dict", None)) or not callable(
                getattr(stateful, "load_state_dict", None)
            ):
                raise TypeError(
                    f"`objects[{name!r}]` must have state_dict() and load_state_dict(). Received an object of "
                    f"type {type(stateful).__name__}."
                )
        self.objects = dict(objects)
        super().__init__(filename, **kwargs)

    def save_file(self, fd: IO[Any], epoch_number: int, logs: Mapping[str, Any]) -> None:  # noqa: D102
        save_state(fd, {name: stateful.state_dict() for name, stateful in self.objects.items()})

    def restore(self, fd: IO[Any]) -> None:
        """Loads every saved state into the object of the same name, warning about names that do not match."""
        states = load_state(fd)
        unexpected = sorted(set(states) - set(self.objects))
        missing = sorted(set(self.objects) - set(states))
        if unexpected or missing:
            warnings.warn(
                f"StateCheckpoint: the file's names do not match `objects`: not in `objects`: {unexpected}; "
                f"not in the file: {missing}. The matching names were loaded.",
                stacklevel=2,
            )
        for name, state in states.items():
            if name in self.objects:
                self.objects[name].load_state_dict(state)


class RandomStatesCheckpoint(PeriodicSaveCallback):
    """Saves the states of Python's, NumPy's and torch's random generators (CPU and CUDA).

    Restore a file with :func:`load_random_states`. See :class:`PeriodicSaveCallback` for the arguments.

    >>> checkpoint = RandomStatesCheckpoint('random_{epoch}.safetensors')
    """

    def save_file(self, fd: IO[Any], epoch_number: int, logs: Mapping[str, Any]) -> None:  # noqa: D102
        save_random_states(fd)

    def restore(self, fd: IO[Any]) -> None:  # noqa: D102
        load_random_states(fd)


def get_random_states() -> dict[str, Any]:
    """The states of the global random generators, as tensors and plain values (storable without pickle).

    >>> states = get_random_states(); first = torch.rand(1)
    >>> set_random_states(states); bool(torch.equal(first, torch.rand(1)))
    True
    """
    version, python_state, gauss_next = random.getstate()
    algorithm, keys, position, has_gauss, cached_gaussian = np.random.get_state(legacy=True)
    states: dict[str, Any] = {
        "python": {
            "version": version,
            "state": torch.tensor(python_state, dtype=torch.int64),
            "gauss_next": gauss_next,
        },
        "numpy": {
            "algorithm": str(algorithm),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "position": int(position),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached_gaussian),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        states["cuda"] = list(torch.cuda.get_rng_state_all())
    return states


def set_random_states(states: Mapping[str, Any]) -> None:
    """Restores what :func:`get_random_states` returned.

    CUDA states are restored on the devices that exist here; a warning says when their number differs.
    """
    python = states["python"]
    random.setstate((python["version"], tuple(int(value) for value in python["state"].tolist()), python["gauss_next"]))
    numpy = states["numpy"]
    np.random.set_state(
        (
            numpy["algorithm"],
            numpy["keys"].numpy().astype(np.uint32),
            numpy["position"],
            numpy["has_gauss"],
            numpy["cached_gaussian"],
        )
    )
    torch.set_rng_state(states["torch"].to(torch.uint8))
    saved_cuda = states.get("cuda") or []
    if not torch.cuda.is_available():
        if saved_cuda:
            warnings.warn("The saved CUDA random states were not restored: CUDA is not available here.", stacklevel=2)
        return
    count = torch.cuda.device_count()
    if saved_cuda and len(saved_cuda) != count:
        warnings.warn(
            f"{len(saved_cuda)} CUDA random states were saved and {count} devices are visible: the first "
            f"{min(count, len(saved_cuda))} were restored.",
            stacklevel=2,
        )
    for index, state in enumerate(saved_cuda[:count]):
        torch.cuda.set_rng_state(state.to(torch.uint8), device=index)


def save_random_states(target: PathOrFile) -> None:
    """Saves :func:`get_random_states` to a path (atomically) or an open binary file, without pickle."""
    save_state(target, get_random_states())


def load_random_states(source: PathOrFile) -> None:
    """Restores the random generators from a file written by :func:`save_random_states`."""
    set_random_states(load_state(source))
