"""A Keras-like summary of a network: layers, output shapes, parameter counts and sizes.

The network runs once on a sample input through :mod:`trainwell.engine.dry_run` (eval mode, no
gradients, weights and modes left as they were); lazy layers get their shapes during that run.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any, TextIO

import torch
from torch import nn

from trainwell.data.batches import to_device
from trainwell.engine.dry_run import (
    check_network,
    device_of,
    dry_run,
    first_inputs,
    has_uninitialized_parameters,
    materialize,
)
from trainwell.engine.steps import call_network

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
    check_network(network)
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
        with dry_run(network):
            call_network(network, to_device(sample_input, device_of(network)))
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
