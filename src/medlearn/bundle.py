"""Model bundles: a directory that holds everything ``predict`` needs, with checksums.

Layout::

    bundle/
      bundle.json        manifest: format, versions, domain, task, model, classes, threshold,
                         calibration, preprocessing, metrics summary, model card, and the
                         sha256 of every other file
      weights/*.pt       tensors only (loaded with ``torch.load(weights_only=True)``)
      *.json             preprocessing and other plain-data files

Loading verifies every checksum before anything is read, refuses files that are not listed,
and never unpickles: a bundle cannot run code on the machine that loads it.
"""

from __future__ import annotations

import json
import platform
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from medlearn._io import atomic_write_json, sha256_file
from medlearn.errors import CheckpointError, ChecksumError, DataNotFoundError

__all__ = ["BUNDLE_FORMAT", "MANIFEST", "find_bundle", "read_manifest", "write_manifest"]

BUNDLE_FORMAT = 1
MANIFEST = "bundle.json"


def write_manifest(directory: str | Path, fields: Mapping[str, Any]) -> dict[str, Any]:
    """Checksum every file under ``directory`` and write ``bundle.json`` atomically.

    Args:
        directory: the bundle directory, already holding weights and preprocessing files.
        fields: manifest fields (domain, task, model, classes, ...).

    Returns:
        The manifest as written.
    """
    import torch

    import medlearn

    root = Path(directory)
    files = {
        p.relative_to(root).as_posix(): sha256_file(p)
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != MANIFEST and not p.name.startswith(".")
    }
    manifest = {
        "format": BUNDLE_FORMAT,
        "medlearn_version": medlearn.__version__,
        "torch_version": str(torch.__version__),
        "python_version": platform.python_version(),
        **dict(fields),
        "files": files,
    }
    atomic_write_json(root / MANIFEST, manifest)
    return manifest


def find_bundle(path: str | Path) -> Path:
    """Accept a bundle directory, its ``bundle.json``, or a run directory holding ``bundle/``."""
    p = Path(path)
    if p.is_file() and p.name == MANIFEST:
        return p.parent
    if (p / MANIFEST).is_file():
        return p
    if (p / "bundle" / MANIFEST).is_file():
        return p / "bundle"
    raise DataNotFoundError(
        f"No model bundle at {str(p)!r} (looked for {MANIFEST} there and in bundle/).",
        hint="Pass a run directory written by `medlearn train` or its bundle/ folder.",
    )


def read_manifest(path: str | Path, *, verify: bool = True) -> dict[str, Any]:
    """Read a bundle's manifest, verifying the sha256 of every listed file.

    Raises:
        DataNotFoundError: no bundle at ``path``.
        CheckpointError: the manifest is unreadable or from an unsupported format.
        ChecksumError: a listed file is missing or its content changed.
    """
    root = find_bundle(path)
    try:
        manifest = json.loads((root / MANIFEST).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(
            f"{root / MANIFEST}: unreadable bundle manifest ({type(exc).__name__}).",
            hint="Re-export the bundle with `medlearn train` or restore it from the registry.",
        ) from None
    if manifest.get("format") != BUNDLE_FORMAT:
        raise CheckpointError(
            f"{root / MANIFEST}: bundle format {manifest.get('format')!r} is not supported "
            f"(this medlearn reads format {BUNDLE_FORMAT}).",
            hint="Install the medlearn version that wrote it, or retrain.",
        )
    if verify:
        verify_files(root, manifest)
    manifest["_dir"] = str(root)
    return manifest


def verify_files(root: Path, manifest: Mapping[str, Any]) -> None:
    """Check that each listed file exists and matches its sha256."""
    for rel, expected in manifest.get("files", {}).items():
        f = root / rel
        if not f.is_file():
            raise ChecksumError(
                f"Bundle file {rel!r} is missing from {root}.",
                hint="The bundle is incomplete; copy the whole directory or re-export it.",
            )
        got = sha256_file(f)
        if got != expected:
            raise ChecksumError(
                f"Bundle file {rel!r} in {root} fails its checksum "
                f"(expected sha256 {expected[:12]}…, got {got[:12]}…).",
                hint="The file was changed after export; restore it or re-export the bundle.",
            )
