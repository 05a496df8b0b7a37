"""Losses for transformers models: the model's own ``loss`` output, and exact accumulation of token means.

:class:`ModelLoss` is the loss a transformers model computes itself when its inputs hold ``labels``.

:class:`TokenAveragedLoss` fixes gradient accumulation for losses averaged over tokens. trainwell's
``batches_per_step=k`` weights each micro-batch's loss by its number of examples, which is exact for a
mean over examples but not for a mean over real tokens: a micro-batch with few real tokens would count
as much as one with many (the bug the Hugging Face Trainer had until transformers PR #34191). The right
update divides the sum of the token losses of all k micro-batches by their total number of real tokens,
which is only known when the step ends. So the loss counts each micro-batch's real tokens (labels other
than -100, on the device), backpropagates its token sum, and, as a callback, rescales the step's
gradients by examples / tokens just before the optimizer (and before gradient clipping) runs. The value
it reports, and that is logged, is the micro-batch's token mean.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch

from trainwell.callbacks.base import Callback

__all__ = ["ModelLoss", "TokenAveragedLoss"]


def _keys_of(outputs: Any) -> str:
    if isinstance(outputs, Mapping):
        return f"its outputs hold {list(outputs)}"
    return f"it returned a {type(outputs).__name__}, not a dict of outputs"


class ModelLoss:
    """The loss a model computes itself: ``outputs['loss']``, logged as ``loss``.

    A transformers model computes its loss when its inputs hold ``labels`` (``TransformerCollator``
    leaves them there unless ``remove_labels=True``). Use it as ``Model(ModelWrapper(model), 'adamw',
    ModelLoss())``; the targets the collator gives are not used.

    Args:
        key: the output holding the loss.

    >>> ModelLoss()({'loss': torch.tensor(0.7), 'logits': torch.zeros(1, 2)}, None)
    tensor(0.7000)
    """

    __name__ = "loss"

    def __init__(self, key: str = "loss") -> None:
        if not isinstance(key, str):
            raise TypeError(f"`key` must be a string such as 'loss'. Received: key={key!r}.")
        self.key = key

    def __call__(self, y_pred: Any, y_true: Any) -> torch.Tensor:
        """``y_pred[key]``, or a ValueError saying why the model computed no loss."""
        loss = y_pred.get(self.key) if isinstance(y_pred, Mapping) else None
        if loss is None:
            raise ValueError(
                f"ModelLoss uses the model's own {self.key!r} output, but the model returned none: "
                f"{_keys_of(y_pred)}. A transformers model computes its loss only when `labels` are among its "
                "inputs: keep them in the batch (TransformerCollator(y_keys='labels') without remove_labels=True; "
                "the dataset needs a 'labels' or 'label' column), or pass a loss_function computing the loss "
                "from the outputs."
            )
        return loss

    def __repr__(self) -> str:
        return f"ModelLoss(key={self.key!r})"


class TokenAveragedLoss(Callback):
    """A loss averaged over real tokens whose gradient accumulation (``batches_per_step``) is exact.

    Pass it twice: as the loss, and in the callbacks of ``fit`` (or of ``Experiment.train``), where it
    rescales each step's gradients once the step's real tokens are all counted::

        loss = TokenAveragedLoss()                       # the model's own loss, a mean over real tokens
        model = Model(ModelWrapper(transformer), 'adamw', loss)
        model.fit_dataset(data, batch_size=8, batches_per_step=4, collate_fn=TransformerCollator('labels'),
                          callbacks=[loss])

    The update is then that of one batch of all the step's examples, averaged over all their real
    tokens, whatever the number of real tokens of each micro-batch. Without the callback, the loss is a
    plain token mean: exact with ``batches_per_step=1``, weighted by examples (inexact) otherwise.

    Args:
        loss: ``loss(outputs, y_true)``, a mean over the real tokens of a batch; None: the model's own
            ``outputs['loss']`` (:class:`ModelLoss`).
        labels_key: where the token labels are when the targets are a dict.
        ignore_index: the label of tokens that do not count (padding, prompts): -100 in transformers.
        shift_labels: count ``labels[..., 1:]``, as causal language models do (they predict the next token).

    The targets must hold the labels: ``TransformerCollator(y_keys='labels')`` (the model keeps them in
    its inputs). The tokens are counted on the device; nothing is read on the host per batch.

    >>> loss = TokenAveragedLoss(lambda outputs, labels: outputs['loss'])
    >>> loss({'loss': torch.tensor(2.0)}, torch.tensor([[5, -100], [6, 7]]))
    tensor(2.)
    """

    reads_gradients = False

    def __init__(
        self,
        loss: Callable[[Any, Any], torch.Tensor] | None = None,
        *,
        labels_key: str = "labels",
        ignore_index: int = -100,
        shift_labels: bool = False,
    ) -> None:
        if loss is not None and not callable(loss):
            raise TypeError(
                f"`loss` must be a function loss(outputs, y_true) or None (the model's own loss). "
                f"Received: loss of type {type(loss).__name__}."
            )
        self.loss: Callable[[Any, Any], torch.Tensor] = ModelLoss() if loss is None else loss
        self.labels_key = labels_key
        self.ignore_index = int(ignore_index)
        self.shift_labels = bool(shift_labels)
        self._active = False  # registered by a running fit: counting tokens, rescaling gradients
        self._examples = 0  # examples backpropagated since the last optimizer step
        self._tokens: torch.Tensor | None = None  # their real tokens, on the device

    # -- the loss ---------------------------------------------------------------------------------------------
    def labels_of(self, y_true: Any) -> torch.Tensor:
        """The token labels in the targets (a tensor, or ``y_true[labels_key]``)."""
        labels = y_true
        if isinstance(y_true, Mapping):
            if self.labels_key not in y_true:
                raise KeyError(
                    f"TokenAveragedLoss counts the real tokens in y_true[{self.labels_key!r}], but the targets "
                    f"hold {list(y_true)}. Pass labels_key= one of those, or add the labels to "
                    "TransformerCollator(y_keys=[...])."
                )
            labels = y_true[self.labels_key]
        if not isinstance(labels, torch.Tensor) or labels.is_floating_point():
            kind = f"{labels.dtype} tensor" if isinstance(labels, torch.Tensor) else type(labels).__name__
            raise TypeError(
                "TokenAveragedLoss counts the real tokens in integer labels, but the targets are a "
                f"{kind}. Use TransformerCollator(y_keys='labels') so that the targets are the labels "
                "(a collator without y_keys gives placeholder targets)."
            )
        return labels

    def count_tokens(self, labels: torch.Tensor) -> torch.Tensor:
        """The number of real tokens of a batch's labels, as a device tensor.

        >>> TokenAveragedLoss().count_tokens(torch.tensor([[5, -100], [6, 7]]))
        tensor(3)
        """
        if self.shift_labels:
            labels = labels[..., 1:]
        return (labels != self.ignore_index).sum()

    def __call__(self, y_pred: Any, y_true: Any) -> torch.Tensor:
        """The batch's token mean (with the gradient of its token sum while a fit counts tokens)."""
        mean = self.loss(y_pred, y_true)
        if not (self._active and torch.is_grad_enabled() and mean.requires_grad):
            return mean  # evaluation, the sanity check, or used without the callback: the plain token mean
        labels = self.labels_of(y_true)
        tokens = self.count_tokens(labels)
        examples = labels.shape[0] if labels.dim() > 0 else 1
        self._tokens = tokens if self._tokens is None else self._tokens + tokens
        self._examples += examples
        # The step backpropagates this loss times the number of examples: the micro-batch's token sum.
        # The value stays the token mean (what is logged); only the gradient is the sum's.
        surrogate = mean * tokens / examples
        return mean.detach() + (surrogate - surrogate.detach())

    # -- the callback -----------------------------------------------------------------------------------------
    def _hooks(self) -> list[Callable[[], None]]:
        return self.model._steps.before_optimizer_step

    def on_train_begin(self, logs: Mapping[str, Any]) -> None:  # noqa: D102
        hooks = self._hooks()
        if self.rescale not in hooks:
            hooks.insert(0, self.rescale)  # before gradient clipping, which must see the final gradients
        self._active = True

    def on_train_end(self, logs: Mapping[str, Any]) -> None:  # noqa: D102
        self._stop()

    def on_exception(self, exception: BaseException) -> None:  # noqa: D102
        self._stop()

    def _stop(self) -> None:
        hooks = self._hooks()
        if self.rescale in hooks:
            hooks.remove(self.rescale)
        self._active = False
        self._examples, self._tokens = 0, None

    def rescale(self) -> None:
        """Turns the step's gradients into those of the mean over all its real tokens (called before the optimizer).

        The default step has divided the summed token losses by the number of examples; multiplying by
        examples / real tokens gives the token mean. A step with no real token leaves the gradients at 0.
        """
        if not self._examples or self._tokens is None:
            return
        factor = self._examples / self._tokens.clamp_min(1).to(torch.float32)
        self._examples, self._tokens = 0, None
        gradients = [
            parameter.grad
            for group in self.model.optimizer.param_groups
            for parameter in group["params"]
            if parameter.grad is not None
        ]
        for gradient in gradients:
            gradient.mul_(factor.to(gradient.device, gradient.dtype))

    def state_dict(self) -> dict[str, Any]:
        """The tokens and examples of a step in progress, so that a resumed step is still exact."""
        return {"examples": self._examples, "tokens": None if self._tokens is None else self._tokens.detach().cpu()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restores :meth:`state_dict`."""
        self._examples = int(state.get("examples", 0))
        tokens = state.get("tokens")
        self._tokens = None if tokens is None else torch.as_tensor(tokens)

    def __repr__(self) -> str:
        return f"TokenAveragedLoss({self.loss!r}, labels_key={self.labels_key!r}, shift_labels={self.shift_labels})"
