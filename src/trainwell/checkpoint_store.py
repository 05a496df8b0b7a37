"""Crash-safe checkpoint directories: written whole or not at all, verified before they are trusted.

A checkpoint is a directory of files plus ``manifest.json`` (sha256 and size of every file, written
last). It is assembled under a temporary name beside its target, every file and the directory are
fsync'd, and only then is it renamed into place and the parent fsync'd. A crash at any moment leaves
either no new checkpoint (the temporary directory is swept away at the next start) or a complete one.
Reading verifies every hash on the bytes it then parses, so a truncated, bit-flipped or missing file is
reported as a :class:`CorruptCheckpointError` instead of being loaded.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "MANIFEST",
    "CheckpointInfo",
    "CorruptCheckpointError",
    "list_checkpoints",
    "read_checkpoint",
    "remove_checkpoint",
    "sweep_temporaries",
    "write_checkpoint",
]

MANIFEST = "manifest.json"
_TEMPORARY = ".partial-"
_DOOMED = ".removing-"


class CorruptCheckpointError(RuntimeError):
    """A checkpoint whose files do not match its manifest (truncated, altered, missing or unreadable)."""


class CheckpointInfo:
    """A checkpoint directory and its manifest's metadata.

    Attributes:
        path: the directory.
        meta: what the writer recorded (epoch, global step, whether the epoch was complete...).
    """

    def __init__(self, path: Path, meta: dict[str, Any]) -> None:
        self.path = path
        self.meta = meta

    def __repr__(self) -> str:
        return f"CheckpointInfo({str(self.path)!r}, {self.meta!r})"


def _fsync_path(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    except OSError:
        pass  # directories cannot be fsync'd on some platforms
    finally:
        os.close(descriptor)


def _write_file(path: Path, data: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def write_checkpoint(
    parent: str | os.PathLike[str], name: str, files: Mapping[str, bytes], meta: dict[str, Any]
) -> Path:
    """Writes ``files`` as the checkpoint directory ``parent/name``, atomically.

    An existing checkpoint of the same name is replaced only once the new one is complete and verified.
    Any failure (full disk, read-only directory, interruption) leaves the previous checkpoints as they
    were and raises an ``OSError`` that says what could not be written.

    Args:
        parent: the directory holding the checkpoints (created if needed).
        name: the checkpoint's directory name.
        files: file name -> content.
        meta: JSON-able metadata stored in the manifest.

    Returns:
        The checkpoint's path.

    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> path = write_checkpoint(root, 'epoch_0001', {'a.bin': b'abc'}, {'epoch': 1})
    >>> read_checkpoint(path)[1]['a.bin']
    b'abc'
    """
    parent = Path(parent)
    target = parent / name
    temporary = parent / f"{_TEMPORARY}{name}-{uuid.uuid4().hex[:8]}"
    try:
        parent.mkdir(parents=True, exist_ok=True)
        temporary.mkdir()
        entries = {}
        for file_name, data in files.items():
            _write_file(temporary / file_name, data)
            entries[file_name] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
        manifest = {"format": 1, "created": time.time(), "meta": meta, "files": entries}
        # The manifest goes last: a directory without one was never finished.
        _write_file(temporary / MANIFEST, json.dumps(manifest, indent=1, sort_keys=True).encode())
        _fsync_path(temporary)
        read_checkpoint(temporary)  # what reached the disk is what was meant to
        if target.exists():
            doomed = parent / f"{_DOOMED}{name}-{uuid.uuid4().hex[:8]}"
            os.replace(target, doomed)
            os.replace(temporary, target)
            shutil.rmtree(doomed, ignore_errors=True)
        else:
            os.replace(temporary, target)
        _fsync_path(parent)
    except OSError as error:
        shutil.rmtree(temporary, ignore_errors=True)
        raise OSError(
            error.errno,
            f"Could not write the checkpoint {target} ({error.strerror or error}). The previous checkpoints are "
            "intact. Free some disk space or make the directory writable, then resume.",
        ) from error
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    return target


def read_checkpoint(path: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, bytes]]:
    """Reads and verifies a checkpoint directory.

    Returns:
        The manifest's metadata and the files' contents (each verified against its sha256).

    Raises:
        CorruptCheckpointError: a file is missing, has another size or hash, or the manifest is unreadable.
    """
    path = Path(path)
    try:
        manifest = json.loads((path / MANIFEST).read_bytes())
        entries = manifest["files"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise CorruptCheckpointError(
            f"The checkpoint {path} has no readable {MANIFEST} ({error}): it is incomplete or damaged."
        ) from error
    contents = {}
    for file_name, entry in entries.items():
        try:
            data = (path / file_name).read_bytes()
        except OSError as error:
            raise CorruptCheckpointError(f"The checkpoint {path} is missing {file_name} ({error}).") from error
        if len(data) != entry["bytes"] or hashlib.sha256(data).hexdigest() != entry["sha256"]:
            raise CorruptCheckpointError(
                f"The checkpoint {path} is damaged: {file_name} has {len(data)} bytes and another sha256 than "
                f"the {entry['bytes']} bytes its manifest records (truncated or altered)."
            )
        contents[file_name] = data
    return dict(manifest.get("meta", {})), contents


def list_checkpoints(parent: str | os.PathLike[str]) -> list[CheckpointInfo]:
    """The finished checkpoints under ``parent`` (those with a manifest), unverified, in name order."""
    parent = Path(parent)
    if not parent.is_dir():
        return []
    found = []
    for path in sorted(parent.iterdir()):
        if path.name.startswith(".") or not (path / MANIFEST).is_file():
            continue
        try:
            meta = json.loads((path / MANIFEST).read_bytes()).get("meta", {})
        except (OSError, ValueError, AttributeError):
            meta = {}  # an unreadable manifest: read_checkpoint will report it
        found.append(CheckpointInfo(path, meta))
    return found


def remove_checkpoint(path: str | os.PathLike[str]) -> None:
    """Deletes a checkpoint: first renamed away, so a crash never leaves a half-deleted one under its name."""
    path = Path(path)
    if not path.exists():
        return
    doomed = path.parent / f"{_DOOMED}{path.name}-{uuid.uuid4().hex[:8]}"
    os.replace(path, doomed)
    shutil.rmtree(doomed, ignore_errors=True)


def sweep_temporaries(parent: str | os.PathLike[str]) -> None:
    """Removes what interrupted writes and deletions left behind."""
    parent = Path(parent)
    if not parent.is_dir():
        return
    for path in parent.iterdir():
        if path.name.startswith((_TEMPORARY, _DOOMED)):
            shutil.rmtree(path, ignore_errors=True)
