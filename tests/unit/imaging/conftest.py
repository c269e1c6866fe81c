"""Tiny synthetic images for the imaging reader tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


def write_png(path: Path, array: np.ndarray) -> Path:
    """Save ``array`` (H, W) / (H, W, C) with Pillow, creating parent folders."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


@pytest.fixture
def gray8(rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, 256, size=(12, 10), dtype=np.uint8)


@pytest.fixture
def image_folder(tmp_path: Path, gray8: np.ndarray) -> Path:
    """root/normal/{a,b}.png, root/pneumonia/{c.png, sub/d.png}."""
    root = tmp_path / "folder"
    for rel in ("normal/a.png", "normal/b.png", "pneumonia/c.png", "pneumonia/sub/d.png"):
        write_png(root / rel, gray8)
    return root
