"""Shared fixtures: tiny seeded synthetic data, the real-data directory, thread limits."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """``MEDLEARN_DATA_DIR``, or skip the test with the reason."""
    value = os.environ.get("MEDLEARN_DATA_DIR")
    if not value or not Path(value).is_dir():
        pytest.skip("MEDLEARN_DATA_DIR is not set (run through `make test` to use ../shared/data)")
    return Path(value)


def write_png_dataset(root: Path, *, n_per_class: int = 24, size: int = 16, seed: int = 0) -> Path:
    """A labelled CSV of grayscale PNGs: class 1 has a bright square; 2 images per patient.

    Returns the CSV path (columns path, label, patient_id).
    """
    from PIL import Image

    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    rows = ["path,label,patient_id"]
    k = 0
    for label, name in enumerate(["normal", "pneumonia"]):
        for i in range(n_per_class):
            img = rng.normal(90, 20, size=(size, size))
            if label:
                r, c = rng.integers(2, size - 8, size=2)
                img[r : r + 6, c : c + 6] += 110
            arr = np.clip(img, 0, 255).astype(np.uint8)
            rel = f"img/{name}_{i:03d}.png"
            (root / "img").mkdir(exist_ok=True)
            Image.fromarray(arr).save(root / rel)
            rows.append(f"{rel},{name},P{k // 2:03d}")
            k += 1
    csv = root / "labels.csv"
    csv.write_text("\n".join(rows) + "\n")
    return csv


@pytest.fixture(scope="session")
def png_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_png_dataset(tmp_path_factory.mktemp("pngdata"))


@pytest.fixture()
def fresh_python():
    """``run(code)``: run ``code`` in a new interpreter (nothing imported yet) and return the
    last line it printed; for tests of what importing medlearn pulls in."""
    import subprocess
    import sys

    def run(code: str) -> str:
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
        )
        return out.stdout.strip().splitlines()[-1]

    return run
