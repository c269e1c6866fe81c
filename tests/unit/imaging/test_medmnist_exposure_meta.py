"""The MedMNIST reader's ``exposure`` meta field: tertiles of mean image intensity."""

from __future__ import annotations

from collections import Counter

import numpy as np

from medlearn.imaging.readers import read_medmnist_npz


def test_exposure_is_the_tertile_of_mean_intensity_over_all_splits(tmp_path):
    rng = np.random.default_rng(0)
    level = rng.permutation(90).astype(np.uint8)  # distinct mean intensities
    images = np.repeat(level[:, None, None], 8 * 8, axis=1).reshape(90, 8, 8)
    labels = rng.integers(0, 2, (90, 1))
    path = tmp_path / "x.npz"
    np.savez(
        path,
        train_images=images[:60],
        train_labels=labels[:60],
        test_images=images[60:],
        test_labels=labels[60:],
    )
    data = read_medmnist_npz(path)
    bands = [r["meta"]["exposure"] for r in data.records]
    assert Counter(bands) == {"low": 30, "mid": 30, "high": 30}
    for r, v in zip(data.records, np.concatenate([level[:60], level[60:]]), strict=True):
        expected = "low" if v < 30 else ("mid" if v < 60 else "high")
        assert r["meta"]["exposure"] == expected
