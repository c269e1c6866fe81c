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


@pytest.fixture
def seg_cases():
    """``make(n)``: ``n`` tiny seeded 2-D segmentation records (a shifted box in noise)."""

    def make(n: int, size: int = 16) -> list:
        from medlearn.data import make_record

        rng = np.random.default_rng(0)
        out = []
        for i in range(n):
            mask = np.zeros((size, size), np.int64)
            mask[3 + i : 10 + i, 4:12] = 1
            image = (mask * 2.0 + rng.normal(0, 0.5, (size, size)))[None].astype(np.float32)
            out.append(make_record(f"c{i}", image, mask, meta={}))
        return out

    return make
