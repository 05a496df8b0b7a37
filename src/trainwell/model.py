"""``Model``: the Keras/Poutyne facade. It validates input once, then delegates to one loop.

The ``fit*``, ``evaluate*`` and ``predict*`` families only differ in how the user's data becomes a
batch source (:mod:`trainwell.data`); each family funnels into one private method that runs the loop.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset, TensorDataset

from trainwell.callbacks.base import Callback, CallbackList
from trainwell.callbacks.progress import ProgressionCallback
from trainwell.checkpoint import PathOrFile, load_state, load_tensors, save_state, save_tensors
from trainwell.data import IterableBatches, TensorBatches, dataset_loader
from trainwell.loop import Loop, LoopState, source_length
from trainwell.metrics.resolve import check_unique_names, resolve_batch_metrics, resolve_epoch_metrics
from trainwell.registry import resolve_loss, resolve_optimizer
from trainwell.returns import format_evaluation, format_outputs
from trainwell.steps import Steps
from trainwell.utils import numpy_to_torch
from trainwell.validation import check_positive_int

__all__ = ["Model"]


class Model:
    """A network with its optimizer, loss and metrics, trained with ``fit`` and used with ``evaluate``/``predict``.

    Args:
        network: the ``nn.Module`` to train.
        optimizer: an optimizer over the network's parameters, a name (``'adam'``, ``'sgd'``...), a dict
            ``{'optim': 'adam', 'lr': 1e-3}``, or None (evaluation and prediction only).
        loss_function: a callable ``loss(y_pred, y_true)`` averaging over the batch, a loss name
            (``'cross_entropy'``, ``'mse'``...), or None (prediction only).
        batch_metrics: metrics computed per batch and averaged weighted by batch size: names
            (``'accuracy'``, ``'top5'``, any loss name), callables ``f(y_pred, y_true)``, ``(name, metric)``
            pairs or torchmetrics objects.
        epoch_metrics: metrics accumulated over an epoch and computed at its end (``'f1'``, ``'r2'``,
            :class:`~trainwell.metrics.FBeta`, torchmetrics objects...).
        device: where to run: ``'cpu'``, ``'cuda'``, ``'cuda:1'``, a ``torch.device``, a list of devices or
            ``'all'`` (DataParallel). None leaves the network where it is and sends batches to its device.

    >>> network = nn.Linear(4, 3)
    >>> model = Model(network, 'sgd', 'cross_entropy', batch_metrics=['accuracy'])
    >>> x, y = torch.randn(64, 4), torch.randint(3, (64,))
    >>> history = model.fit(x, y, epochs=2, batch_size=16, verbose=False)
    >>> [sorted(epoch) for epoch in history][0]
    ['acc', 'epoch', 'loss', 'time']
    >>> loss, acc = model.evaluate(x, y, verbose=False)
    """

    def __init__(
        self,
        network: nn.Module,
        optimizer: Any,
        loss_function: Any,
        *,
        batch_metrics: list[Any] | None = None,
        epoch_metrics: list[Any] | None = None,
        device: Any = None,
    ) -> None:
        if not isinstance(network, nn.Module):
            raise TypeError(
                f"`network` must be a torch.nn.Module. Received: network of type {type(network).__name__}. "
                "Wrap a function with trainwell.Lambda, or subclass nn.Module."
            )
        self.network = network
        self.optimizer = resolve_optimizer(optimizer, network)
        self.loss_function = None if loss_function is None else resolve_loss(loss_function)
        self.batch_metrics = resolve_batch_metrics(batch_metrics, "batch_metrics")
        self.epoch_metrics = resolve_epoch_metrics(epoch_metrics, "epoch_metrics")
        check_unique_names(self.batch_metrics, self.epoch_metrics)
        self.stop_training = False
        self.device: torch.device | None = None
        self._steps = Steps(network, self.optimizer, self.loss_function, None)
        self._loop = Loop(self._steps, self.batch_metrics, self.epoch_metrics, self)
        if device is not None:
            self.to(device)

    # -- introspection ------------------------------------------------------------------------------------
    @property
    def metrics_names(self) -> list[str]:
        """The log keys of the metrics, batch metrics first."""
        return [name for metric in [*self.batch_metrics, *self.epoch_metrics] for name in metric.names]

    @property
    def state(self) -> LoopState:
        """Where the loop is (phase, epoch, batch, running values): what callbacks read during a run."""
        return self._loop.state

    def _data_device(self) -> torch.device | None:
        if self.device is not None:
            return self.device
        parameter = next(self.network.parameters(), None)
        return parameter.device if parameter is not None else None

    def _callbacks(
        self, callbacks: list[Callback] | None, verbose: bool, progress_options: dict[str, Any] | None, params: dict[str, Any]
    ) -> CallbackList:
        if callbacks is not None and not isinstance(callbacks, (list, tuple)):
            raise TypeError(
                f"`callbacks` must be a list of Callback instances. Received: callbacks of type "
                f"{type(callbacks).__name__}."
            )
        listed: list[Callback] = [ProgressionCallback(**(progress_options or {}))] if verbose else []
        callback_list = CallbackList([*listed, *(callbacks or [])])
        callback_list.set_model(self)
        callback_list.set_params(params)
        return callback_list

    # -- training -----------------------------------------------------------------------------------------
    def fit(
        self,
        x: Any,
        y: Any,
        validation_data: tuple[Any, Any] | None = None,
        *,
        batch_size: int = 32,
        epochs: int = 1000,
        steps_per_epoch: int | None = None,
        validation_steps: int | None = None,
        batches_per_step: int = 1,
        initial_epoch: int = 1,
        verbose: bool = True,
        progress_options: dict[str, Any] | None = None,
        callbacks: list[Callback] | None = None,
        dataloader_kwargs: dict[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        """Trains on in-memory data: tensors, NumPy arrays, or tuples/lists/dicts of them.

        Batches are sliced from the data (shuffled each epoch), never collated sample by sample. Giving
        ``dataloader_kwargs`` switches to a ``DataLoader`` over a ``TensorDataset`` built with them.

        Returns:
            The history: one dict per epoch with ``epoch``, ``time``, ``loss``, the metrics, and
            ``val_``-prefixed values when ``validation_data`` is given.
        """
        check_positive_int(batch_size, "batch_size")
        if dataloader_kwargs is not None:
            valid_set = None if validation_data is None else _tensor_dataset(*_pair(validation_data))
            return self.fit_dataset(
                _tensor_dataset(x, y),
                valid_set,
                batch_size=batch_size,
                epochs=epochs,
                steps_per_epoch=steps_per_epoch,
                validation_steps=validation_steps,
                batches_per_step=batches_per_step,
                initial_epoch=initial_epoch,
                verbose=verbose,
                progress_options=progress_options,
                callbacks=callbacks,
                dataloader_kwargs=dataloader_kwargs,
            )
        train = TensorBatches(x, y, batch_size=batch_size, shuffle=True)
        valid = None
        if validation_data is not None:
            valid = TensorBatches(*_pair(validation_data), batch_size=batch_size, shuffle=False, x_name="validation_data")
        return self._fit(
            train, valid, epochs, steps_per_epoch, validation_steps, batches_per_step, initial_epoch,
            verbose, progress_options, callbacks, train.targets,
        )  # fmt: skip

    def fit_dataset(
        self,
        train_dataset: Dataset[Any],
        valid_dataset: Dataset[Any] | None = None,
        *,
        batch_size: int = 32,
        epochs: int = 1000,
        steps_per_epoch: int | None = None,
        validation_steps: int | None = None,
        batches_per_step: int = 1,
        initial_epoch: int = 1,
        verbose: bool = True,
        progress_options: dict[str, Any] | None = None,
        callbacks: list[Callback] | None = None,
        num_workers: int = 0,
        collate_fn: Any = None,
        dataloader_kwargs: dict[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        """Trains on ``Dataset``s of ``(x, y)`` samples, through shuffled ``DataLoader``s."""
        check_positive_int(batch_size, "batch_size")
        loader_options = {"num_workers": num_workers, "collate_fn": collate_fn, "dataloader_kwargs": dataloader_kwargs}
        pin = self._pin_memory()
        train = dataset_loader(
            _dataset(train_dataset, "train_dataset"), batch_size=batch_size, shuffle=True, pin_memory=pin, **loader_options
        )
        valid = None
        if valid_dataset is not None:
            valid = dataset_loader(
                _dataset(valid_dataset, "valid_dataset"),
                batch_size=batch_size,
                shuffle=False,
                pin_memory=pin,
                **loader_options,
            )
        return self.fit_generator(
            train,
            valid,
            epochs=epochs,
            steps_per_epoch=steps_per_epoch,
            validation_steps=validation_steps,
            batches_per_step=batches_per_step,
            initial_epoch=initial_epoch,
            verbose=verbose,
            progress_options=progress_options,
            callbacks=callbacks,
        )

    def fit_generator(
        self,
        train_generator: Iterable[Any],
        valid_generator: Iterable[Any] | None = None,
        *,
        epochs: int = 1000,
        steps_per_epoch: int | None = None,
        validation_steps: int | None = None,
        batches_per_step: int = 1,
        initial_epoch: int = 1,
        verbose: bool = True,
        progress_options: dict[str, Any] | None = None,
        callbacks: list[Callback] | None = None,
    ) -> list[dict[str, Any]]:
        """Trains on an iterable of ``(x, y)`` batches: a DataLoader, a list, a generator...

        A source without ``len`` (a plain generator) needs ``steps_per_epoch``; it then continues where
        the previous epoch stopped, while a DataLoader is restarted whenever it runs out.
        """
        train = _iterable(train_generator, steps_per_epoch, "train_generator", "steps_per_epoch")
        valid = None
        if valid_generator is not None:
            valid = _iterable(valid_generator, validation_steps, "valid_generator", "validation_steps")
        return self._fit(
            train, valid, epochs, steps_per_epoch, validation_steps, batches_per_step, initial_epoch,
            verbose, progress_options, callbacks, None,
        )  # fmt: skip

    def _fit(
        self,
        train: Any,
        valid: Any,
        epochs: int,
        steps_per_epoch: int | None,
        validation_steps: int | None,
        batches_per_step: int,
        initial_epoch: int,
        verbose: bool,
        progress_options: dict[str, Any] | None,
        callbacks: list[Callback] | None,
        all_targets: Any,
    ) -> list[dict[str, Any]]:
        check_positive_int(epochs, "epochs")
        check_positive_int(initial_epoch, "initial_epoch")
        check_positive_int(batches_per_step, "batches_per_step")
        check_positive_int(steps_per_epoch, "steps_per_epoch", allow_none=True)
        check_positive_int(validation_steps, "validation_steps", allow_none=True)
        if self.optimizer is None:
            raise RuntimeError("This Model has no optimizer: pass `optimizer` to Model(...) before calling fit.")
        if steps_per_epoch is not None and isinstance(train, TensorBatches):
            train = IterableBatches(train, steps_per_epoch)
        if validation_steps is not None and isinstance(valid, TensorBatches):
            valid = IterableBatches(valid, validation_steps)
        params = {
            "epochs": epochs,
            "steps": source_length(train),
            "valid_steps": None if valid is None else source_length(valid),
            "batches_per_step": batches_per_step,
        }
        callback_list = self._callbacks(callbacks, verbose, progress_options, params)
        with self._running(all_targets):
            return self._loop.fit(
                train,
                valid,
                epochs=epochs,
                initial_epoch=initial_epoch,
                batches_per_step=batches_per_step,
                callbacks=callback_list,
            )

    def _running(self, all_targets: Any = None) -> _Run:
        self._steps.device = self._data_device()
        self._steps.all_targets = all_targets
        return _Run(self._steps)

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
        options = {
            "return_pred": return_pred,
            "return_ground_truth": return_ground_truth,
            "return_dict_format": return_dict_format,
            "concatenate_returns": concatenate_returns,
            "convert_to_numpy": convert_to_numpy,
            "callbacks": callbacks,
            "verbose": verbose,
            "progress_options": progress_options,
        }
        if dataloader_kwargs is not None:
            loader = dataset_loader(
                _tensor_dataset(x, y), batch_size=batch_size, shuffle=False, dataloader_kwargs=dataloader_kwargs
            )
            return self._evaluate(IterableBatches(loader), None, **options)
        source = TensorBatches(x, y, batch_size=batch_size, shuffle=False)
        return self._evaluate(source, source.targets, **options)

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
        loader = dataset_loader(
            _dataset(dataset, "dataset"),
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
            IterableBatches(generator, steps, "generator"),
            None,
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
        all_targets: Any,
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
        with self._running(all_targets):
            callback_list.on_test_begin({})
            logs = self._loop.evaluate_phase(source, "test", callback_list, collect)
            elapsed = time.perf_counter() - started
            callback_list.on_test_end({"time": elapsed, **{f"test_{key}": value for key, value in logs.items()}})
        extras: tuple[Any, ...] = ()
        output = {"concatenate_returns": concatenate_returns, "convert_to_numpy": convert_to_numpy}
        if return_pred:
            extras += (format_outputs([pred for pred, _ in collect or []], **output),)
        if return_ground_truth:
            extras += (format_outputs([true for _, true in collect or []], **output),)
        return format_evaluation(
            logs, self.metrics_names, return_dict_format=return_dict_format, prefix="test_", elapsed=elapsed, extras=extras
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
        if dataloader_kwargs is not None:
            loader = dataset_loader(
                _tensor_dataset(x), batch_size=batch_size, shuffle=False, dataloader_kwargs=dataloader_kwargs
            )
            source: Any = IterableBatches(_first_of_each(loader))
        else:
            source = TensorBatches(x, None, batch_size=batch_size, shuffle=False)
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
        loader = dataset_loader(
            _dataset(dataset, "dataset"),
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
        """Predictions on an iterable of input batches (or ``(x, y)`` with ``has_ground_truth=True``)."""
        check_positive_int(steps, "steps", allow_none=True)
        if return_ground_truth and not has_ground_truth:
            raise ValueError(
                "`return_ground_truth=True` needs batches that hold targets: pass has_ground_truth=True "
                "and yield (x, y) pairs."
            )
        return self._predict(
            IterableBatches(generator, steps, "generator"),
            has_ground_truth,
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
        with self._running():
            callback_list.on_predict_begin({})
            predictions, truths = self._loop.predict_phase(source, callback_list, has_ground_truth)
            callback_list.on_predict_end({})
        output = {"concatenate_returns": concatenate_returns, "convert_to_numpy": convert_to_numpy}
        result = format_outputs(predictions, **output)
        if return_ground_truth:
            return result, format_outputs(truths, **output)
        return result

    # -- single batches -----------------------------------------------------------------------------------
    def train_on_batch(
        self, x: Any, y: Any, *, return_pred: bool = False, return_dict_format: bool = False, convert_to_numpy: bool = True
    ) -> Any:
        """One optimization step on one batch; returns its loss and metrics like :meth:`evaluate`."""
        if self.optimizer is None:
            raise RuntimeError("This Model has no optimizer: pass `optimizer` to Model(...) before training.")
        with self._running():
            tracker = self._loop.new_tracker()
            self.network.train(True)
            with torch.enable_grad():
                result = self._steps.forward_backward((numpy_to_torch(x), numpy_to_torch(y)), accumulate=False)
            self._steps.optimizer_step()
            tracker.update(result.loss, result.y_pred, result.y_true, result.size)
            logs = tracker.compute()
        return self._batch_return(logs, result.y_pred, return_pred, return_dict_format, convert_to_numpy)

    def evaluate_on_batch(
        self, x: Any, y: Any, *, return_pred: bool = False, return_dict_format: bool = False, convert_to_numpy: bool = True
    ) -> Any:
        """Loss and metrics of one batch, without gradients."""
        with self._running():
            tracker = self._loop.new_tracker()
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
        self, logs: dict[str, Any], y_pred: Any, return_pred: bool, return_dict_format: bool, convert_to_numpy: bool
    ) -> Any:
        extras: tuple[Any, ...] = ()
        if return_pred:
            extras = (format_outputs([y_pred], concatenate_returns=True, convert_to_numpy=convert_to_numpy),)
        return format_evaluation(
            logs, self.metrics_names, return_dict_format=return_dict_format, prefix="", elapsed=None, extras=extras
        )

    # -- weights and optimizer state ----------------------------------------------------------------------
    def save_weights(self, f: PathOrFile) -> None:
        """Saves the network's weights as safetensors (atomically when ``f`` is a path)."""
        save_tensors(f, dict(self.network.state_dict()))

    def load_weights(self, f: PathOrFile, strict: bool = True) -> None:
        """Loads weights from safetensors, or from a torch file read with ``weights_only=True``."""
        self.set_weights(load_tensors(f), strict=strict)

    def get_weights(self) -> dict[str, torch.Tensor]:
        """The network's state dict (references to the live tensors)."""
        return self.network.state_dict()

    def get_weight_copies(self) -> dict[str, torch.Tensor]:
        """Copies of the network's weights on the CPU, unaffected by further training."""
        return {name: tensor.detach().to("cpu", copy=True) for name, tensor in self.network.state_dict().items()}

    def set_weights(self, weights: dict[str, torch.Tensor], strict: bool = True) -> None:
        """Loads a state dict into the network."""
        self.network.load_state_dict(weights, strict=strict)

    def save_optimizer_state(self, f: PathOrFile) -> None:
        """Saves the optimizer's state without pickle (safetensors + JSON metadata)."""
        if self.optimizer is None:
            raise RuntimeError("This Model has no optimizer whose state could be saved.")
        save_state(f, self.optimizer.state_dict())

    def load_optimizer_state(self, f: PathOrFile) -> None:
        """Loads an optimizer state saved by :meth:`save_optimizer_state` (or a weights-only torch file)."""
        if self.optimizer is None:
            raise RuntimeError("This Model has no optimizer to load a state into.")
        self.optimizer.load_state_dict(load_state(f))
        self._move_optimizer_state()

    # -- devices ------------------------------------------------------------------------------------------
    def to(self, device: Any) -> Model:
        """Moves the network, the optimizer state and the metrics to ``device``; returns the model."""
        if isinstance(device, (list, tuple)) or device == "all":
            return self._to_data_parallel(device)
        try:
            resolved = torch.device(device)
        except (TypeError, RuntimeError) as error:
            raise ValueError(
                f"`device` must be a device name ('cpu', 'cuda', 'cuda:1'), a torch.device, a list of devices "
                f"or 'all'. Received: device={device!r}."
            ) from error
        self.device = resolved
        self.network.to(resolved)
        self._move_optimizer_state()
        for metric in [*self.batch_metrics, *self.epoch_metrics]:
            metric.to(resolved)
        return self

    def _to_data_parallel(self, devices: Any) -> Model:
        if not torch.cuda.is_available():
            raise ValueError(f"`device={devices!r}` needs CUDA devices, and none is available here.")
        ids = list(range(torch.cuda.device_count())) if devices == "all" else [torch.device(d).index for d in devices]
        self.to(torch.device("cuda", ids[0]))
        self._steps.network = nn.DataParallel(self.network, device_ids=ids)
        return self

    def cuda(self, device: Any = None) -> Model:
        """Moves everything to a CUDA device (the current one by default)."""
        return self.to("cuda" if device is None else torch.device("cuda", device) if isinstance(device, int) else device)

    def cpu(self) -> Model:
        """Moves everything to the CPU."""
        return self.to("cpu")

    def _move_optimizer_state(self) -> None:
        if self.optimizer is None:
            return
        for parameter, state in self.optimizer.state.items():
            if isinstance(parameter, torch.Tensor):
                for key, value in state.items():
                    # 'step' counters stay where torch put them (on the CPU for most optimizers).
                    if isinstance(value, torch.Tensor) and key != "step":
                        state[key] = value.to(parameter.device)

    def _pin_memory(self) -> bool:
        device = self._data_device()
        return device is not None and device.type == "cuda"


class _Run:
    """Resets per-run step settings however the run ends."""

    def __init__(self, steps: Steps) -> None:
        self.steps = steps

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        self.steps.all_targets = None


def _pair(data: Any) -> tuple[Any, Any]:
    if isinstance(data, (tuple, list)) and len(data) == 2:
        return data[0], data[1]
    raise ValueError(
        f"`validation_data` must be a pair (x_val, y_val). Received: {type(data).__name__}"
        + (f" of length {len(data)}" if isinstance(data, (tuple, list)) else "")
        + "."
    )


def _tensor_dataset(x: Any, *rest: Any) -> TensorDataset:
    tensors = [numpy_to_torch(item) for item in (x, *rest)]
    if not all(isinstance(tensor, torch.Tensor) for tensor in tensors):
        raise TypeError("`dataloader_kwargs` with in-memory data needs plain tensors or arrays for x and y.")
    return TensorDataset(*tensors)


def _first_of_each(loader: Iterable[Any]) -> Iterable[Any]:
    class FirstElements:
        def __len__(self) -> int:
            return len(loader)  # type: ignore[arg-type]

        def __iter__(self) -> Any:
            return (batch[0] for batch in loader)

    return FirstElements()


def _dataset(dataset: Any, argument: str) -> Dataset[Any]:
    if not isinstance(dataset, Dataset) and not hasattr(dataset, "__getitem__"):
        raise TypeError(
            f"`{argument}` must be a torch.utils.data.Dataset (or support indexing and len). "
            f"Received: {argument} of type {type(dataset).__name__}."
        )
    return dataset


def _iterable(source: Any, steps: int | None, argument: str, steps_argument: str) -> IterableBatches:
    batches = IterableBatches(source, steps, argument)
    if steps is None and source_length(batches) is None:
        raise ValueError(
            f"`{argument}` has no len() (a plain generator), so an epoch has no end. Pass "
            f"`{steps_argument}=N` to set the number of batches per epoch, or give a DataLoader or a list."
        )
    return batches

