"""The segmentation option ``train_on_val``: train on train + val, keep the final weights."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from medlearn.errors import ConfigError
from medlearn.registry import MODELS


def _learner(patience: int | None = None, **options):
    from medlearn.imaging.segmentation.learner import SegmentationLearner

    return SegmentationLearner(
        model="unet",
        classes=["background", "fg"],
        spatial_dims=2,
        in_channels=1,
        model_params=MODELS.meta("unet")["tiny"],
        options=options,
        epochs=3,
        batch_size=2,
        patience=patience,
        progress=False,
        num_threads=1,
    )


@pytest.mark.parametrize(
    ("options", "patience", "match"),
    [
        ({"train_on_val": "yes"}, None, "true or false"),
        ({"train_on_val": 1}, None, "true or false"),
        ({"train_on_val": True, "threshold": "auto"}, None, "threshold"),
        ({"train_on_val": True, "min_lesion_voxels": "auto"}, None, "min_lesion_voxels"),
        ({"train_on_val": True}, 3, "training.patience"),
    ],
)
def test_bad_train_on_val_settings_are_config_errors(options, patience, match):
    with pytest.raises(ConfigError, match=match):
        _learner(patience=patience, **options)


def test_train_on_val_defaults_off_and_accepts_fixed_choices():
    assert _learner().train_on_val is False
    ln = _learner(train_on_val=True, threshold=0.4, min_lesion_voxels=5)
    assert ln.train_on_val is True and ln.threshold == pytest.approx(0.4)
    assert _learner(train_on_val=False, threshold="auto", patience=2).train_on_val is False


def _patch_counts(monkeypatch) -> list[int]:
    """Record the number of cases behind every patch dataset the learner builds."""
    from medlearn.imaging.segmentation import learner as mod

    seen: list[int] = []
    original = mod._PatchDataset

    def spy(cases, *args, **kwargs):
        seen.append(len(cases))
        return original(cases, *args, **kwargs)

    monkeypatch.setattr(mod, "_PatchDataset", spy)
    return seen


def test_fit_trains_on_train_and_val_and_keeps_the_final_weights(seg_cases, tmp_path, monkeypatch):
    records = seg_cases(5)
    seen = _patch_counts(monkeypatch)
    ln = _learner(train_on_val=True, samples_per_image=2, intensity="dataset")
    report = ln.fit(records[:3], records[3:], work_dir=tmp_path / "on", resume=False)
    assert seen == [5]  # one training dataset of all 5 cases, no validation patches
    assert report.extra["train_on_val"] is True and report.extra["best_val_dice"] is None
    images = np.stack([r["input"] for r in records])
    assert ln.preprocessor_.mean == pytest.approx([float(images.mean())], rel=1e-5)
    assert report.history and all("val_dice" not in h for h in report.history)
    ckpt = tmp_path / "on" / "checkpoints"
    assert not (ckpt / "best.ckpt").exists()
    last = torch.load(ckpt / "last.ckpt", weights_only=True)["state_dict"]
    final = ln.net_.state_dict()
    assert all(torch.equal(final[k], last[f"net.{k}"]) for k in final)

    seen.clear()
    off = _learner(samples_per_image=2)
    report = off.fit(records[:3], records[3:], work_dir=tmp_path / "off", resume=False)
    assert seen == [3, 2]  # training patches from train, validation patches from val
    assert report.extra["train_on_val"] is False and report.extra["best_val_dice"] is not None


def test_pipeline_records_train_on_val_and_keeps_the_test_split(tmp_path):
    from PIL import Image

    from medlearn.config import validate_config
    from medlearn.pipeline import load_learner, train

    rng = np.random.default_rng(0)
    root = tmp_path / "data"
    for d in ("images", "masks"):
        (root / d).mkdir(parents=True)
    for i in range(10):
        img = rng.normal(60, 15, (32, 32))
        mask = np.zeros((32, 32), np.uint8)
        r, c = rng.integers(2, 20, 2)
        mask[r : r + 10, c : c + 10] = 255
        img[mask > 0] += 120
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(root / "images" / f"s{i}.png")
        Image.fromarray(mask).save(root / "masks" / f"s{i}.png")

    def run(name: str, **options) -> tuple[dict, dict]:
        cfg = validate_config(
            {
                "name": "seg2d",
                "task": "segmentation",
                "data": {
                    "path": str(root),
                    "split": {"method": "random", "fractions": [0.6, 0.2, 0.2], "seed": 0},
                    "options": {"patch_size": [16, 16], "binary": True, **options},
                    "augment": None,
                },
                "model": {"name": "unet", "params": MODELS.meta("unet")["tiny"]},
                "training": {"epochs": 2, "batch_size": 8, "progress": False, "num_threads": 1},
                "evaluation": {"bootstrap": 20},
            }
        )
        train(cfg, out=tmp_path / name, echo=lambda _l: None)
        doc = json.loads((tmp_path / name / "metrics.json").read_text())
        return doc, json.loads((tmp_path / name / "splits.json").read_text())

    doc_on, split_on = run("on", train_on_val=True, lr_schedule="budget")
    doc_off, split_off = run("off")
    assert split_on == split_off  # the option changes what is fitted on, not the split
    assert doc_on["training"]["train_on_val"] is True
    assert doc_off["training"]["train_on_val"] is False
    assert doc_on["n"] == doc_off["n"] == {"train": 6, "val": 2, "test": 2}
    assert doc_on["metrics"]["test"]["dice"]["value"] is not None
    learner, _ = load_learner(tmp_path / "on")  # the bundle rebuilds with the option
    assert learner.train_on_val is True and learner.net_ is not None
