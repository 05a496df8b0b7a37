"""The Optuna study behind a search: its storage, its identity check, and claiming the next trial.

Trials are numbered by *slot*: slot ``k`` is the search's ``k``-th trial, whatever became of earlier
attempts at it. A slot is done when its latest attempt is complete, pruned, or failed for good (a
non-finite objective). An attempt whose worker died is adopted as it is, so a search that was never
interrupted and one that was give the same Optuna trials. An attempt that raised is retried, with the
same parameters, when a worker runs the search again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainwell.search.claims import claim_lock, worker_alive, worker_identity

__all__ = ["SLOT", "Claim", "StudyHandle"]

SLOT = "trainwell:slot"
OWNER = "trainwell:owner"
HEARTBEAT = "trainwell:heartbeat"
FINAL = "trainwell:final_failure"
CONFIG = "trainwell:search"


@dataclass
class Claim:
    """A trial this worker now runs: its Optuna trial id, its slot, and whether it was adopted."""

    trial_id: int
    slot: int
    adopted: bool


def _is_done(trial: Any) -> bool:
    from optuna.trial import TrialState

    return trial.state in (TrialState.COMPLETE, TrialState.PRUNED) or (
        trial.state == TrialState.FAIL and trial.system_attrs.get(FINAL, False)
    )


def latest_attempts(trials: list[Any]) -> dict[int, Any]:
    """The newest attempt of each slot (trials not made by a search are left out)."""
    latest: dict[int, Any] = {}
    for trial in trials:
        slot = trial.system_attrs.get(SLOT)
        if slot is not None and (slot not in latest or trial.number > latest[slot].number):
            latest[int(slot)] = trial
    return latest


class StudyHandle:
    """Opens (or creates) the study and claims trials for this worker.

    Args:
        directory: the search directory (the default SQLite file and the lock file live there).
        storage: an Optuna storage URL or object; None for ``sqlite:///<directory>/study.db``.
        study_name: the study's name in the storage.
        direction: ``'minimize'`` or ``'maximize'``.
        sampler, pruner: Optuna objects.
        config: the search's description, stored with the study and compared when it is opened again.
    """

    def __init__(
        self,
        directory: Path,
        storage: Any,
        study_name: str,
        direction: Any,
        sampler: Any,
        pruner: Any,
        config: dict[str, Any],
    ) -> None:
        import optuna

        self.directory = directory
        self.study_name = study_name
        self.url = self._url(storage)
        with self.lock():
            self.storage = self._storage(storage)
            self.study = optuna.create_study(
                storage=self.storage,
                study_name=study_name,
                direction=direction,
                sampler=sampler,
                pruner=pruner,
                load_if_exists=True,
            )
            self._check_config(config, direction)

    def _url(self, storage: Any) -> str | None:
        if storage is None:
            return f"sqlite:///{(self.directory / 'study.db').resolve()}"
        if isinstance(storage, str):
            return storage
        return getattr(storage, "url", None)  # an RDBStorage object carries its URL; other storages have none

    def _storage(self, storage: Any) -> Any:
        import optuna

        if storage is not None and not isinstance(storage, str):
            return storage
        assert self.url is not None
        # Waiting for SQLite's write lock instead of failing at once: workers write at the same moments.
        engine_kwargs = {"connect_args": {"timeout": 120}} if self.url.startswith("sqlite") else {}
        for attempt in range(5):
            try:
                return optuna.storages.RDBStorage(self.url, engine_kwargs=engine_kwargs)
            except Exception:
                # Two workers creating the tables of a new database at once: the loser retries, then finds them.
                if attempt == 4:
                    raise
                time.sleep(0.5 * (attempt + 1))
        raise AssertionError("unreachable")

    def lock(self) -> Any:
        """The study's claim lock (:func:`trainwell.search.claims.claim_lock`)."""
        return claim_lock(self.url, self.study_name, self.directory)

    def _check_config(self, config: dict[str, Any], direction: str) -> None:
        saved = self.study.user_attrs.get(CONFIG)
        started = any(_is_done(trial) for trial in self.study.get_trials(deepcopy=False))
        study_direction = self.study.direction.name.lower()
        if started and study_direction != direction:
            raise ValueError(
                f"The study {self.study_name!r} ({self.url or 'the storage given'}) {study_direction}s its "
                f"objective, but this search would {direction} it. Pass direction={study_direction!r}, or "
                "another `study_name` / search directory."
            )
        if saved is not None and started and saved != config:
            differences = [key for key in config if saved.get(key) != config.get(key)]
            shown = "; ".join(f"{key}: {saved.get(key)!r} there, {config.get(key)!r} here" for key in differences)
            raise ValueError(
                f"The study {self.study_name!r} holds trials of another search ({shown}). Run the same search to "
                "resume it, or use another search directory (or `study_name`) for a new one."
            )
        if saved != config:
            self.study.set_user_attr(CONFIG, config)

    def trials(self) -> list[Any]:
        """Every trial of the study (frozen copies)."""
        return list(self.study.get_trials(deepcopy=False))

    def done_slots(self) -> list[int]:
        """The slots whose trial is finished."""
        return sorted(slot for slot, trial in latest_attempts(self.trials()).items() if _is_done(trial))

    def claim(
        self, n_trials: int, stale_after: float, new_params: Callable[[int], dict[str, Any] | None]
    ) -> Claim | None:
        """Takes the next trial for this worker, or None when every slot is done or taken by a live worker.

        Args:
            n_trials: the search's number of trials (slots ``0 .. n_trials - 1``).
            stale_after: seconds without a heartbeat after which a worker on another machine is dead.
            new_params: the fixed parameters of a new slot (grid, seeded random), or None to let the
                study's sampler suggest them.
        """
        from optuna.trial import TrialState

        with self.lock():
            trials = self.trials()
            latest = latest_attempts(trials)
            # Enqueued but never asked (a worker killed in between): asked now rather than enqueued twice.
            waiting = [t.system_attrs.get("fixed_params") for t in trials if t.state == TrialState.WAITING]
            storage = self.study._storage
            for slot in sorted(latest):
                trial = latest[slot]
                if slot >= n_trials or trial.state != TrialState.RUNNING:
                    continue
                if worker_alive(trial.system_attrs.get(OWNER), trial.system_attrs.get(HEARTBEAT), stale_after):
                    continue
                self._own(storage, trial._trial_id)  # adopted: its worker died, its checkpoints are in its directory
                return Claim(trial._trial_id, slot, adopted=True)
            for slot in range(n_trials):
                trial = latest.get(slot)
                if trial is not None and trial.state != TrialState.FAIL:
                    continue
                if trial is not None and _is_done(trial):
                    continue
                # A new slot, or a retry of an attempt that raised (same parameters, same directory).
                params = dict(trial.params) if trial is not None else new_params(slot)
                if params is not None and params not in waiting:
                    self.study.enqueue_trial(params)
                new = self.study.ask()
                storage.set_trial_system_attr(new._trial_id, SLOT, slot)
                self._own(storage, new._trial_id)
                return Claim(new._trial_id, slot, adopted=trial is not None)
        return None

    def _own(self, storage: Any, trial_id: int) -> None:
        storage.set_trial_system_attr(trial_id, OWNER, worker_identity())
        storage.set_trial_system_attr(trial_id, HEARTBEAT, time.time())

    def beat(self, trial_id: int) -> None:
        """Records that this worker still runs the trial."""
        self.study._storage.set_trial_system_attr(trial_id, HEARTBEAT, time.time())
