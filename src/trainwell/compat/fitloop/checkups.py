"""fitloop's checks of a loop before training: ``run_sanity_check`` and ``run_profiler``, everything put back after.

Both run the real loop (a few batches of every phase; the training steps under trainwell's
``StepProfiler``) and then restore the weights, module modes, optimizers, schedulers and random
generators from a :class:`~trainwell.compat.fitloop.callbacks.Snapshot`, so training afterwards is
exactly what it would have been. fitloop restored only the weights (its Adam moments kept the check's
steps). Nothing is recorded in ``M`` and the best model is not tracked.
"""

from __future__ import annotations

from typing import Any

from trainwell.callbacks.profiler import StepProfiler
from trainwell.compat.fitloop.callbacks import Snapshot

__all__ = ["Checkups"]


class Checkups:
    """``run_sanity_check``, ``run_profiler`` and ``print_time_profile`` (mixed into ``FitLoop``)."""

    model: Any
    test_dl: Any
    valid_dl: Any
    test_step: Any
    time_profile: list[dict[str, Any]]
    _profiler: StepProfiler | None = None
    _optimizers: Any
    _schedulers: Any
    _fit: Any
    _test: Any

    def run_sanity_check(
        self,
        epochs: int = 1,
        steps: int = 3,
        print_every: int = 1,
        use_test_dl: bool = False,
        display_metrics: str | list[str] | None = None,
        continue_loop: int = 0,
        define_all: bool = False,
        no_print: bool = False,
        no_cast: bool = False,
        no_float: bool = False,
        no_progress: bool = False,
        train_dl: Any = None,
        valid_dl: Any = None,
        test_dl: Any = None,
    ) -> dict[str, Any]:
        """Runs every phase for ``steps`` batches, then puts the model, optimizers, schedulers and RNGs back.

        The test phase runs on the validation loader unless ``use_test_dl``. Nothing is recorded in ``M``
        and the best model is not tracked.

        Returns:
            ``{'fit': history, 'test': test values or None}``.
        """
        options = {"define_all": define_all, "no_cast": no_cast, "no_float": no_float, "track_batch_metrics": False}
        if not no_print:
            print(f"RUNNING SANITY CHECK: TRAIN LOOP - {epochs} EPOCH(s), {steps} STEP(s)")
        snapshot = Snapshot(self.model, self._optimizers(), self._schedulers())
        try:
            history = self._fit(
                epochs, train_dl, valid_dl, record=False, callbacks=[], steps=steps, print_every=print_every,
                no_print=no_print, no_progress=no_progress, options=options,
            )  # fmt: skip
            test_loader = (test_dl if test_dl is not None else self.test_dl) if use_test_dl else None
            if not use_test_dl:
                test_loader = valid_dl if valid_dl is not None else self.valid_dl
            test = None
            if test_loader is not None and self.test_step is not None:
                if not no_print:
                    print(f"RUNNING SANITY CHECK: TEST LOOP - {steps} STEP(s)")
                test = self._test(test_loader, record=False, steps=steps, no_print=no_print, options=options)
        finally:
            snapshot.restore()
        return {"fit": history, "test": test}

    def run_profiler(
        self,
        epochs: int = 1,
        steps: int | None = None,
        define_all: bool = False,
        no_cast: bool = False,
        no_float: bool = False,
        no_progress: bool = False,
        print_outcome: bool = True,
        train_dl: Any = None,
        valid_dl: Any = None,
        test_dl: Any = None,
    ) -> list[dict[str, Any]]:
        """Times the training steps with trainwell's ``StepProfiler``, then puts everything back.

        Returns:
            The profiler's rows (``section``, ``seconds``, ``ms_per_step``, ``percent``, ``description``),
            also kept as ``time_profile``; ``print_time_profile()`` prints the table again.
        """
        options = {"define_all": define_all, "no_cast": no_cast, "no_float": no_float, "track_batch_metrics": False}
        profiler = StepProfiler(verbose=print_outcome)
        snapshot = Snapshot(self.model, self._optimizers(), self._schedulers())
        try:
            self._fit(
                epochs, train_dl, valid_dl, record=False, callbacks=[profiler], steps=steps, no_print=True,
                no_progress=no_progress, options=options,
            )  # fmt: skip
            test_loader = test_dl if test_dl is not None else self.test_dl
            if test_loader is not None and self.test_step is not None:
                self._test(test_loader, record=False, steps=steps, no_print=True, options=options)
        finally:
            snapshot.restore()
        self._profiler = profiler
        self.time_profile = profiler.rows()
        return self.time_profile

    def print_time_profile(self) -> None:
        """Prints the table of the last :meth:`run_profiler`."""
        if self._profiler is None:
            print("please run FitLoop.run_profiler(print_outcome=False) first")
        else:
            print(self._profiler.table())
