"""Reading an experiment's directory back: checkpoints to load, statistics, the best epoch."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainwell.callbacks.monitor import infer_mode
from trainwell.experiment.checkpoints import load_weights_from
from trainwell.experiment.files import read_epoch_logs
from trainwell.storage.checkpoints import CheckpointInfo, list_checkpoints

if TYPE_CHECKING:
    import pandas

__all__ = ["ExperimentResults"]

_EPOCH_NAME = re.compile(r"epoch_(\d+)")


def _kept_for_itself(info: CheckpointInfo) -> bool:
    """A best epoch's checkpoint, or any with ``save_every_epoch``: not only the newest, kept to resume."""
    return bool(info.meta.get("was_best") or info.meta.get("every_epoch"))


class ExperimentResults:
    """``load_checkpoint``, ``get_stats``, ``get_best_epoch_stats``... (mixed into ``ModelBundle``)."""

    directory: Path
    model: Any
    monitoring: bool
    monitor_metric: str
    monitor_mode: str

    @property
    def checkpoints_directory(self) -> Path:
        """Where the checkpoints are."""
        return self.directory / "checkpoints"

    @property
    def log_path(self) -> Path:
        """``log.tsv``: one row per epoch."""
        return self.directory / "log.tsv"

    def _epoch_checkpoints(self) -> dict[int, CheckpointInfo]:
        found = {}
        for info in list_checkpoints(self.checkpoints_directory, include_unfinished=True):
            if info.meta.get("epoch_complete") and "epoch" in info.meta:
                found[int(info.meta["epoch"])] = info
            elif not info.meta and (match := _EPOCH_NAME.fullmatch(info.path.name)):
                # A damaged manifest: still listed under its epoch, so that loading it reports the damage
                # instead of silently using another checkpoint.
                found[int(match.group(1))] = info
        return found

    def _best_epoch(self) -> int | None:
        # Every new best was flagged when written, so the latest flagged epoch is the best one.
        flagged = [epoch for epoch, info in self._epoch_checkpoints().items() if info.meta.get("was_best")]
        return max(flagged) if flagged else None

    def load_checkpoint(
        self, checkpoint: int | str | os.PathLike[str], *, verbose: bool = False, strict: bool = True
    ) -> pandas.DataFrame | None:
        """Loads the weights of a checkpoint into the model; returns its epoch's ``log.tsv`` row (Poutyne's).

        Args:
            checkpoint: ``'best'`` (by the monitored metric), ``'last'``, an epoch number, a checkpoint
                directory, or a weights file (safetensors, or a torch file read with ``weights_only=True``).
            verbose: print which checkpoint was loaded.
            strict: as for ``nn.Module.load_state_dict``.

        Returns:
            The loaded epoch's statistics, a one-row DataFrame as :meth:`get_best_epoch_stats` gives; None
            for a weights file, or without pandas.

        Raises:
            CorruptCheckpointError: the checkpoint's files do not match its manifest.
        """
        return self._epoch_stats(self._restore_checkpoint(checkpoint, verbose=verbose, strict=strict))

    def _restore_checkpoint(self, checkpoint: Any, *, verbose: bool = False, strict: bool = True) -> int | None:
        """:meth:`load_checkpoint` without reading ``log.tsv``: the loaded epoch, None for a weights file."""
        saved = self._epoch_checkpoints()
        if checkpoint == "best" and not self.monitoring:
            checkpoint = "last"
        if checkpoint == "best":
            epoch = self._best_epoch()
            if epoch is None:
                raise ValueError(
                    f"{self.directory} has no best checkpoint yet: train first, or pass checkpoint='last'."
                )
            path = saved[epoch].path
        elif checkpoint == "last":
            if not saved:
                raise ValueError(f"{self.directory} has no checkpoint yet: train first.")
            path = saved[max(saved)].path
        elif isinstance(checkpoint, int) and not isinstance(checkpoint, bool):
            if checkpoint not in saved:
                raise ValueError(
                    f"No checkpoint of epoch {checkpoint} in {self.directory}. Saved epochs: {sorted(saved)}; "
                    "train with save_every_epoch=True to keep every epoch."
                )
            path = saved[checkpoint].path
        elif isinstance(checkpoint, (str, os.PathLike)):
            path = Path(checkpoint)
            if not path.is_dir():
                self.model.load_weights(path, strict=strict)
                if verbose:
                    print(f"Loaded the weights file {path}.")
                return None
        else:
            raise TypeError(
                f"`checkpoint` must be 'best', 'last', an epoch number or a path. Received: checkpoint={checkpoint!r}."
            )
        meta, weights = load_weights_from(path)
        self.model.set_weights(weights, strict=strict)
        if verbose:
            print(f"Loaded the checkpoint of epoch {meta.get('epoch')} ({path.name}).")
        epoch = meta.get("epoch")
        return None if epoch is None else int(epoch)

    def _epoch_row(self, epoch: int | None) -> dict[str, Any] | None:
        """The ``log.tsv`` row of ``epoch`` as a dict, read without pandas; None when there is none."""
        if epoch is None:
            return None
        return next((row for row in read_epoch_logs(self.log_path) if row.get("epoch") == epoch), None)

    def _epoch_stats(self, epoch: Any) -> pandas.DataFrame | None:
        """The ``log.tsv`` row of ``epoch``; None when it is unknown, not logged, or pandas is missing."""
        if epoch is None or not self.log_path.is_file():
            return None
        try:
            stats = self.get_stats()
        except ImportError:
            return None
        row = stats[stats["epoch"] == int(epoch)]
        return row if len(row) else None

    def get_stats(self) -> pandas.DataFrame:
        """``log.tsv`` as a pandas DataFrame (one row per epoch)."""
        import pandas as pd

        if not self.log_path.is_file():
            raise ValueError(f"{self.directory} has no log.tsv yet: train first.")
        return pd.read_csv(self.log_path, sep="\t")

    def _monitored_column(self, stats: pandas.DataFrame) -> str:
        # Poutyne's header has val_ columns even without validation data: empty ones do not count.
        if self.monitor_metric in stats.columns and stats[self.monitor_metric].notna().any():
            return self.monitor_metric
        fallback = self.monitor_metric.removeprefix("val_")
        if fallback in stats.columns and stats[fallback].notna().any():
            return fallback
        raise ValueError(
            f"The monitored metric {self.monitor_metric!r} is not in log.tsv. Logged: {list(stats.columns)}."
        )

    def get_best_epoch_stats(self) -> pandas.DataFrame:
        """The ``log.tsv`` row of the best epoch by the monitored metric, as a one-row DataFrame."""
        if not self.monitoring:
            raise RuntimeError("This experiment has monitoring=False: there is no best epoch.")
        stats = self.get_stats()
        column = self._monitored_column(stats)
        mode = infer_mode(column, getattr(self, "model", None)) if self.monitor_mode == "auto" else self.monitor_mode
        index = stats[column].idxmax() if mode == "max" else stats[column].idxmin()
        return stats.loc[[index]]

    def get_saved_epochs(self) -> pandas.DataFrame:
        """The ``log.tsv`` rows of the epochs whose checkpoint can be loaded by number (Poutyne's meaning).

        The epochs that improved the monitored value and whose checkpoint is still kept, and every epoch
        trained with ``save_every_epoch=True``; not the newest epoch when it is kept only to resume from.
        Without monitoring: every epoch with a checkpoint.
        """
        stats = self.get_stats()
        saved = self._epoch_checkpoints()
        if self.monitoring:
            saved = {epoch: info for epoch, info in saved.items() if _kept_for_itself(info)}
        return stats[stats["epoch"].isin(sorted(saved))]

    def is_better_than(self, other: ExperimentResults) -> bool:
        """Whether this run's best epoch beats ``other``'s by the monitored metric, which both must share.

        As in Poutyne, each run's best checkpoint (its last one without monitoring) is loaded into its
        model to read its statistics: afterwards both models hold those weights.

        Raises:
            ValueError: a run does not log, both are the same directory, or they monitor different metrics
                or directions.
        """
        if not isinstance(other, ExperimentResults):
            raise TypeError(f"`other` must be an Experiment. Received: other of type {type(other).__name__}.")
        for run, which in ((self, "This experiment"), (other, "The experiment compared to")):
            if not getattr(run, "logging", True):
                raise ValueError(f"{which} has logging=False: it keeps no checkpoint or statistics to compare.")
        # Two objects bound to one directory are one run: comparing it with itself answers nothing.
        if other is self or Path(other.directory).resolve() == Path(self.directory).resolve():
            raise ValueError(
                f"is_better_than compares two runs: pass the experiment of another directory, not {self.directory}."
            )
        if (self.monitor_metric, self.monitor_mode) != (other.monitor_metric, other.monitor_mode):
            raise ValueError(
                f"The runs monitor different things ({self.monitor_metric!r}/{self.monitor_mode} here, "
                f"{other.monitor_metric!r}/{other.monitor_mode} there): they cannot be compared."
            )
        mine, theirs = self._best_value(), other._best_value()
        return bool(mine > theirs if self.monitor_mode == "max" else mine < theirs)

    def _best_value(self) -> Any:
        stats = self.load_checkpoint("best" if self.monitoring else "last")
        if stats is None:
            raise ValueError(f"{self.directory} has no log.tsv row for its checkpoint: train first (pandas needed).")
        try:
            column = stats[self.monitor_metric]
        except KeyError:  # trained without validation: the training value was monitored instead
            column = stats[self.monitor_metric.removeprefix("val_")]
        return column.item()
