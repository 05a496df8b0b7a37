"""``Experiment`` (= ``ModelBundle``): one directory per run, that resumes exactly where it stopped.

:mod:`~trainwell.experiment.experiment` (the class), :mod:`~trainwell.experiment.checkpoints` (what is
saved, when, which are kept, and resuming from them), :mod:`~trainwell.experiment.files` (logs,
TensorBoard, plots, ``run.json`` and the checks before a resume) and :mod:`~trainwell.experiment.results`
(reading a directory back: checkpoints, statistics, the best epoch).
"""

from trainwell.experiment.experiment import Experiment, ModelBundle

__all__ = ["Experiment", "ModelBundle"]
