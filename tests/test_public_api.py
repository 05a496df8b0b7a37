"""The public API: every exported name exists, Poutyne's names are there, and importing stays light."""

import subprocess
import sys

import trainwell
import trainwell.callbacks

# Poutyne's top-level names a user switching by changing the import relies on (Poutyne 1.17-1.19).
POUTYNE_NAMES = [
    "Model", "Experiment", "ModelBundle", "Callback", "CallbackList", "LambdaCallback", "ProgressionCallback",
    "EpochProgressionCallback", "ModelCheckpoint", "OptimizerCheckpoint", "LRSchedulerCheckpoint",
    "RandomStatesCheckpoint", "StateCheckpoint", "PeriodicSaveLambda", "PeriodicSaveCallback", "BestModelRestore",
    "EarlyStopping", "TerminateOnNaN", "DelayCallback", "ClipNorm", "ClipValue", "CSVLogger", "AtomicCSVLogger",
    "TensorBoardLogger", "GradientTracker", "TensorBoardGradientTracker", "MLFlowLogger", "NotificationCallback",
    "Notificator", "ReduceLROnPlateau", "StepLR", "MultiStepLR", "ExponentialLR", "CosineAnnealingLR", "CyclicLR",
    "OneCycleLR", "CosineAnnealingWarmRestarts", "LambdaLR", "OptimizerPolicy", "Phase", "linspace", "cosinespace",
    "one_cycle_phases", "sgdr_phases", "FBeta", "F1", "SKLearnMetrics", "Lambda", "set_seeds", "torch_to_numpy",
    "numpy_to_torch", "plot_history", "plot_metric",
]  # fmt: skip


def test_every_exported_name_exists():
    for module in (trainwell, trainwell.callbacks):
        missing = [name for name in module.__all__ if not hasattr(module, name)]
        assert not missing, f"{module.__name__}.__all__ names missing attributes: {missing}"
        assert len(set(module.__all__)) == len(module.__all__)


def test_poutyne_names_are_importable_from_trainwell():
    assert [name for name in POUTYNE_NAMES if name not in trainwell.__all__] == []


def test_import_trainwell_loads_no_optional_dependency():
    code = (
        "import sys, trainwell; "
        "print(sorted(m for m in ('pandas', 'matplotlib', 'tensorboard', 'mlflow', 'torchmetrics', 'scipy', "
        "'sklearn', 'transformers', 'optuna') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_importing_model_does_not_load_the_experiment_layer_or_every_callback():
    code = (
        "import sys; from trainwell import Model; "
        "print(sorted(m for m in ('trainwell.experiment', 'trainwell.callbacks.mlflow', 'trainwell.tools.summary', "
        "'trainwell.tools.lr_finder', 'trainwell.callbacks.lr_scheduler', 'trainwell.callbacks.notification') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    # ...and every name still resolves on first use, also through `from trainwell import *`.
    namespace: dict[str, object] = {}
    exec("from trainwell import *", namespace)
    assert set(trainwell.__all__) <= set(namespace)
