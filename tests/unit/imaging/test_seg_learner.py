"""The segmentation learner and task through the pipeline on tiny seeded data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from medlearn.config import validate_config
from medlearn.errors import ConfigError
from medlearn.registry import MODELS


def _squares(root: Path, n: int = 10, size: int = 32) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    for d in ("images", "masks"):
        (root / d).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        img = rng.normal(60, 15, (size, size))
        mask = np.zeros((size, size), np.uint8)
        r, c = rng.integers(2, size - 12, 2)
        mask[r : r + 10, c : c + 10] = 255
        img[mask > 0] += 120
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(root / "images" / f"s{i}.png")
        Image.fromarray(mask).save(root / "masks" / f"s{i}.png")
    return root


@pytest.mark.parametrize("name", ["unet", "basic_unet", "segresnet", "dynunet"])
@pytest.mark.parametrize("dims", [2, 3])
def test_models_2d_3d_shapes(name, dims):
    tiny = MODELS.meta(name)["tiny"]
    net = MODELS.get(name)(spatial_dims=dims, in_channels=1, out_channels=3, **tiny).eval()
    x = torch.randn(1, 1, *([16] * dims))
    with torch.no_grad():
        assert net(x).shape == (1, 3, *([16] * dims))
    assert MODELS.meta(name)["learner"] == "segmentation"


def test_losses():
    from medlearn.imaging.segmentation.models import make_loss

    logits = torch.randn(2, 3, 8, 8, requires_grad=True)
    y = torch.randint(0, 3, (2, 1, 8, 8))
    for name in ("dice", "dice_ce", "dice_focal"):
        loss = make_loss(name)(logits, y)
        assert loss.ndim == 0 and torch.isfinite(loss)
    perfect = torch.nn.functional.one_hot(y[:, 0], 3).permute(0, 3, 1, 2).float() * 50
    assert make_loss("dice")(perfect, y) < 0.01
    with pytest.raises(ConfigError, match="dice_ce"):
        make_loss("bce")


def test_tta_flips_average_consistently():
    from medlearn.imaging.segmentation.inference import predict_volume

    net = MODELS.get("unet")(
        spatial_dims=2, in_channels=1, out_channels=2, **MODELS.meta("unet")["tiny"]
    )
    x = torch.randn(1, 24, 20)
    p = predict_volume(net, x, roi_size=(16, 16), tta=True)
    assert p.shape == (2, 24, 20)
    assert torch.allclose(p.sum(0), torch.ones(24, 20), atol=1e-5)
    # flip-equivariance: the TTA prediction of a flipped image is the flipped prediction
    pf = predict_volume(net, x.flip(-1), roi_size=(16, 16), tta=True, overlap=0.0, mode="constant")
    p0 = predict_volume(net, x, roi_size=(16, 16), tta=True, overlap=0.0, mode="constant")
    assert not torch.allclose(
        p0, predict_volume(net, x, roi_size=(16, 16), overlap=0.0, mode="constant")
    )
    assert pf.shape == p0.shape


def _cfg(path: Path, **options):
    return validate_config(
        {
            "name": "seg2d",
            "task": "segmentation",
            "data": {
                "path": str(path),
                "split": {"method": "random", "fractions": [0.6, 0.2, 0.2], "seed": 0},
                "options": {"patch_size": [16, 16], "samples_per_image": 4, **options},
                "augment": None,
            },
            "model": {"name": "unet", "params": MODELS.meta("unet")["tiny"]},
            "training": {
                "epochs": 8,
                "batch_size": 8,
                "lr": 0.01,
                "progress": False,
                "num_threads": 1,
            },
            "evaluation": {"bootstrap": 50},
        }
    )


def test_pipeline_2d_train_predict(tmp_path):
    from medlearn.pipeline import predict, train

    data = _squares(tmp_path / "data")
    res = train(_cfg(data, binary=True), out=tmp_path / "run", echo=lambda _l: None)
    doc = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert doc["task"] == "segmentation" and doc["n"] == {"train": 6, "val": 2, "test": 2}
    test = doc["metrics"]["test"]
    for name in ("dice", "iou", "hd95", "lesion_sensitivity", "lesion_fp_per_volume", "lesion_f1"):
        assert name in test and set(test[name]) == {"value", "ci95"}
    assert test["dice"]["value"] > 0.5  # bright squares are easy
    frame = pd.read_parquet(tmp_path / "run" / "predictions.parquet")
    assert set(frame["split"]) == {"val", "test"} and "dice_1" in frame
    html = res.report_path.read_text()
    for anchor in ("seg-metrics", "seg-cases", "seg-overlays", "seg-lesions"):
        assert f'id="{anchor}"' in html
    rows = list(
        predict(
            tmp_path / "run",
            [str(data / "images" / "s0.png"), str(tmp_path / "missing.png")],
            output_dir=tmp_path / "out",
        )
    )
    assert rows[0]["input"].endswith("missing.png") and "error" in rows[0]
    out = Path(rows[1]["output"])
    assert out.suffix == ".png" and out.is_file()
    from PIL import Image

    assert np.asarray(Image.open(out)).shape == (32, 32)


def test_unknown_option_is_a_config_error(tmp_path):
    from medlearn.pipeline import train

    data = _squares(tmp_path / "data", n=5)
    with pytest.raises(ConfigError, match="patchsize"):
        train(_cfg(data, patchsize=3), out=tmp_path / "run", echo=lambda _l: None)


def test_choose_min_lesion_voxels_on_val():
    from medlearn.data import make_record
    from medlearn.imaging.segmentation.task import choose_min_lesion_voxels

    gt = np.zeros((24, 24), np.int64)
    gt[2:8, 2:8] = 1  # 36 px lesion
    pred = gt.copy()
    pred[15:18, 15:18] = 1  # 9 px false positive
    pred[20, 20] = 1  # 1 px false positive
    rec = make_record("a", np.zeros((1, 24, 24), np.float32), gt, meta={"spacing": [1, 1]})
    size, scores = choose_min_lesion_voxels([rec], [pred], candidates=(0, 5, 10, 50))
    assert size == 10  # removes both FPs; 50 would remove the true lesion too
    assert scores["0"] == pytest.approx(0.5) and scores["10"] == 1.0 and scores["50"] == 0.0
    assert choose_min_lesion_voxels([], []) == (0, {})


def _two_class_squares(root: Path, n: int = 10, size: int = 32) -> Path:
    """A bright square (label 1) and a dark square (label 2) per image: a 3-class task."""
    from PIL import Image

    rng = np.random.default_rng(1)
    for d in ("images", "masks"):
        (root / d).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        img = rng.normal(100, 10, (size, size))
        mask = np.zeros((size, size), np.uint8)
        mask[2:10, 2:10] = 1
        mask[18:28, 16:26] = 2
        shift = rng.integers(0, 4, 2)
        mask = np.roll(mask, tuple(shift), axis=(0, 1))
        img[mask == 1] += 100
        img[mask == 2] -= 80
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(root / "images" / f"m{i}.png")
        Image.fromarray(mask).save(root / "masks" / f"m{i}.png")
    return root


def test_multiclass_training_reports_per_class_dice(tmp_path):
    from medlearn.pipeline import train

    data = _two_class_squares(tmp_path / "data")
    cfg = _cfg(data, classes=["background", "bright", "dark"])
    train(cfg, out=tmp_path / "run", echo=lambda _l: None)
    doc = json.loads((tmp_path / "run" / "metrics.json").read_text())
    frame = pd.read_parquet(tmp_path / "run" / "predictions.parquet")
    assert {"dice_1", "dice_2"} <= set(frame)  # one Dice per foreground class
    assert doc["metrics"]["test"]["dice"]["value"] > 0.5
    assert frame.loc[frame["split"] == "test", ["dice_1", "dice_2"]].to_numpy().min() > 0.3
