"""``Model``'s evaluation and prediction API: ``evaluate*``, ``predict*`` and the ``*_on_batch`` methods.

Like training, every variant only turns its data into a batch source and runs the one loop.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import torch
from torch.nn.utils.rnn import PackedSequence
from torch.utils.data import Dataset

from trainwell import distributed
from trainwell.callbacks.base import Callback
from trainwell.data.batches import concatenate, to_device
from trainwell.data.inputs import dataset_source, iterable_source, tensor_source
from trainwell.data.sources import is_sharded, source_length
from trainwell.model.returns import format_evaluation, format_outputs
from trainwell.utils.checks import check_positive_int
from trainwell.utils.tensors import numpy_to_torch

__all__ = ["EvaluateAndPredict"]


class EvaluateAndPredict:
    """Evaluation and prediction over any data source (mixed into ``Model``)."""

    _loop: Any
    _steps: Any
    optimizer: torch.optim.Optimizer | None
    network: torch.nn.Module
    _callbacks: Any
    _running: Any
    _pin_memory: Any

    if TYPE_CHECKING:

        @property
        def metrics_names(self) -> list[str]:
            """Provided by ``Model``."""

        @property
        def batch_metrics_names(self) -> list[str]:
            """Provided by ``Model``."""

        def _data_device(self) -> torch.device | None:
            """Provided by ``Model``."""

    # -- evaluation ---------------------------------------------------------------------------------------
    def evaluate(
        self,
        x: Any,
        y: Any,
        *,
        batch_size: int = 32,
        return_pred: bool = False,
        return_ground_truth: bool = False,
        return_dict_format: bool = False,
        concatenate_returns: bool = True,
        convert_to_numpy: bool = True,
        callbacks: list[Callback] | None = None,
        verbose: bool = True,
        progress_options: dict[str, Any] | None = None,
        dataloader_kwargs: dict[str, Any] | None = None,
    ) -> Any:
        """Computes the loss and metrics on in-memory data, without gradients.

        Returns:
            ``loss``, then the metrics (one metric: a float; several: a NumPy array, batch metrics
            first), then the predictions and ground truths when asked; with ``return_dict_format``,
            ``{'time', 'test_loss', 'test_<metric>'...}`` instead of loss and metrics.
        """
        check_positive_int(batch_size, "batch_size")
        options: dict[str, Any] = {
            "return_pred": return_pred,
            "return_ground_truth": return_ground_truth,
            "return_dict_format": return_dict_format,
            "concatenate_returns": concatenate_returns,
            "convert_to_numpy": convert_to_numpy,
            "callbacks": callbacks,
            "verbose": verbose,
            "progress_options": progress_options,
        }
        source = tensor_source(x, y, batch_size=batch_size, shuffle=False, dataloader_kwargs=dataloader_kwargs)
        return self._evaluate(source, **options)

    def evaluate_dataset(
        self,
        dataset: Dataset[Any],
        *,
        batch_size: int = 32,
        steps: int | None = None,
        return_pred: bool = False,
        return_ground_truth: bool = False,
        return_dict_format: bool = False,
        concatenate_returns: bool = True,
        convert_to_numpy: bool = True,
        callbacks: list[Callback] | None = None,
        num_workers: int = 0,
        collate_fn: Any = None,
        dataloader_kwargs: dict[str, Any] | None = None,
        verbose: bool = True,
        progress_options: dict[str, Any] | None = None,
    ) -> Any:
        """Like :meth:`evaluate`, on a ``Dataset`` of ``(x, y)`` samples."""
        check_positive_int(batch_size, "batch_size")
        loader = dataset_source(
            dataset,
            "dataset",
            batch_size=batch_size,
            shuffle=False,
            num_workers=num_workers,
            collate_fn=collate_fn,
            dataloader_kwargs=dataloader_kwargs,
            pin_memory=self._pin_memory(),
        )
        return self.evaluate_generator(
            loader,
            steps=steps,
            return_pred=return_pred,
            return_ground_truth=return_ground_truth,
            return_dict_format=return_dict_format,
            concatenate_returns=concatenate_returns,
            convert_to_numpy=convert_to_numpy,
            callbacks=callbacks,
            verbose=verbose,
            progress_options=progress_options,
        )

    def evaluate_generator(
        self,
        generator: Iterable[Any],
        *,
        steps: int | None = None,
        return_pred: bool = False,
        return_ground_truth: bool = False,
        return_dict_format: bool = False,
        concatenate_returns: bool = True,
        convert_to_numpy: bool = True,
        verbose: bool = True,
        progress_options: dict[str, Any] | None = None,
        callbacks: list[Callback] | None = None,
    ) -> Any:
        """Like :meth:`evaluate`, on an iterable of ``(x, y)`` batches (read once, or ``steps`` batches)."""
        check_positive_int(steps, "steps", allow_none=True)
        return self._evaluate(
            iterable_source(generator, steps, "generator"),
            return_pred=return_pred,
            return_ground_truth=return_ground_truth,
            return_dict_format=return_dict_format,
            concatenate_returns=concatenate_returns,
            convert_to_numpy=convert_to_numpy,
            callbacks=callbacks,
            verbose=verbose,
            progress_options=progress_options,
        )

    def _evaluate(
        self,
        source: Any,
        *,
        return_pred: bool,
        return_ground_truth: bool,
        return_dict_format: bool,
        concatenate_returns: bool,
        convert_to_numpy: bool,
        callbacks: list[Callback] | None,
        verbose: bool,
        progress_options: dict[str, Any] | None,
    ) -> Any:
        callback_list = self._callbacks(callbacks, verbose, progress_options, {"steps": source_length(source)})
        collect: list[tuple[Any, Any]] | None = [] if return_pred or return_ground_truth else None
        started = time.perf_counter()
        with self._running(source):
            callback_list.on_test_begin({})
            logs = self._loop.evaluate_phase(source, "test", callback_list, collect)
            elapsed = time.perf_counter() - started
            callback_list.on_test_end({"time": elapsed, **{f"test_{key}": value for key, value in logs.items()}})
        extras: tuple[Any, ...] = ()
        output = {"concatenate_returns": concatenate_returns, "convert_to_numpy": convert_to_numpy}
        if return_pred:
            extras += (format_outputs(_from_every_rank([pred for pred, _ in collect or []], source), **output),)
        if return_ground_truth:
            extras += (format_outputs(_from_every_rank([true for _, true in collect or []], source), **output),)
        return format_evaluation(
            logs,
            self.metrics_names,
            return_dict_format=return_dict_format,
            prefix="test_",
            elapsed=elapsed,
            extras=extras,
        )

    # -- prediction ---------------------------------------------------------------------------------------
    def predict(
        self,
        x: Any,
        *,
        batch_size: int = 32,
        convert_to_numpy: bool = True,
        verbose: bool = True,
        progress_options: dict[str, Any] | None = None,
        callbacks: list[Callback] | None = None,
        dataloader_kwargs: dict[str, Any] | None = None,
    ) -> Any:
        """The network's outputs on in-memory inputs, concatenated (NumPy arrays by default)."""
        check_positive_int(batch_size, "batch_size")
        source = tensor_source(x, None, batch_size=batch_size, shuffle=False, dataloader_kwargs=dataloader_kwargs)
        return self._predict(source, False, False, True, convert_to_numpy, verbose, progress_options, callbacks)

    def predict_dataset(
        self,
        dataset: Dataset[Any],
        *,
        batch_size: int = 32,
        steps: int | None = None,
        has_ground_truth: bool = False,
        return_ground_truth: bool = False,
        concatenate_returns: bool = True,
        convert_to_numpy: bool = True,
        num_workers: int = 0,
        collate_fn: Any = None,
        verbose: bool = True,
        progress_options: dict[str, Any] | None = None,
        callbacks: list[Callback] | None = None,
        dataloader_kwargs: dict[str, Any] | None = None,
    ) -> Any:
        """Predictions on a ``Dataset`` (of inputs, or of ``(x, y)`` with ``has_ground_truth=True``)."""
        check_positive_int(batch_size, "batch_size")
        loader = dataset_source(
            dataset,
            "dataset",
            batch_size=batch_size,
            shuffle=False,
            num_workers=num_workers,
            collate_fn=collate_fn,
            dataloader_kwargs=dataloader_kwargs,
            pin_memory=self._pin_memory(),
        )
        return self.predict_generator(
            loader,
            steps=steps,
            has_ground_truth=has_ground_truth,
            return_ground_truth=return_ground_truth,
            concatenate_returns=concatenate_returns,
            convert_to_numpy=convert_to_numpy,
            verbose=verbose,
            progress_options=progress_options,
            callbacks=callbacks,
        )

    def predict_generator(
        self,
        generator: Iterable[Any],
        *,
        steps: int | None = None,
        has_ground_truth: bool = False,
        return_ground_truth: bool = False,
        concatenate_returns: bool = True,
        convert_to_numpy: bool = True,
        verbose: bool = True,
        progress_options: dict[str, Any] | None = None,
        callbacks: list[Callback] | None = None,
    ) -> Any:
        """Predictions on an iterable of input batches (or ``(x, y)`` with ``has_ground_truth=True``).

        ``return_ground_truth=True`` implies ``has_ground_truth``: the batches are ``(x, y)`` pairs.
        """
        check_positive_int(steps, "steps", allow_none=True)
        return self._predict(
            iterable_source(generator, steps, "generator"),
            has_ground_truth or return_ground_truth,
            return_ground_truth,
            concatenate_returns,
            convert_to_numpy,
            verbose,
            progress_options,
            callbacks,
        )

    def _predict(
        self,
        source: Any,
        has_ground_truth: bool,
        return_ground_truth: bool,
        concatenate_returns: bool,
        convert_to_numpy: bool,
        verbose: bool,
        progress_options: dict[str, Any] | None,
        callbacks: list[Callback] | None,
    ) -> Any:
        callback_list = self._callbacks(callbacks, verbose, progress_options, {"steps": source_length(source)})
        started = time.perf_counter()
        with self._running(source):
            callback_list.on_predict_begin({})
            predictions, truths = self._loop.predict_phase(source, callback_list, has_ground_truth)
            callback_list.on_predict_end({"time": time.perf_counter() - started})
        output = {"concatenate_returns": concatenate_returns, "convert_to_numpy": convert_to_numpy}
        result = format_outputs(_from_every_rank(predictions, source), **output)
        if return_ground_truth:
            return result, format_outputs(_from_every_rank(truths, source), **output)
        return result

    # -- single batches -----------------------------------------------------------------------------------
    def train_on_batch(
        self,
        x: Any,
        y: Any,
        *,
        return_pred: bool = False,
        return_dict_format: bool = False,
        convert_to_numpy: bool = True,
    ) -> Any:
        """One optimization step on one batch; returns its loss and batch metrics like :meth:`evaluate`.

        Epoch metrics are left out: they describe a whole phase, not one batch (as in Poutyne).
        """
        if self.optimizer is None:
            raise RuntimeError("This Model has no optimizer: pass `optimizer` to Model(...) before training.")
        with self._running():
            tracker = self._loop.new_tracker(with_epoch_metrics=False)
            self.network.train(True)
            with torch.enable_grad():
                result = self._steps.forward_backward((numpy_to_torch(x), numpy_to_torch(y)), accumulate=False)
            self._steps.optimizer_step()
            tracker.update(result.loss, result.y_pred, result.y_true, result.size)
            logs = tracker.compute()
        return self._batch_return(logs, result.y_pred, return_pred, return_dict_format, convert_to_numpy)

    def evaluate_on_batch(
        self,
        x: Any,
        y: Any,
        *,
        return_pred: bool = False,
        return_dict_format: bool = False,
        convert_to_numpy: bool = True,
    ) -> Any:
        """Loss and batch metrics of one batch, without gradients (epoch metrics are left out)."""
        with self._running():
            tracker = self._loop.new_tracker(with_epoch_metrics=False)
            self.network.eval()
            with torch.no_grad():
                result = self._steps.evaluate((numpy_to_torch(x), numpy_to_torch(y)))
                tracker.update(result.loss, result.y_pred, result.y_true, result.size)
            logs = tracker.compute()
        return self._batch_return(logs, result.y_pred, return_pred, return_dict_format, convert_to_numpy)

    def predict_on_batch(self, x: Any, *, convert_to_numpy: bool = True) -> Any:
        """The network's output on one batch of inputs."""
        with self._running():
            self.network.eval()
            with torch.no_grad():
                output = self._steps.predict(numpy_to_torch(x))
        return format_outputs([output], concatenate_returns=True, convert_to_numpy=convert_to_numpy)

    def _batch_return(
        self,
        logs: dict[str, Any],
        y_pred: Any,
        return_pred: bool,
        return_dict_format: bool,
        convert_to_numpy: bool,
    ) -> Any:
        extras: tuple[Any, ...] = ()
        if return_pred:
            extras = (format_outputs([y_pred], concatenate_returns=True, convert_to_numpy=convert_to_numpy),)
        return format_evaluation(
            logs,
            self.batch_metrics_names,
            return_dict_format=return_dict_format,
            prefix="",
            elapsed=None,
            extras=extras,
        )

    def preprocess_input(self, x: Any, y: Any = None) -> Any:
        """Inputs (and targets) as a step hands them to the network: tensors on the model's device.

        ``x`` comes back as a tuple of the network's arguments (a single input, a ``PackedSequence``
        included, becomes a 1-tuple), with ``y`` beside it when given: ``(x, y)``. NumPy arrays become
        tensors.

        >>> from trainwell import Model
        >>> model = Model(torch.nn.Linear(2, 1), 'sgd', 'mse')
        >>> x, y = model.preprocess_input(torch.ones(3, 2), torch.zeros(3, 1))
        >>> type(x).__name__, x[0].shape
        ('tuple', torch.Size([3, 2]))
        """
        device = self._data_device()
        x = to_device(x, device)
        if not isinstance(x, (tuple, list)) or isinstance(x, PackedSequence):
            x = (x,)
        if y is None:
            return x
        return x, to_device(y, device)


def _from_every_rank(parts: list[Any], source: Any) -> list[Any]:
    """Under torchrun, the outputs of every rank's shard, reassembled in the data's order (one part).

    Every rank gets the whole result. A source that is not sharded (a generator every rank reads
    whole) already holds everything, so its outputs are returned as they are.
    """
    if not is_sharded(source):
        return parts
    local = concatenate([_tensors(part) for part in parts])
    return [distributed.interleave(distributed.all_gather_structure(local))]


def _tensors(obj: Any) -> Any:
    # Generator batches may carry NumPy arrays; only tensors travel between ranks.
    return numpy_to_torch(obj)
