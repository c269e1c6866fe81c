"""Crash-safe writes in medlearn._io."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from medlearn import _io


@pytest.mark.parametrize("durable", [True, False])
def test_atomic_write_replaces_whole_file_and_leaves_no_temp(tmp_path: Path, durable: bool) -> None:
    target = tmp_path / "sub" / "blob.bin"
    _io.atomic_write_bytes(target, b"old", durable=durable)
    _io.atomic_write_bytes(target, b"new contents", durable=durable)
    assert target.read_bytes() == b"new contents"
    assert [p.name for p in target.parent.iterdir()] == ["blob.bin"]
    assert target.stat().st_mode & 0o777 == 0o666 & ~_io._UMASK


def test_durable_false_skips_fsync(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append(fd), real(fd)))
    _io.atomic_write_bytes(tmp_path / "cache.bin", b"x", durable=False)
    assert calls == []
    _io.atomic_write_bytes(tmp_path / "kept.bin", b"x")
    assert len(calls) == 2  # the file, then its folder


def test_failed_write_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "blob.bin"
    _io.atomic_write_bytes(target, b"old")

    def boom(*_a: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        _io.atomic_write_bytes(target, b"new", durable=False)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["blob.bin"]
