"""Crash-safe checkpoint directories: written whole or not at all, verified before they are trusted.

A checkpoint is a directory of files plus ``manifest.json`` (sha256 and size of every file, written
last). It is assembled under a temporary name beside its target, every file and the directory are
fsync'd, and only then is it renamed into place and the parent fsync'd. A crash at any moment leaves
either no new checkpoint (the temporary directory is swept away at the next start) or a complete one.
Reading verifies every hash on the bytes it then parses (and the manifest's own hash), so a truncated,
bit-flipped or missing file is reported as a :class:`CorruptCheckpointError` instead of being loaded.
A checkpoint found damaged can be renamed ``corrupt-<name>`` (:func:`set_aside`); such directories, like
the temporary ones, are never listed as checkpoints again.
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
    "set_aside",
    "sweep_temporaries",
    "write_checkpoint",
]

MANIFEST = "manifest.json"
CORRUPT_PREFIX = "corrupt-"
_TEMPORARY = ".partial-"
_DOOMED = ".removing-"
_REPLACED = ".replaced-"  # an existing checkpoint moved out of the way while its replacement is renamed in
_SUFFIX = 9  # "-" and 8 hex digits after the name in the three names above
_SELF_HASH = "manifest_sha256"


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
    displaced: Path | None = None  # the previous checkpoint of this name, until the new one is in place
    try:
        parent.mkdir(parents=True, exist_ok=True)
        temporary.mkdir()
        entries = {}
        for file_name, data in files.items():
            _write_file(temporary / file_name, data)
            entries[file_name] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
        manifest = {"format": 1, "created": time.time(), "meta": meta, "files": entries}
        manifest[_SELF_HASH] = _manifest_hash(manifest)
        # The manifest goes last: a directory without one was never finished.
        _write_file(temporary / MANIFEST, json.dumps(manifest, indent=1, sort_keys=True).encode())
        _fsync_path(temporary)
        read_checkpoint(temporary)  # what reached the disk is what was meant to
        if target.exists():
            # A non-empty directory cannot be renamed over: move the old one aside (never deleting it)
            # until the new one holds the name. sweep_temporaries puts it back after a crash in between.
            displaced = parent / f"{_REPLACED}{name}-{uuid.uuid4().hex[:8]}"
            os.replace(target, displaced)
        os.replace(temporary, target)
        _fsync_path(parent)  # the rename is durable before the old checkpoint goes
    except BaseException as error:
        shutil.rmtree(temporary, ignore_errors=True)
        if displaced is not None and displaced.exists() and not target.exists():
            os.replace(displaced, target)  # the new one never arrived: the old one keeps its name
        if isinstance(error, OSError):
            raise OSError(
                error.errno,
                f"Could not write the checkpoint {target} ({error.strerror or error}). The previous checkpoints "
                "are intact. Free some disk space or make the directory writable, then resume.",
            ) from error
        raise
    if displaced is not None:
        shutil.rmtree(displaced, ignore_errors=True)
    return target


def read_checkpoint(path: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, bytes]]:
    """Reads and verifies a checkpoint directory.

    Returns:
        The manifest's metadata and the files' contents (each verified against its sha256).

    Raises:
        CorruptCheckpointError: a file is missing, has another size or hash, or the manifest is missing,
            unreadable, malformed or altered.
    """
    path = Path(path)
    entries, meta = _read_manifest(path)
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
    return meta, contents


def _manifest_hash(manifest: Mapping[str, Any]) -> str:
    # The hash of the manifest without its own hash, in the canonical form it is written in.
    body = {key: value for key, value in manifest.items() if key != _SELF_HASH}
    return hashlib.sha256(json.dumps(body, indent=1, sort_keys=True).encode()).hexdigest()


def _read_manifest(path: Path) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """The verified manifest of ``path``: its file entries and its metadata."""
    where = path / MANIFEST
    try:
        manifest = json.loads(where.read_bytes())
    except (OSError, ValueError) as error:
        raise CorruptCheckpointError(
            f"The checkpoint {path} has no readable {MANIFEST} ({error}): it is incomplete or damaged."
        ) from error
    problem = None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        problem = "it does not describe the checkpoint's files"
    elif manifest.get(_SELF_HASH) != _manifest_hash(manifest):
        problem = "its content does not match its own sha256 (altered)"
    elif not isinstance(manifest.get("meta", {}), dict) or not all(
        _is_entry(file_name, entry) for file_name, entry in manifest["files"].items()
    ):
        problem = "a file entry is malformed"
    if problem is not None:
        raise CorruptCheckpointError(f"The checkpoint {path} has a damaged {MANIFEST}: {problem}.")
    return manifest["files"], dict(manifest.get("meta", {}))


def _is_entry(file_name: str, entry: Any) -> bool:
    # A plain name inside the checkpoint (no path outside it), with a size and a sha256.
    return (
        file_name not in ("", ".", "..", MANIFEST)
        and "/" not in file_name
        and os.sep not in file_name
        and isinstance(entry, dict)
        and type(entry.get("bytes")) is int
        and isinstance(entry.get("sha256"), str)
    )


def list_checkpoints(parent: str | os.PathLike[str], *, include_unfinished: bool = False) -> list[CheckpointInfo]:
    """The checkpoints under ``parent``, unverified, in name order.

    Temporary directories and those set aside as ``corrupt-*`` are never listed.

    Args:
        parent: the checkpoints' directory.
        include_unfinished: also list directories without a manifest (they can only be damaged ones: a
            checkpoint gets its name after its manifest is written), with empty metadata.
    """
    parent = Path(parent)
    if not parent.is_dir():
        return []
    found = []
    for path in sorted(parent.iterdir()):
        if path.name.startswith((".", CORRUPT_PREFIX)) or not path.is_dir():
            continue
        if not (path / MANIFEST).is_file():
            if include_unfinished:
                found.append(CheckpointInfo(path, {}))
            continue
        try:
            meta = json.loads((path / MANIFEST).read_bytes()).get("meta", {})
        except (OSError, ValueError, AttributeError):
            meta = {}  # an unreadable manifest: read_checkpoint will report it
        found.append(CheckpointInfo(path, meta if isinstance(meta, dict) else {}))
    return found


def remove_checkpoint(path: str | os.PathLike[str]) -> None:
    """Deletes a checkpoint: first renamed away, so a crash never leaves a half-deleted one under its name."""
    path = Path(path)
    if not path.exists():
        return
    doomed = path.parent / f"{_DOOMED}{path.name}-{uuid.uuid4().hex[:8]}"
    os.replace(path, doomed)
    shutil.rmtree(doomed, ignore_errors=True)


def set_aside(path: str | os.PathLike[str]) -> Path:
    """Renames a damaged checkpoint ``corrupt-<name>`` (``corrupt-<name>-2``... if taken), kept for inspection.

    Returns:
        Its new path.
    """
    path = Path(path)
    aside = path.with_name(f"{CORRUPT_PREFIX}{path.name}")
    number = 1
    while aside.exists():
        number += 1
        aside = path.with_name(f"{CORRUPT_PREFIX}{path.name}-{number}")
    os.replace(path, aside)
    return aside


def sweep_temporaries(parent: str | os.PathLike[str]) -> None:
    """Cleans up after interrupted writes and deletions.

    Unfinished checkpoints and half-deleted ones are removed. A checkpoint that was moved aside to be
    replaced, when the crash came before its replacement took its name, gets its name back.
    """
    parent = Path(parent)
    if not parent.is_dir():
        return
    for path in parent.iterdir():
        if path.name.startswith(_REPLACED):
            original = parent / path.name[len(_REPLACED) : -_SUFFIX]
            if not original.exists():
                os.replace(path, original)
                continue
        if path.name.startswith((_TEMPORARY, _DOOMED, _REPLACED)):
            shutil.rmtree(path, ignore_errors=True)
