from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from medlearn.bundle import MANIFEST, find_bundle, read_manifest, write_manifest
from medlearn.errors import CheckpointError, ChecksumError, DataNotFoundError


def _bundle(tmp_path: Path) -> Path:
    root = tmp_path / "run" / "bundle"
    (root / "weights").mkdir(parents=True)
    torch.save({"w": torch.arange(4.0)}, root / "weights" / "member_0.pt")
    (root / "preprocessing.json").write_text(json.dumps({"mean": [0.5]}))
    write_manifest(root, {"domain": "imaging", "learner": "imaging", "classes": ["a", "b"]})
    return root


def test_manifest_lists_every_file_with_sha256(tmp_path: Path) -> None:
    root = _bundle(tmp_path)
    manifest = json.loads((root / MANIFEST).read_text())
    assert set(manifest["files"]) == {"weights/member_0.pt", "preprocessing.json"}
    assert all(len(v) == 64 for v in manifest["files"].values())
    assert manifest["classes"] == ["a", "b"] and manifest["format"] == 1


def test_round_trip_and_lookup_from_run_dir(tmp_path: Path) -> None:
    root = _bundle(tmp_path)
    assert find_bundle(root.parent) == root
    assert find_bundle(root / MANIFEST) == root
    manifest = read_manifest(root.parent)
    state = torch.load(root / "weights" / "member_0.pt", weights_only=True)
    assert torch.equal(state["w"], torch.arange(4.0))
    assert manifest["_dir"] == str(root)


def test_tampered_file_fails_checksum(tmp_path: Path) -> None:
    root = _bundle(tmp_path)
    (root / "preprocessing.json").write_text(json.dumps({"mean": [0.6]}))
    with pytest.raises(ChecksumError, match="preprocessing.json"):
        read_manifest(root)


def test_missing_file_fails(tmp_path: Path) -> None:
    root = _bundle(tmp_path)
    (root / "weights" / "member_0.pt").unlink()
    with pytest.raises(ChecksumError, match="missing"):
        read_manifest(root)


def test_not_a_bundle_and_bad_format(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError):
        find_bundle(tmp_path)
    root = _bundle(tmp_path)
    manifest = json.loads((root / MANIFEST).read_text())
    manifest["format"] = 99
    (root / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match="format"):
        read_manifest(root)
