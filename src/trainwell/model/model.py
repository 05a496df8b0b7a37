"""``Model``: the Keras/Poutyne facade. It validates input once, then delegates to one loop.

The ``fit*``, ``evaluate*`` and ``predict*`` families only differ in how the user's data becomes a
batch source (:mod:`trainwell.data.inputs`); each family funnels into one private method that runs the loop.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from trainwell import distributed
from trainwell.callbacks.base import Callback, CallbackList
from trainwell.callbacks.progress import ProgressionCallback
from trainwell.data.inputs import (
    dataset_source,
    iterable_source,
    pair_argument,
    tensor_dataset,
    tensor_source,
    validation_source,
)
from trainwell.data.sources import (
    FinishedSource,
    IterableBatches,
    TensorBatches,
    release_sources,
    source_length,
)
from trainwell.engine import sanity
from trainwell.engine.compilation import CompiledNetwork, compile_options
from trainwell.engine.cpu_memory import tune_malloc_for_cpu
from trainwell.engine.loop import Loop, LoopState
from trainwell.engine.parallel import distribute
from trainwell.engine.precision import MixedPrecision
from trainwell.engine.sharded import FSDP, resolve_strategy, shard_network
from trainwell.engine.step_context import EPOCH_FUNCTION_NAMES, StepContext
from trainwell.engine.steps import StepFunction, Steps
from trainwell.losses import resolve_loss
from trainwell.metrics.adapters import EpochMetricAdapter
from trainwell.metrics.resolve import check_unique_names, resolve_batch_metrics, resolve_epoch_metrics
from trainwell.model import lazy_layers
from trainwell.model.inference import EvaluateAndPredict
from trainwell.model.training_state import TrainingState
from trainwell.model.weights import WeightsAndDevices
from trainwell.optimizers import is_optimizer_mapping, resolve_optimizer, resolve_optimizers
from trainwell.utils.checks import check_callable, check_positive_int

__all__ = ["Model"]


class Model(EvaluateAndPredict, WeightsAndDevices, TrainingState):
    """A network with its optimizer, loss and metrics: ``fit`` trains it, ``evaluate``/``predict`` use it.

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
        precision: ``'32'`` (default), ``'bf16'`` (autocast in bfloat16) or ``'16'`` (autocast in float16
            with a gradient scaler); see :mod:`trainwell.engine.precision`.
        compile: True (or a dict of ``torch.compile`` keyword arguments) compiles the network, running it
            eagerly with one warning if compilation fails.
        train_step: a function ``step(context, batch) -> dict`` replacing the training step: it does its own
            backward and optimizer steps, and returns the values to log (see
            :class:`~trainwell.engine.step_context.StepContext`). A subclass may define a ``train_step`` method instead.
        evaluate_step: the same for validation and test batches (run without gradients).
        epoch_functions: fitloop's stage functions by name: ``'train_epoch_start'``, ``'train_epoch_end'``,
            ``'valid_epoch_start'``... An epoch start gets the context; an epoch end gets the context and the
            phase's :class:`~trainwell.engine.step_outputs.StepOutputs`, and returns values to add to the logs.
            Methods of those names on a subclass work too.
        sanity_check: before the first epoch of each ``fit``, run this many validation and training batches
            (True: 2, False: none) so that a broken evaluation path fails in seconds; the model is then put
            back exactly as it was (see :mod:`trainwell.engine.sanity`).
        strategy: under torchrun, ``'ddp'`` (the default: DistributedDataParallel) or ``'fsdp'`` (PyTorch's
            FSDP2: parameters, gradients and optimizer state sharded over the ranks; pass the optimizer by
            name), or a :class:`~trainwell.engine.sharded.FSDP` policy naming the units. See docs/distributed.md.

    ``optimizer`` may also be a dict of named optimizers, ``{'generator': ..., 'discriminator': ...}``
    (instances, names or spec dicts built over the sub-network of the same name): ``model.optimizer`` is
    then an :class:`~trainwell.optimizers.OptimizerGroup`, saved and restored as one.

    >>> network = nn.Linear(4, 3)
    >>> model = Model(network, 'sgd', 'cross_entropy', batch_metrics=['accuracy'])
    >>> x, y = torch.randn(64, 4), torch.randint(3, (64,))
    >>> history = model.fit(x, y, epochs=2, batch_size=16, verbose=False)
    >>> [sorted(epoch) for epoch in history][0]  # no lr: loggers write it (see model.state.learning_rates)
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
        precision: Any = "32",
        compile: Any = False,
        train_step: StepFunction | None = None,
        evaluate_step: StepFunction | None = None,
        epoch_functions: dict[str, Callable[..., Any]] | None = None,
        sanity_check: bool | int = True,
        strategy: Any = None,
    ) -> None:
        if not isinstance(network, nn.Module):
            raise TypeError(
                f"`network` must be a torch.nn.Module. Received: network of type {type(network).__name__}. "
                "Wrap a function with trainwell.Lambda, or subclass nn.Module."
            )
        self.network = network
        self.strategy = resolve_strategy(strategy)
        fsdp = isinstance(self.strategy, FSDP)  # the optimizer is built on the shards, once they exist
        # A named optimizer over lazy layers waits for their shapes (the first batch of fit): see lazy_layers.
        self._pending_optimizer = None if fsdp else lazy_layers.defer_optimizer(optimizer, network)
        self.optimizer: Any = None
        if self._pending_optimizer is None and not fsdp:
            self.optimizer = (
                resolve_optimizers(optimizer, network)
                if is_optimizer_mapping(optimizer)
                else resolve_optimizer(optimizer, network)
            )
        self.loss_function = None if loss_function is None else resolve_loss(loss_function)
        self.batch_metrics = resolve_batch_metrics(batch_metrics, "batch_metrics")
        # What the loop tracks: every epoch metric behind one interface (a Poutyne Metric in an adapter).
        self._epoch_metrics = resolve_epoch_metrics(epoch_metrics, "epoch_metrics")
        check_unique_names(self.batch_metrics, self._epoch_metrics)
        self.stop_training = False
        self.device: torch.device | None = None
        self._steps = Steps(network, self.optimizer, self.loss_function, None)
        self._steps.set_precision(MixedPrecision(precision))
        self._steps.context = StepContext(self, self._steps)
        self._loop = Loop(self._steps, self.batch_metrics, self._epoch_metrics, self)
        self._set_custom_steps(train_step, evaluate_step, epoch_functions)
        self._compile_options = compile_options(compile)
        self._sanity_batches = sanity.check_sanity_option(sanity_check)
        device = distributed.setup(device, network)  # under torchrun: joins the group, picks cuda:LOCAL_RANK
        if device is not None:
            self.to(device)
        if isinstance(self.strategy, FSDP):
            self._shard(self.strategy, optimizer, precision)
        self._compile()

    def _shard(self, policy: FSDP, optimizer: Any, precision: Any) -> None:
        """``strategy='fsdp'``: shards the network (see trainwell.engine.sharded), then builds the optimizer on it."""
        name = MixedPrecision(precision).name
        shard_network(self.network, policy, name, optimizer)
        self.optimizer = resolve_optimizer(optimizer, self.network)
        self._steps.optimizer = self.optimizer
        if name == "bf16":  # FSDP's own mixed precision casts; no autocast on top
            self._steps.set_precision(MixedPrecision("32"))

    def _set_custom_steps(
        self,
        train_step: StepFunction | None,
        evaluate_step: StepFunction | None,
        epoch_functions: dict[str, Callable[..., Any]] | None,
    ) -> None:
        # Arguments first, then methods a subclass defines under the same names.
        steps = self._steps
        steps.train_function = check_callable(train_step, "train_step") or getattr(self, "train_step", None)
        steps.evaluate_function = check_callable(evaluate_step, "evaluate_step") or getattr(self, "evaluate_step", None)
        functions = dict(epoch_functions or {})
        for name, function in functions.items():
            if name not in EPOCH_FUNCTION_NAMES:
                raise ValueError(
                    f"Unknown key {name!r} in `epoch_functions`. The keys are {list(EPOCH_FUNCTION_NAMES)}."
                )
            check_callable(function, f"epoch_functions[{name!r}]")
        for name in EPOCH_FUNCTION_NAMES:
            method = getattr(self, name, None)
            if name not in functions and method is not None:
                functions[name] = method
        self._loop.epoch_functions = functions

    def _compile(self) -> None:
        options = self._compile_options
        if options is None:
            return
        network = self._steps.network
        if isinstance(network, nn.ModuleDict):
            # No forward of its own: each part is compiled, and custom steps call the parts.
            self._steps.networks = {name: CompiledNetwork(part, options) for name, part in network.items()}
        else:
            self._steps.network = CompiledNetwork(network, options)

    def materialize(self, sample_input: Any) -> Model:
        """Gives lazy layers (``nn.LazyLinear``...) their shapes from a batch of inputs, then builds the optimizer.

        ``fit`` does this by itself on its first batch; call it to save or load optimizer state before
        training, or when training from a one-shot generator. See :mod:`trainwell.model.lazy_layers`.
        """
        lazy_layers.materialize_model(self, sample_input)
        return self

    # -- introspection ------------------------------------------------------------------------------------
    @property
    def metrics_names(self) -> list[str]:
        """The log keys of the metrics, batch metrics first."""
        return [*self.batch_metrics_names, *self.epoch_metrics_names]

    @property
    def batch_metrics_names(self) -> list[str]:
        """The log keys of the batch metrics."""
        return [name for metric in self.batch_metrics for name in metric.names]

    @property
    def epoch_metrics_names(self) -> list[str]:
        """The log keys of the epoch metrics."""
        return [name for metric in self._epoch_metrics for name in metric.names]

    @property
    def epoch_metrics(self) -> list[Any]:
        """The epoch metrics as given (Poutyne's attribute).

        A Poutyne ``Metric`` (``FBeta``, ``SKLearnMetrics``, your own) is the object itself, as in Poutyne; a
        function or a name is the trainwell metric that averages it.
        """
        return [metric.metric if isinstance(metric, EpochMetricAdapter) else metric for metric in self._epoch_metrics]

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
        self,
        callbacks: list[Callback] | None,
        verbose: bool,
        progress_options: dict[str, Any] | None,
        params: dict[str, Any],
    ) -> CallbackList:
        if callbacks is not None and not isinstance(callbacks, (list, tuple)):
            raise TypeError(
                f"`callbacks` must be a list of Callback instances. Received: callbacks of type "
                f"{type(callbacks).__name__}."
            )
        # A display the user passes replaces the default one instead of printing everything twice.
        own_display = any(isinstance(callback, ProgressionCallback) for callback in callbacks or [])
        show = verbose and not own_display and distributed.is_main_process()  # one display, from rank 0
        listed: list[Callback] = [ProgressionCallback(**(progress_options or {}))] if show else []
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
            valid_set = None if validation_data is None else tensor_dataset(*pair_argument(validation_data))
            return self.fit_dataset(
                tensor_dataset(x, y),
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
        train = tensor_source(x, y, batch_size=batch_size, shuffle=True)
        valid = None
        if validation_data is not None:
            valid = tensor_source(
                *pair_argument(validation_data),
                batch_size=batch_size,
                shuffle=False,
                x_name="validation_data",
                y_name="validation_data",
            )
        return self._fit(
            train, valid, epochs, steps_per_epoch, validation_steps, batches_per_step, initial_epoch,
            verbose, progress_options, callbacks,
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
        loader_options = {
            "num_workers": num_workers,
            "collate_fn": collate_fn,
            "dataloader_kwargs": dataloader_kwargs,
        }
        pin = self._pin_memory()
        train = dataset_source(
            train_dataset,
            "train_dataset",
            batch_size=batch_size,
            shuffle=True,
            pin_memory=pin,
            **loader_options,
        )
        valid = None
        if valid_dataset is not None:
            valid = dataset_source(
                valid_dataset,
                "valid_dataset",
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

        An epoch takes ``steps_per_epoch`` batches, else ``len(train_generator)``, else reads the source
        until it stops (a plain generator is then used up by the first epoch: give ``steps_per_epoch``).
        With ``steps_per_epoch``, a training source continues where the previous epoch stopped, and is
        restarted whenever it runs out. Validation takes ``validation_steps`` batches, else
        ``len(valid_generator)``, else ``steps_per_epoch`` for a source without a length, else a whole
        pass; it starts from the beginning of ``valid_generator`` every epoch.
        """
        train = iterable_source(train_generator, steps_per_epoch, "train_generator")
        valid = None
        if valid_generator is not None:
            valid = validation_source(valid_generator, validation_steps, steps_per_epoch, "valid_generator")
        return self._fit(
            train, valid, epochs, steps_per_epoch, validation_steps, batches_per_step, initial_epoch,
            verbose, progress_options, callbacks,
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
    ) -> list[dict[str, Any]]:
        check_positive_int(epochs, "epochs")
        check_positive_int(initial_epoch, "initial_epoch")
        check_positive_int(batches_per_step, "batches_per_step")
        check_positive_int(steps_per_epoch, "steps_per_epoch", allow_none=True)
        check_positive_int(validation_steps, "validation_steps", allow_none=True)
        lazy_layers.prepare_fit(self, train)  # lazy layers get their shapes, then the named optimizer is built
        if self.optimizer is None and self._steps.train_function is None:
            raise RuntimeError("This Model has no optimizer: pass `optimizer` to Model(...) before calling fit.")
        if batches_per_step > 1 and self._steps.train_function is not None:
            raise ValueError(
                f"`batches_per_step` must be 1 with a custom train_step, which applies its optimizers itself. "
                f"Received: batches_per_step={batches_per_step}. Accumulate inside the step instead."
            )
        if steps_per_epoch is not None and isinstance(train, TensorBatches):
            train = IterableBatches(train, steps_per_epoch)
        if validation_steps is not None and isinstance(valid, TensorBatches):
            valid = IterableBatches(valid, validation_steps, restart=True)
        # Poutyne's parameters, exactly: 'valid_steps' only when validation_steps or the validation
        # length is known (validation_steps is reported even without validation data, as Poutyne does).
        params: dict[str, Any] = {"epochs": epochs, "steps": source_length(train)}
        valid_steps = validation_steps if valid is None else source_length(valid)
        if valid_steps is not None:
            params["valid_steps"] = valid_steps
        callback_list = self._callbacks(callbacks, verbose, progress_options, params)
        try:
            with self._running(train, valid):
                sanity.sanity_check(self, train, valid, self._sanity_batches, initial_epoch)
                return self._loop.fit(
                    train,
                    valid,
                    epochs=epochs,
                    initial_epoch=initial_epoch,
                    batches_per_step=batches_per_step,
                    callbacks=callback_list,
                )
        finally:
            # The model keeps only what training_state needs of the training source: not the user's loader
            # (and its workers) for as long as the model lives.
            self._loop.train_source = FinishedSource(train, mid_epoch=not self._loop.state.epoch_done)

    def _running(self, *sources: Any) -> _Run:
        device = self._data_device()
        if device is None or device.type == "cpu":
            tune_malloc_for_cpu()  # large tensors reuse freed memory (engine/cpu_memory.py says why)
        self._steps.device = device
        self._steps.precision.bind(device)
        distribute(self)  # under torchrun: the steps call the network through DDP
        return _Run(self._steps, sources)


class _Run:
    """Resets per-run step settings, and releases the run's sources, however the run ends."""

    def __init__(self, steps: Steps, sources: tuple[Any, ...] = ()) -> None:
        self.steps = steps
        self.sources = sources
        self.hooks = list(steps.before_optimizer_step)

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        self.steps.all_targets = None
        # Gradient hooks that callbacks added for this run go with it, even when it raised and
        # on_train_end never ran: a later fit without those callbacks must not keep clipping.
        self.steps.before_optimizer_step[:] = self.hooks
        release_sources(*self.sources)  # worker processes of trainwell's loader copies stop now
