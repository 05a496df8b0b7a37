"""The engine: one loop over phases, the per-batch steps, and what runs inside them.

:mod:`~trainwell.engine.loop` runs the train/valid/test/predict phases; :mod:`~trainwell.engine.steps` the
per-batch train, evaluate and predict steps (and a user's own, through
:mod:`~trainwell.engine.step_context` and :mod:`~trainwell.engine.step_outputs`);
:mod:`~trainwell.engine.tracking` keeps the running loss and metric sums on the device;
:mod:`~trainwell.engine.precision` (autocast, gradient scaler), :mod:`~trainwell.engine.compilation`
(``torch.compile``), :mod:`~trainwell.engine.parallel` (DistributedDataParallel) change how a step runs;
:mod:`~trainwell.engine.sanity` (the sanity check) and :mod:`~trainwell.engine.dry_run` (lazy layers'
shapes) run before it.

The engine knows nothing of ``Model`` or experiments: it is handed a network, optimizers, a loss,
metrics and batch sources.
"""
