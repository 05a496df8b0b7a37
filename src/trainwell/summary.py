"""A Keras-like summary of a network, and the dry run that gives lazy layers their shapes.

Both run the network once on a sample input, in eval mode and without gradients, so that batch
normalization statistics, dropout and the weights are left as they were. Lazy layers
(``nn.LazyLinear``, ``nn.LazyConv2d``...) get their shapes during that run.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TextIO

import torch
from torch import nn
from torch.nn.parameter import UninitializedBuffer, UninitializedParameter

from trainwell.data import to_device
from trainwell.rng import capture_rng, restore_rng
from trainwell.steps import call_network, split_batch

__all__ = ["LayerSummary", "Summary", "first_inputs", "has_uninitialized_parameters", "materialize", "summary"]

_BYTES_PER_MB = 1024**2  # as Keras reports sizes


@dataclass
class LayerSummary:
    """One row of a :class:`Summary`.

    Attributes:
        name: the module's dotted name in the network ('' for the network itself).
        class_name: the module's class.
        depth: 0 for the network, 1 for its children, and so on.
        output_shape: the shape of what the module returned: a list of ints for a tensor, a tuple or a
            dict of shapes for a tuple or dict output, None when the module was not called.
        params: parameters of the module and everything inside it (shared ones counted once).
        trainable_params: those of ``params`` with ``requires_grad=True``.
        calls: how many times the module ran during the forward pass.
    """

    name: str
    class_name: str
    depth: int
    output_shape: Any
    params: int
    trainable_params: int
    calls: int


@dataclass
class Summary:
    """What :func:`summary` measured; ``str(summary)`` is the printed table.

    Attributes:
        rows: one per module down to the requested depth, in definition order.
        total_params: the network's distinct parameters.
        trainable_params: those with ``requires_grad=True``.
        non_trainable_params: the others (frozen layers).
        param_bytes: memory held by the parameters.
        buffer_bytes: memory held by the buffers (batch-norm statistics...).
    """

    rows: list[LayerSummary]
    total_params: int
    trainable_params: int
    non_trainable_params: int
    param_bytes: int
    buffer_bytes: int
    input_shape: Any = field(default=None)

    @property
    def total_mb(self) -> float:
        """Parameters and buffers, in MB of 1024 * 1024 bytes."""
        return (self.param_bytes + self.buffer_bytes) / _BYTES_PER_MB

    def __str__(self) -> str:
        headers = ("Layer (type)", "Output shape", "Param #")
        cells = [
            (
                "  " * row.depth + (f"{row.name} ({row.class_name})" if row.name else row.class_name),
                "-" if row.output_shape is None else format_shape(row.output_shape),
                f"{row.params:,}",
            )
            for row in self.rows
        ]
        widths = [max(len(line[column]) for line in [headers, *cells]) for column in range(3)]
        rule = "=" * (sum(widths) + 4)

        def line(values: tuple[str, str, str]) -> str:
            return f"{values[0]:<{widths[0]}}  {values[1]:<{widths[1]}}  {values[2]:>{widths[2]}}"

        parts = [rule, line(headers), rule, *(line(cell) for cell in cells), rule]
        parts += [
            f"Total params: {self.total_params:,}",
            f"Trainable params: {self.trainable_params:,}",
            f"Non-trainable params: {self.non_trainable_params:,}",
            f"Total size (params + buffers): {self.total_mb:.4f} MB",
            rule,
        ]
        return "\n".join(parts)


def format_shape(shape: Any) -> str:
    """Writes a shape from :func:`summary` compactly.

    >>> format_shape(([8, 3], {'a': [8]}))
    '([8, 3], {a: [8]})'
    """
    if isinstance(shape, dict):
        return "{" + ", ".join(f"{key}: {format_shape(value)}" for key, value in shape.items()) + "}"
    if isinstance(shape, tuple):
        return "(" + ", ".join(format_shape(value) for value in shape) + ")"
    return str(shape)


def _shape_of(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return list(value.shape)
    if isinstance(value, dict):
        return {key: _shape_of(item) for key, item in value.items()}
    if isinstance(value, (tuple, list)):
        return tuple(_shape_of(item) for item in value)
    return type(value).__name__  # a non-tensor output (None, a number): its type says enough


def has_uninitialized_parameters(network: nn.Module) -> bool:
    """Whether some lazy layer has not seen an input yet (its parameters have no shape).

    >>> has_uninitialized_parameters(nn.LazyLinear(3)), has_uninitialized_parameters(nn.Linear(2, 3))
    (True, False)
    """
    return any(isinstance(tensor, (UninitializedParameter, UninitializedBuffer)) for tensor in _tensors(network))


def _tensors(network: nn.Module) -> Iterator[torch.Tensor]:
    yield from network.parameters()
    yield from network.buffers()


@contextmanager
def _dry_run(network: nn.Module) -> Iterator[None]:
    # Each module's own flag is restored, not just the root's: a frozen batch-norm left in eval mode
    # inside a network in train mode must stay so.
    modes = {module: module.training for module in network.modules()}
    network.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        for module, training in modes.items():
            module.train(training)


def _device_of(network: nn.Module) -> torch.device | None:
    tensor = next(_tensors(network), None)
    return None if tensor is None else tensor.device


def materialize(network: nn.Module, sample_input: Any) -> nn.Module:
    """Runs ``network`` once on ``sample_input`` so that its lazy layers get their shapes.

    The run is a dry one (eval mode, no gradients, modes restored afterwards); only the lazy layers'
    parameter initialization draws random numbers. Lazy layers are materialized in place, so an
    optimizer built on them beforehand still holds the same parameters. Calling this before building
    an optimizer that creates its state eagerly (``Adagrad``) is required; for the others it is optional.

    Args:
        network: the module, with or without lazy layers.
        sample_input: a batch of inputs as the network is called with during training: a tensor, a
            tuple or list unpacked as ``network(*x)``, or a dict passed as one argument. It is moved to
            the network's device first.

    Returns:
        ``network``, materialized.

    >>> network = nn.Sequential(nn.LazyLinear(8), nn.ReLU(), nn.LazyLinear(2))
    >>> _ = materialize(network, torch.randn(4, 5))
    >>> network[0].weight.shape, has_uninitialized_parameters(network)
    (torch.Size([8, 5]), False)
    """
    _check_network(network)
    with _dry_run(network):
        call_network(network, to_device(sample_input, _device_of(network)))
    return network


def first_inputs(source: Iterable[Any], argument: str = "train_generator") -> Any:
    """The inputs ``x`` of the first ``(x, y)`` batch of a re-iterable source, without using it up.

    Every random generator is put back afterwards, so the source's next real pass draws the same
    shuffle as if it had not been peeked at. What ``fit`` materializes lazy layers with.

    Raises:
        RuntimeError: the source is a one-shot iterator (a generator), whose first batch would be lost.

    >>> first_inputs([(torch.ones(2, 3), torch.zeros(2))]).shape
    torch.Size([2, 3])
    """
    inner = getattr(source, "source", source)  # IterableBatches wraps the user's iterable
    if isinstance(inner, Iterator):
        raise RuntimeError(
            f"`{argument}` is a one-shot iterator, so its first batch cannot be read ahead to give the lazy layers "
            "their shapes. Call model.materialize(sample_x) (or trainwell.summary.materialize) before fit."
        )
    state = capture_rng()
    try:
        # The user's iterable itself, not the wrapper: a wrapper's saved position must not move.
        return split_batch(next(iter(inner)), argument)[0]
    finally:
        restore_rng(state)


def summary(network: nn.Module, sample_input: Any, *, depth: int = 3, file: TextIO | None = None) -> Summary:
    """Prints a table of the network's layers with their output shapes and parameter counts.

    The network runs once on ``sample_input`` (see :func:`materialize`: eval mode, no gradients, modes
    and weights untouched; lazy layers are materialized). Counts are taken after that run.

    Args:
        network: the module to describe.
        sample_input: a batch of inputs: a tensor, a tuple or list (``network(*x)``) or a dict.
        depth: how many levels of nested modules get their own row (0: only the network itself).
        file: where to print the table (default: standard output).

    Returns:
        The :class:`Summary`, whose rows and totals are plain numbers.

    Raises:
        TypeError: ``network`` is not a module.
        ValueError: ``depth`` is negative.

    >>> import io
    >>> network = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    >>> result = summary(network, torch.zeros(1, 4), file=io.StringIO())
    >>> [row.params for row in result.rows], result.total_params
    ([58, 40, 0, 18], 58)
    >>> result.rows[3].output_shape
    [1, 2]
    """
    _check_network(network)
    if not isinstance(depth, int) or isinstance(depth, bool) or depth < 0:
        raise ValueError(f"`depth` must be a non-negative int (0 shows only the network). Received: depth={depth!r}.")
    modules = [
        (name, module) for name, module in network.named_modules() if (name.count(".") + 1 if name else 0) <= depth
    ]
    shapes: dict[str, Any] = {}
    calls: dict[str, int] = {name: 0 for name, _ in modules}

    def recorder(name: str) -> Any:
        def hook(module: nn.Module, inputs: Any, output: Any) -> None:
            shapes[name] = _shape_of(output)  # a module called twice keeps its last output's shape
            calls[name] += 1

        return hook

    handles = [module.register_forward_hook(recorder(name)) for name, module in modules]
    try:
        with _dry_run(network):
            call_network(network, to_device(sample_input, _device_of(network)))
    finally:
        for handle in handles:
            handle.remove()
    rows = [
        LayerSummary(
            name=name,
            class_name=type(module).__name__,
            depth=name.count(".") + 1 if name else 0,
            output_shape=shapes.get(name),
            params=sum(parameter.numel() for parameter in module.parameters()),
            trainable_params=sum(parameter.numel() for parameter in module.parameters() if parameter.requires_grad),
            calls=calls[name],
        )
        for name, module in modules
    ]
    parameters = list(network.parameters())  # nn.Module.parameters() already skips shared duplicates
    trainable = sum(parameter.numel() for parameter in parameters if parameter.requires_grad)
    total = sum(parameter.numel() for parameter in parameters)
    result = Summary(
        rows=rows,
        total_params=total,
        trainable_params=trainable,
        non_trainable_params=total - trainable,
        param_bytes=sum(parameter.numel() * parameter.element_size() for parameter in parameters),
        buffer_bytes=sum(buffer.numel() * buffer.element_size() for buffer in network.buffers()),
        input_shape=_shape_of(sample_input),
    )
    print(result, file=file if file is not None else sys.stdout)
    return result


def _check_network(network: Any) -> None:
    if not isinstance(network, nn.Module):
        raise TypeError(
            f"`network` must be a torch.nn.Module. Received: network of type {type(network).__name__}. "
            "Pass the module itself (model.network for a trainwell Model)."
        )
