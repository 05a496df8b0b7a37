"""Crash-safe checkpoint directories: what is written reads back, damage is reported by name, and a write
that fails or is interrupted at any stage leaves the previous checkpoint of the same name intact."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from trainwell.storage import checkpoints as checkpoint_store
from trainwell.storage.checkpoints import (
    MANIFEST,
    CorruptCheckpointError,
    list_checkpoints,
    read_checkpoint,
    set_aside,
    sweep_temporaries,
    write_checkpoint,
)

OLD = {"weights.safetensors": b"old weights " * 50, "state.safetensors": b"old state " * 30}
NEW = {"weights.safetensors": b"new weights " * 60, "state.safetensors": b"new state " * 40}
PREVIOUS_INTACT = (
    r"Could not write the checkpoint .*epoch_0001.*No space left on device.*previous checkpoints are intact"
)


def _leftovers(parent: Path) -> list[str]:
    return sorted(path.name for path in parent.iterdir() if path.name.startswith("."))


def _assert_old_intact(parent: Path) -> None:
    meta, files = read_checkpoint(parent / "epoch_0001")
    assert (meta, files) == ({"epoch": 1}, OLD)
    assert _leftovers(parent) == []


# -- reading back and detecting damage -------------------------------------------------------------------------
def test_a_written_checkpoint_reads_back_with_its_manifest(tmp_path: Path) -> None:
    path = write_checkpoint(tmp_path, "epoch_0001", OLD, {"epoch": 1, "logs": {"loss": 0.5}})
    assert path == tmp_path / "epoch_0001"
    meta, files = read_checkpoint(path)
    assert meta == {"epoch": 1, "logs": {"loss": 0.5}} and files == OLD
    manifest = json.loads((path / MANIFEST).read_bytes())
    for name, data in OLD.items():
        assert manifest["files"][name] == {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    assert sorted(p.name for p in path.iterdir()) == sorted([*OLD, MANIFEST])
    assert _leftovers(tmp_path) == []
    assert [info.path for info in list_checkpoints(tmp_path)] == [path]


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-7])


def _flip_a_bit(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (_truncate, r"epoch_0001 is damaged: state.safetensors has 293 bytes .* the 300 bytes"),
        (_flip_a_bit, r"epoch_0001 is damaged: state.safetensors has 300 bytes and another sha256"),
        (Path.unlink, r"epoch_0001 is missing state.safetensors"),
    ],
    ids=["truncated", "bit-flipped", "missing"],
)
def test_a_damaged_file_raises_naming_it(tmp_path: Path, damage: Callable[[Path], None], message: str) -> None:
    path = write_checkpoint(tmp_path, "epoch_0001", OLD, {"epoch": 1})
    size = (path / "state.safetensors").stat().st_size
    damage(path / "state.safetensors")
    if damage is _flip_a_bit:
        assert (path / "state.safetensors").stat().st_size == size  # same size: only the hash can tell
    with pytest.raises(CorruptCheckpointError, match=message):
        read_checkpoint(path)


def _rewrite_manifest(path: Path, change: Callable[[dict[str, Any]], None], *, rehash: bool) -> None:
    manifest = json.loads((path / MANIFEST).read_bytes())
    change(manifest)
    if rehash:  # a consistent manifest: only its content can be refused
        manifest["manifest_sha256"] = checkpoint_store._manifest_hash(manifest)
    (path / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True))


def _escape_the_directory(manifest: dict[str, Any]) -> None:
    outside = b"a file outside the checkpoint"
    manifest["files"]["../outside.bin"] = {"sha256": hashlib.sha256(outside).hexdigest(), "bytes": len(outside)}


@pytest.mark.parametrize(
    ("garble", "message"),
    [
        (lambda path: (path / MANIFEST).unlink(), r"epoch_0001 has no readable manifest.json .*No such file"),
        (lambda path: _truncate(path / MANIFEST), r"epoch_0001 has no readable manifest.json"),
        (lambda path: (path / MANIFEST).write_text("[1, 2]"), r"damaged manifest.json: it does not describe"),
        (lambda path: (path / MANIFEST).write_text('{"files": 3}'), r"damaged manifest.json: it does not describe"),
        # Valid JSON with one digit of the metadata changed: only the manifest's own hash can tell.
        (
            lambda path: (path / MANIFEST).write_text(
                (path / MANIFEST).read_text().replace('"epoch": 1', '"epoch": 7')
            ),
            r"damaged manifest.json: its content does not match its own sha256",
        ),
        (
            lambda path: _rewrite_manifest(path, lambda m: m["files"].update({"x": "y"}), rehash=True),
            r"damaged manifest.json: a file entry is malformed",
        ),
        (
            lambda path: _rewrite_manifest(path, _escape_the_directory, rehash=True),
            r"damaged manifest.json: a file entry is malformed",
        ),
    ],
    ids=["missing", "truncated", "a-list", "no-files", "altered-meta", "bad-entry", "path-outside"],
)
def test_a_missing_or_garbled_manifest_raises_naming_it(
    tmp_path: Path, garble: Callable[[Path], None], message: str
) -> None:
    (tmp_path / "outside.bin").write_bytes(b"a file outside the checkpoint")
    path = write_checkpoint(tmp_path, "epoch_0001", OLD, {"epoch": 1})
    garble(path)
    with pytest.raises(CorruptCheckpointError, match=message):
        read_checkpoint(path)


# -- writes that fail or are interrupted -----------------------------------------------------------------------
def _enospc(*args: Any) -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


class _FailOnCall:
    """Wraps a real function; its ``n``-th call raises ``error`` instead (the other calls go through)."""

    def __init__(self, real: Callable[..., Any], n: int, error: Callable[[], BaseException]) -> None:
        self.real, self.n, self.error, self.calls = real, n, error, 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        if self.calls == self.n:
            raise self.error()
        return self.real(*args, **kwargs)


class _HalfWritingFile:
    """A real file whose ``write`` puts half of the bytes on disk, then fails (as a full disk does)."""

    def __init__(self, path: Any, mode: str, error: Callable[[], BaseException]) -> None:
        self.handle = open(path, mode)  # noqa: SIM115 - closed by __exit__
        self.error = error

    def write(self, data: bytes) -> int:
        self.handle.write(data[: len(data) // 2])
        self.handle.flush()
        raise self.error()

    def __enter__(self) -> _HalfWritingFile:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.handle.close()


def _fail_writing_the_second_file(monkeypatch: pytest.MonkeyPatch, error: Callable[[], BaseException]) -> None:
    calls = []

    def opener(path: Any, mode: str = "r") -> Any:
        calls.append(path)
        return _HalfWritingFile(path, mode, error) if len(calls) == 2 else open(path, mode)

    monkeypatch.setattr(checkpoint_store, "open", opener, raising=False)  # shadows the builtin in that module only


# (what fails, how): the os.replace calls of a replacement are old -> aside (1), then new -> name (2).
FAILURES = {
    "write": lambda monkeypatch, error: _fail_writing_the_second_file(monkeypatch, error),
    "fsync": lambda monkeypatch, error: monkeypatch.setattr(os, "fsync", _FailOnCall(os.fsync, 2, error)),
    "fsync-manifest": lambda monkeypatch, error: monkeypatch.setattr(os, "fsync", _FailOnCall(os.fsync, 3, error)),
    "replace-old-aside": lambda monkeypatch, error: monkeypatch.setattr(
        os, "replace", _FailOnCall(os.replace, 1, error)
    ),
    "replace-new-in": lambda monkeypatch, error: monkeypatch.setattr(os, "replace", _FailOnCall(os.replace, 2, error)),
}


@pytest.mark.parametrize("stage", sorted(FAILURES))
def test_a_full_disk_at_any_stage_keeps_the_previous_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stage: str
) -> None:
    write_checkpoint(tmp_path, "epoch_0001", OLD, {"epoch": 1})
    FAILURES[stage](monkeypatch, _enospc)
    with pytest.raises(OSError, match=PREVIOUS_INTACT) as caught:
        write_checkpoint(tmp_path, "epoch_0001", NEW, {"epoch": 1, "new": True})
    assert caught.value.errno == errno.ENOSPC
    monkeypatch.undo()
    _assert_old_intact(tmp_path)


@pytest.mark.parametrize("stage", sorted(FAILURES))
def test_a_keyboard_interrupt_at_any_stage_keeps_the_previous_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stage: str
) -> None:
    write_checkpoint(tmp_path, "epoch_0001", OLD, {"epoch": 1})
    FAILURES[stage](monkeypatch, KeyboardInterrupt)
    with pytest.raises(KeyboardInterrupt):
        write_checkpoint(tmp_path, "epoch_0001", NEW, {"epoch": 1, "new": True})
    monkeypatch.undo()
    _assert_old_intact(tmp_path)


def test_a_failed_first_checkpoint_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "replace", _FailOnCall(os.replace, 1, _enospc))
    with pytest.raises(OSError, match=r"Could not write the checkpoint .*epoch_0001"):
        write_checkpoint(tmp_path, "epoch_0001", NEW, {"epoch": 1})
    assert list(tmp_path.iterdir()) == []


def test_replacing_keeps_the_old_checkpoint_until_the_new_one_is_complete(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_checkpoint(tmp_path, "epoch_0001", OLD, {"epoch": 1})
    real_replace = os.replace
    seen = []

    def watching_replace(source: Any, destination: Any) -> None:
        # At every rename: a complete, verified copy of the old checkpoint exists (under its name or aside),
        # and the new one is complete before it takes the name.
        copies = [tmp_path / "epoch_0001", *tmp_path.glob(".replaced-epoch_0001-*")]
        assert [read_checkpoint(p)[1] for p in copies if p.exists()] == [OLD]
        if Path(destination) == tmp_path / "epoch_0001":
            assert read_checkpoint(source)[1] == NEW
        seen.append((Path(source).name.split("-")[0], Path(destination).name.split("-")[0]))
        real_replace(source, destination)

    monkeypatch.setattr(os, "replace", watching_replace)
    write_checkpoint(tmp_path, "epoch_0001", NEW, {"epoch": 1})
    assert seen == [("epoch_0001", ".replaced"), (".partial", "epoch_0001")]
    assert read_checkpoint(tmp_path / "epoch_0001")[1] == NEW
    assert _leftovers(tmp_path) == []


# -- crashes (a real process dying mid-write) and the sweep that follows --------------------------------------
CRASHING_WRITER = textwrap.dedent(
    """
    import importlib.util, os, sys
    # The module alone (it imports nothing from trainwell): the crash test needs no torch start-up.
    spec = importlib.util.spec_from_file_location("checkpoint_store", sys.argv[1])
    store = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(store)
    parent, function, n = sys.argv[2], sys.argv[3], int(sys.argv[4])
    real, calls = getattr(os, function), []

    def crash(*args):
        calls.append(args)
        if len(calls) == n:
            os._exit(9)  # dies on the spot: no except, no finally, no cleanup
        return real(*args)

    setattr(os, function, crash)
    store.write_checkpoint(parent, "epoch_0001", {"weights.safetensors": b"new" * 99}, {"epoch": 1})
    """
)


@pytest.mark.parametrize(
    ("function", "n", "left"),
    [("fsync", 1, [".partial"]), ("replace", 1, [".partial"]), ("replace", 2, [".partial", ".replaced"])],
    ids=["while-writing-files", "before-moving-the-old-aside", "between-the-two-renames"],
)
def test_a_crash_mid_write_is_undone_by_the_sweep(tmp_path: Path, function: str, n: int, left: list[str]) -> None:
    write_checkpoint(tmp_path, "epoch_0001", OLD, {"epoch": 1})
    process = subprocess.run(
        [sys.executable, "-c", CRASHING_WRITER, checkpoint_store.__file__, str(tmp_path), function, str(n)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert process.returncode == 9, process.stderr
    assert [name.split("-")[0] for name in _leftovers(tmp_path)] == left
    # Before the sweep, only finished checkpoints are listed: never the temporary or moved-aside ones.
    assert [info.path.name for info in list_checkpoints(tmp_path)] == (["epoch_0001"] if n == 1 else [])
    sweep_temporaries(tmp_path)
    _assert_old_intact(tmp_path)  # the old checkpoint is back under its name if it had been moved aside


def test_sweep_removes_leftovers_and_keeps_checkpoints(tmp_path: Path) -> None:
    write_checkpoint(tmp_path, "epoch_0001", OLD, {"epoch": 1})
    for leftover in (".partial-epoch_0002-0badc0de", ".removing-epoch_0000-12345678", ".replaced-epoch_0001-abcdef01"):
        (tmp_path / leftover).mkdir()
        (tmp_path / leftover / "weights.safetensors").write_bytes(b"half")
    (tmp_path / "corrupt-epoch_0003").mkdir()
    sweep_temporaries(tmp_path)
    # epoch_0001 exists, so its moved-aside copy is a leftover of a finished replacement.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corrupt-epoch_0003", "epoch_0001"]
    _assert_old_intact(tmp_path)
    sweep_temporaries(tmp_path / "missing")  # nothing to sweep: no error


def test_set_aside_never_overwrites_and_hides_from_listing(tmp_path: Path) -> None:
    for number in (1, 2, 3):
        write_checkpoint(tmp_path, "epoch_0001", OLD, {"epoch": 1})
        aside = set_aside(tmp_path / "epoch_0001")
        assert aside.name == ("corrupt-epoch_0001" if number == 1 else f"corrupt-epoch_0001-{number}")
        assert read_checkpoint(aside)[1] == OLD
    (tmp_path / "epoch_0002").mkdir()  # a directory without a manifest
    assert list_checkpoints(tmp_path) == []
    unfinished = list_checkpoints(tmp_path, include_unfinished=True)
    assert [(info.path.name, info.meta) for info in unfinished] == [("epoch_0002", {})]
