"""The segmentation learner and task through the pipeline on tiny seeded data."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

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


# --- options: lr_schedule/warmup, intensity_jitter, tta modes, threshold -----------------------


def _tiny_net(dims: int = 2) -> torch.nn.Module:
    torch.manual_seed(0)
    return MODELS.get("unet")(
        spatial_dims=dims, in_channels=1, out_channels=2, **MODELS.meta("unet")["tiny"]
    ).eval()


def _learner(**options):
    from medlearn.imaging.segmentation.learner import SegmentationLearner

    return SegmentationLearner(
        model="unet",
        classes=options.pop("classes", ["background", "fg"]),
        spatial_dims=options.pop("spatial_dims", 2),
        in_channels=1,
        model_params=MODELS.meta("unet")["tiny"],
        options=options,
    )


# --- lr_schedule: budget ---------------------------------------------------------------------


def test_budget_lr_factor_warms_up_then_decays_to_zero():
    from medlearn.imaging.segmentation.learner import budget_lr_factor

    assert budget_lr_factor(0.0, 0.1) == pytest.approx(0.1)
    assert budget_lr_factor(0.05, 0.1) == pytest.approx(0.55)
    assert budget_lr_factor(0.1, 0.1) == pytest.approx(1.0)
    assert budget_lr_factor(0.55, 0.1) == pytest.approx(0.5)
    assert budget_lr_factor(1.0, 0.1) == pytest.approx(0.0, abs=1e-12)
    assert budget_lr_factor(1.7, 0.1) == pytest.approx(0.0, abs=1e-12)  # clipped
    assert budget_lr_factor(0.0, 0.0) == pytest.approx(1.0)
    after = [budget_lr_factor(p, 0.1) for p in np.linspace(0.1, 1.0, 20)]
    assert all(a > b for a, b in zip(after, after[1:], strict=False))


def test_budget_progress_uses_steps_or_time_whichever_is_further():
    from lightning.pytorch.callbacks import Timer

    from medlearn.imaging.segmentation.learner import SegmentationModule

    module = SegmentationModule(
        _tiny_net(), torch.nn.MSELoss(), num_classes=2, lr=1e-3, max_epochs=10
    )
    assert module.budget_progress() == 0.0  # no trainer
    timer = Timer(duration=timedelta(seconds=100))
    timer.time_elapsed = lambda stage="train": 60.0  # type: ignore[method-assign]
    module._trainer = SimpleNamespace(num_training_batches=4, global_step=8, callbacks=[])
    assert module.budget_progress() == pytest.approx(0.2)  # 8 of 40 steps
    module._trainer.callbacks = [timer]
    assert module.budget_progress() == pytest.approx(0.6)  # 60 s of 100 s
    module._trainer.global_step = 36
    assert module.budget_progress() == pytest.approx(0.9)


def test_budget_schedule_through_the_trainer(tmp_path):
    from lightning.pytorch.callbacks import Callback

    from medlearn.imaging.segmentation.learner import SegmentationModule
    from medlearn.imaging.segmentation.models import make_loss
    from medlearn.training import fit_module

    lrs: list[float] = []

    class Record(Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            lrs.append(trainer.optimizers[0].param_groups[0]["lr"])

    g = torch.Generator().manual_seed(0)
    x = torch.randn(16, 1, 16, 16, generator=g)
    ds = torch.utils.data.TensorDataset(x, (x > 0).long())
    module = SegmentationModule(
        _tiny_net(),
        make_loss("dice_ce"),
        num_classes=2,
        lr=0.01,
        max_epochs=5,
        lr_schedule="budget",
        warmup=0.2,
    )
    fit_module(
        module,
        ds,
        None,
        batch_size=4,
        max_epochs=5,
        ckpt_dir=tmp_path,
        progress=False,
        num_threads=1,
        callbacks=[Record()],
    )
    assert len(lrs) == 20
    assert lrs[0] == pytest.approx(0.001)  # warm-up starts at 0.1x
    peak = int(np.argmax(lrs))
    assert lrs[peak] == pytest.approx(0.01, rel=0.05) and 2 <= peak <= 5
    assert all(a >= b for a, b in zip(lrs[peak:], lrs[peak + 1 :], strict=False))
    assert lrs[-1] < 0.001  # annealed to ~0 by the end of the budget


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"lr_schedule": "onecycle"}, "lr_schedule"),
        ({"warmup": 0.9}, "warmup"),
        ({"intensity_jitter": -0.1}, "intensity_jitter"),
        ({"intensity_jitter": "big"}, "intensity_jitter"),
        ({"tta": "rotate"}, "tta"),
        ({"tta": "dihedral", "spatial_dims": 3}, "dihedral"),
        ({"threshold": 1.5}, "threshold"),
        ({"threshold": True}, "threshold"),
        ({"threshold": 0.4, "classes": ["bg", "a", "b"]}, "binary"),
    ],
)
def test_bad_option_values_are_config_errors(options, match):
    with pytest.raises(ConfigError, match=match):
        _learner(**options)


def test_valid_option_values_are_normalised():
    ln = _learner(tta=True, threshold="auto", lr_schedule="budget", warmup=0, intensity_jitter=0.1)
    assert (ln.tta, ln.threshold, ln.lr_schedule, ln.warmup) == ("flip", "auto", "budget", 0.0)
    assert _learner(tta=False).tta == "none" and _learner().threshold is None
    assert _learner(threshold=0.3).threshold == pytest.approx(0.3)


# --- intensity_jitter ------------------------------------------------------------------------


def test_intensity_jitter_is_an_affine_change_of_the_patch_only():
    from medlearn.imaging.segmentation.learner import _PatchDataset

    rng = np.random.default_rng(0)
    cases = [{"image": rng.normal(size=(1, 16, 16)).astype(np.float32), "label": np.eye(16)}]

    def patch(jitter: float):
        ds = _PatchDataset(
            cases, [16, 16], per_image=1, fg_fraction=0.0, augment=True, intensity_jitter=jitter
        )
        torch.manual_seed(3)
        return ds[0]

    (x0, y0), (x1, y1) = patch(0.0), patch(0.2)
    assert torch.equal(y0, y1)  # same crop and flips, labels untouched
    a, b = np.polyfit(x0.flatten().numpy(), x1.flatten().numpy(), 1)
    assert not np.isclose(a, 1.0) or not np.isclose(b, 0.0)
    assert 0.8 <= a <= 1.2 and -0.2 <= b <= 0.2
    assert np.allclose(x1.numpy(), a * x0.numpy() + b, atol=1e-5)


# --- tta: dihedral ----------------------------------------------------------------------------


def test_dihedral_tta_is_rotation_and_reflection_equivariant():
    from medlearn.imaging.segmentation.inference import dihedral_transforms, predict_volume

    assert len(set(dihedral_transforms())) == 8
    net = _tiny_net()
    x = torch.randn(1, 32, 32)
    kw = {"roi_size": (16, 16), "overlap": 0.0, "mode": "constant"}
    p = predict_volume(net, x, tta="dihedral", **kw)
    assert p.shape == (2, 32, 32)
    assert torch.allclose(p.sum(0), torch.ones(32, 32), atol=1e-5)
    rotated = predict_volume(net, torch.rot90(x, 1, (1, 2)), tta="dihedral", **kw)
    assert torch.allclose(rotated, torch.rot90(p, 1, (1, 2)), atol=1e-5)
    flipped = predict_volume(net, x.flip(1), tta="dihedral", **kw)
    assert torch.allclose(flipped, p.flip(1), atol=1e-5)
    plain = predict_volume(net, torch.rot90(x, 1, (1, 2)), **kw)
    assert not torch.allclose(plain, torch.rot90(predict_volume(net, x, **kw), 1, (1, 2)))
    with pytest.raises(ValueError, match="2-D"):
        predict_volume(_tiny_net(3), torch.randn(1, 16, 16, 16), roi_size=(16,) * 3, tta="dihedral")


# --- threshold --------------------------------------------------------------------------------


def test_labels_from_proba_threshold_or_argmax():
    ln = _learner(threshold=0.3)
    prob = np.stack([np.array([[0.8, 0.6], [0.4, 0.1]])])
    prob = np.concatenate([prob, 1 - prob])  # foreground 0.2, 0.4, 0.6, 0.9
    assert ln.labels_from_proba(prob).tolist() == [[0, 1], [1, 1]]
    assert ln.labels_from_proba(prob, threshold=0.5).tolist() == [[0, 0], [1, 1]]
    assert _learner().labels_from_proba(prob).tolist() == [[0, 0], [1, 1]]


def test_choose_threshold_on_validation_probabilities():
    from medlearn.data import make_record
    from medlearn.imaging.segmentation.task import choose_threshold

    gt = np.zeros((8, 8), np.int64)
    gt[2:5, 2:5] = 1
    fg = np.where(gt > 0, 0.42, 0.1)  # under-confident model: 0.5 misses every pixel
    prob = np.stack([1 - fg, fg])
    rec = make_record("a", np.zeros((1, 8, 8), np.float32), gt)
    thr, scores = choose_threshold([rec], [prob], candidates=(0.05, 0.3, 0.4, 0.5))
    assert thr == 0.4  # 0.3 and 0.4 tie at Dice 1; the one closer to 0.5 wins
    assert scores == {"0.05": pytest.approx(18 / 73, abs=1e-4), "0.3": 1.0, "0.4": 1.0, "0.5": 0.0}
    assert choose_threshold([], []) == (0.5, {})


def test_pipeline_with_new_options_chooses_and_saves_the_threshold(tmp_path):
    from medlearn.pipeline import load_learner, predict, train

    data = _squares(tmp_path / "data")
    cfg = _cfg(
        data,
        binary=True,
        lr_schedule="budget",
        warmup=0.1,
        intensity_jitter=0.1,
        tta="dihedral",
        threshold="auto",
    )
    train(cfg, out=tmp_path / "run", echo=lambda _l: None)
    doc = json.loads((tmp_path / "run" / "metrics.json").read_text())
    post = doc["postprocessing"]["threshold"]
    assert post["chosen_on"] == "val" and post["value"] in [float(k) for k in post["val_dice"]]
    assert doc["training"]["lr_schedule"] == "budget"
    assert doc["metrics"]["test"]["dice"]["value"] > 0.5
    learner, _ = load_learner(tmp_path / "run")
    assert learner.threshold == post["value"] and learner.tta == "dihedral"
    rows = list(
        predict(tmp_path / "run", [str(data / "images" / "s0.png")], output_dir=tmp_path / "out")
    )
    assert Path(rows[0]["output"]).is_file()
