"""Metrics: the batch and epoch metric contracts, the Metric class, trainwell's own metrics, names and registration.

Batch metrics are functions ``f(y_pred, y_true)`` averaged over the epoch by the loop, or
:class:`Metric` objects whose forward gives the batch value and ``compute()`` the epoch value; epoch
metrics accumulate on the device and compute once at the end of the epoch. scikit-learn and torchmetrics
are never imported here: they are only used when the user passes their objects.

>>> from trainwell.metrics import resolve_batch_metrics
>>> [metric.names for metric in resolve_batch_metrics(['acc', 'top3'])]
[('acc',), ('top3',)]
"""

from trainwell.metrics.adapters import (
    BatchMetricAdapter,
    EpochMetricAdapter,
    TorchMetricsBatchMetric,
    TorchMetricsEpochMetric,
)
from trainwell.metrics.averaged import AveragedEpochMetric
from trainwell.metrics.base import BatchMetric, EpochMetric, check_names
from trainwell.metrics.classification import (
    Accuracy,
    BinaryAccuracy,
    TopKAccuracy,
    acc,
    accuracy,
    bin_acc,
    binary_accuracy,
    topk,
    topk_accuracy,
)
from trainwell.metrics.fscores import F1, BinaryF1, BinaryPrecision, BinaryRecall, FBeta, Precision, Recall
from trainwell.metrics.metric import Metric
from trainwell.metrics.naming import camel_to_snake, flatten_metric_names, get_names_of_metric, rename_doubles
from trainwell.metrics.registry import (
    clean_metric_class_name,
    clean_metric_func_name,
    do_register_metric_class,
    do_register_metric_func,
    register_metric_class,
    register_metric_func,
    unregister_metric_class,
    unregister_metric_func,
)
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
    "AveragedEpochMetric",
    "BatchMetric",
    "BatchMetricAdapter",
    "BinaryAccuracy",
    "BinaryF1",
    "BinaryPrecision",
    "BinaryRecall",
    "EpochMetric",
    "EpochMetricAdapter",
    "FBeta",
    "Metric",
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
    "camel_to_snake",
    "check_names",
    "check_unique_names",
    "clean_metric_class_name",
    "clean_metric_func_name",
    "do_register_metric_class",
    "do_register_metric_func",
    "flatten_metric_names",
    "get_names_of_metric",
    "register_metric_class",
    "register_metric_func",
    "rename_doubles",
    "resolve_batch_metrics",
    "resolve_epoch_metrics",
    "topk",
    "topk_accuracy",
    "unregister_metric_class",
    "unregister_metric_func",
]
