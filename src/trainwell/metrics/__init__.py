"""Metrics: the batch and epoch metric contracts, trainwell's own metrics, and name resolution.

Batch metrics are functions ``f(y_pred, y_true)`` averaged over the epoch by the loop; epoch metrics
accumulate on the device and compute once at the end of the epoch. scikit-learn and torchmetrics are
never imported here: they are only used when the user passes their objects.

>>> from trainwell.metrics import resolve_batch_metrics
>>> [metric.names for metric in resolve_batch_metrics(['acc', 'top3'])]
[('acc',), ('top3',)]
"""

from trainwell.metrics.adapters import TorchMetricsBatchMetric, TorchMetricsEpochMetric
from trainwell.metrics.base import BatchMetric, EpochMetric, check_names
from trainwell.metrics.classification import (
    Accuracy,
    BinaryAccuracy,
    TopKAccuracy,
    acc,
    accuracy,
    bin_acc,
    binary_accuracy,
    topk_accuracy,
)
from trainwell.metrics.fscores import F1, FBeta, Precision, Recall
from trainwell.metrics.regression import MAE, MSE, R2, RMSE
from trainwell.metrics.resolve import check_unique_names, resolve_batch_metrics, resolve_epoch_metrics
from trainwell.metrics.sklearn import SKLearnMetrics

__all__ = [
    "F1",
    "MAE",
    "MSE",
    "R2",
    "RMSE",
    "Accuracy",
    "BatchMetric",
    "BinaryAccuracy",
    "EpochMetric",
    "FBeta",
    "Precision",
    "Recall",
    "SKLearnMetrics",
    "TopKAccuracy",
    "TorchMetricsBatchMetric",
    "TorchMetricsEpochMetric",
    "acc",
    "accuracy",
    "bin_acc",
    "binary_accuracy",
    "check_names",
    "check_unique_names",
    "resolve_batch_metrics",
    "resolve_epoch_metrics",
    "topk_accuracy",
]
