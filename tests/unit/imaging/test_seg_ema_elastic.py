"""Segmentation training options ``ema`` (weight averaging) and ``elastic`` (elastic
deformation of training patches): validation tables, closed-form checks, determinism."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from medlearn.errors import ConfigError
from medlearn.imaging.segmentation._augment import (
    ElasticSettings,
    _FixedPatches,
    _PatchDataset,
    elastic_deform,
    elastic_settings,
)
from medlearn.registry import MODELS


def _tiny_net(dims: int = 2) -> nn.Module:
    torch.manual_seed(0)
    return MODELS.get("unet")(
        spatial_dims=dims, in_channels=1, out_channels=2, **MODELS.meta("unet")["tiny"]
    )


def _learner(**options):
    from medlearn.imaging.segmentation.learner import SegmentationLearner

    fit = {k: options.pop(k) for k in ("epochs", "batch_size") if k in options}
    return SegmentationLearner(
        model="unet",
        classes=["background", "fg"],
        spatial_dims=options.pop("spatial_dims", 2),
        in_channels=1,
        model_params=MODELS.meta("unet")["tiny"],
        options=options,
        progress=False,
        num_threads=1,
        **fit,
    )


def _blob(size: int = 32, dims: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """A label map with one ball and an image equal to it (so both must move together)."""
    grid = torch.stack(torch.meshgrid(*[torch.arange(size)] * dims, indexing="ij"))
    label = ((grid - size / 2).float().pow(2).sum(0) < (size / 4) ** 2).long()[None]
    return label.float(), label


# --- option parsing --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        (False, None),
        (0, None),
        ({"magnitude": 0}, None),
        (10, ElasticSettings(magnitude=10.0, grid=3, prob=0.5)),
        (2.5, ElasticSettings(magnitude=2.5)),
        ({"magnitude": 6, "grid": 5, "prob": 1}, ElasticSettings(6.0, 5, 1.0)),
        ({"prob": 0.25}, ElasticSettings(prob=0.25)),
    ],
)
def test_elastic_settings_valid(value, expected):
    assert elastic_settings(value) == expected


@pytest.mark.parametrize(
    ("value", "match"),
    [
        (-1, "magnitude"),
        (100, "magnitude"),
        ("big", "magnitude"),
        (True, "magnitude"),
        (float("nan"), "magnitude"),
        ({"grid": 1}, "grid"),
        ({"grid": 2.5}, "grid"),
        ({"prob": 0}, "prob"),
        ({"prob": 1.5}, "prob"),
        ({"sigma": 3}, "unknown key"),
    ],
)
def test_elastic_settings_invalid(value, match):
    with pytest.raises(ConfigError, match=match) as info:
        elastic_settings(value)
    assert "data.options.elastic" in info.value.message
    assert "elastic: 10" in (info.value.hint or "")


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"ema": 1.0}, "ema"),
        ({"ema": 0.3}, "ema"),
        ({"ema": -0.5}, "ema"),
        ({"ema": "slow"}, "ema"),
        ({"ema": True}, "ema"),
        ({"elastic": {"grid": 40}}, "elastic"),
        ({"elastic": "yes"}, "elastic"),
    ],
)
def test_bad_learner_options_are_config_errors(options, match):
    with pytest.raises(ConfigError, match=match):
        _learner(**options)


def test_learner_options_are_normalised_and_off_by_default():
    ln = _learner()
    assert (ln.ema, ln.elastic) == (0.0, None)
    ln = _learner(ema=0.99, elastic={"magnitude": 8, "prob": 0.3})
    assert ln.ema == pytest.approx(0.99)
    assert ln.elastic == ElasticSettings(magnitude=8.0, grid=3, prob=0.3)
    assert _learner(spatial_dims=3, elastic=4).elastic == ElasticSettings(magnitude=4.0)


# --- elastic deformation ---------------------------------------------------------------------


@pytest.mark.parametrize("dims", [2, 3])
def test_elastic_deform_moves_image_and_labels_together(dims):
    image, label = _blob(24 if dims == 3 else 48, dims)
    torch.manual_seed(1)
    x, y = elastic_deform(image, label, magnitude=4.0, grid=3)
    assert x.shape == image.shape and y.shape == label.shape
    assert x.dtype == image.dtype and y.dtype == label.dtype
    assert set(y.unique().tolist()) <= {0, 1}
    assert not torch.equal(y, label)  # it did deform
    # the image was the label: after the same warp, its rounding must match the labels
    agree = ((x > 0.5).long() == y).float().mean().item()
    assert agree > 0.97
    changed = (y != label).float().mean().item()
    assert 0.005 < changed < 0.5


def test_elastic_deform_is_seeded_by_torch_and_zero_is_identity():
    image = torch.randn(2, 32, 32)
    _, label = _blob(32)

    def run(seed: int):
        torch.manual_seed(seed)
        return elastic_deform(image, label, magnitude=5.0)

    (a, la), (b, lb), (c, _) = run(0), run(0), run(1)
    assert torch.equal(a, b) and torch.equal(la, lb)
    assert not torch.allclose(a, c)
    x, y = elastic_deform(image, label, magnitude=0.0)
    assert torch.allclose(x, image, atol=1e-3) and torch.equal(y, label)


def test_elastic_deform_rejects_1d_images():
    with pytest.raises(ValueError, match="2-D or 3-D"):
        elastic_deform(torch.zeros(1, 16), torch.zeros(1, 16, dtype=torch.long), magnitude=1.0)


def _patches(elastic: ElasticSettings | None, seed: int = 3):
    image, label = _blob(32)
    cases = [{"image": image.numpy(), "label": label[0].numpy().astype(np.int16)}]
    ds = _PatchDataset(cases, [32, 32], per_image=1, fg_fraction=0.0, augment=True, elastic=elastic)
    torch.manual_seed(seed)
    return ds, ds[0]


def test_patch_dataset_applies_elastic_with_its_probability_and_seed():
    _, (x0, y0) = _patches(None)
    always = ElasticSettings(magnitude=4.0, prob=1.0)
    _, (x1, y1) = _patches(always)
    _, (x2, y2) = _patches(always)
    assert torch.equal(x1, x2) and torch.equal(y1, y2)  # same seed, same patch
    assert not torch.equal(y0, y1)  # deformed after the same crop, flips and rotation
    assert ((x1 > 0.5).long() == y1).float().mean().item() > 0.97
    # prob 0.5: over several seeds some patches are deformed and some are not
    deformed = []
    for seed in range(12):
        _, (xa, _) = _patches(None, seed)
        _, (xb, _) = _patches(ElasticSettings(magnitude=4.0, prob=0.5), seed)
        deformed.append(not torch.equal(xa, xb))
    assert 0 < sum(deformed) < len(deformed)


def test_validation_patches_are_never_deformed():
    ds, _ = _patches(ElasticSettings(magnitude=8.0, prob=1.0))
    fixed = _FixedPatches(ds, seed=5)
    plain, _ = _patches(None)
    reference = _FixedPatches(plain, seed=5)
    assert torch.equal(fixed[0][0], reference[0][0]) and torch.equal(fixed[0][1], reference[0][1])
    assert ds.augment  # restored


# --- ema --------------------------------------------------------------------------------------


def _module(ema: float, net: nn.Module | None = None):
    from monai.losses import DiceCELoss

    from medlearn.imaging.segmentation.learner import SegmentationModule

    net = net if net is not None else _tiny_net()
    return SegmentationModule(
        net, DiceCELoss(to_onehot_y=True, softmax=True), num_classes=2, lr=1e-3, ema=ema
    )


def test_ema_update_follows_the_warmed_up_decay():
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))
    module = _module(0.9, net)
    assert module.ema_net is not None
    start = [p.detach().clone() for p in module.ema_net.parameters()]
    expected = start
    for n in range(30):
        with torch.no_grad():
            for p in module.net.parameters():
                p.add_(0.1)
            module.net[1].running_mean.add_(1.0)
        module.update_ema()
        decay = min(0.9, (1 + n) / (10 + n))
        current = [p.detach() for p in module.net.parameters()]
        expected = [decay * e + (1 - decay) * c for e, c in zip(expected, current, strict=True)]
    for avg, want in zip(module.ema_net.parameters(), expected, strict=True):
        assert torch.allclose(avg, want, atol=1e-5)
    assert not torch.allclose(module.ema_net[0].weight, module.net[0].weight)
    # buffers (norm statistics) are copied, not averaged
    assert torch.equal(module.ema_net[1].running_mean, module.net[1].running_mean)
    assert int(module.ema_updates) == 30
    assert all(not p.requires_grad for p in module.ema_net.parameters())


def test_ema_off_changes_nothing():
    module = _module(0.0)
    assert module.ema_net is None
    assert all(k.startswith("net.") for k in module.state_dict())
    before = [p.detach().clone() for p in module.net.parameters()]
    module.update_ema()
    assert all(torch.equal(a, b) for a, b in zip(before, module.net.parameters(), strict=True))
    x = torch.randn(2, 1, 16, 16)
    assert torch.equal(module._evaluate(x), module(x))


def test_ema_weights_are_validated_and_checkpointed():
    module = _module(0.99)
    assert any(k.startswith("ema_net.") for k in module.state_dict())
    with torch.no_grad():
        for p in module.ema_net.parameters():
            p.zero_()
    module.eval()
    x = torch.randn(2, 1, 16, 16)
    assert not torch.allclose(module._evaluate(x), module(x))
    assert all(
        torch.equal(v, module.ema_net.state_dict()[k]) for k, v in module.final_state().items()
    )


def test_fit_with_ema_and_elastic_is_seeded_and_hands_on_the_averaged_weights(seg_cases, tmp_path):
    records = seg_cases(4)

    def fit(name: str, **options):
        ln = _learner(epochs=3, batch_size=2, samples_per_image=2, **options)
        report = ln.fit(records[:3], records[3:], work_dir=tmp_path / name, resume=False)
        return ln, report

    ln_a, rep = fit("a", ema=0.9, elastic={"magnitude": 2, "prob": 1.0})
    ln_b, _ = fit("b", ema=0.9, elastic={"magnitude": 2, "prob": 1.0})
    for (k, v), w in zip(
        ln_a.net_.state_dict().items(), ln_b.net_.state_dict().values(), strict=True
    ):
        assert torch.equal(v, w), k
    assert rep.extra["ema"] == pytest.approx(0.9)
    assert rep.extra["elastic"] == {"magnitude": 2.0, "grid": 3, "prob": 1.0}
    best = torch.load(tmp_path / "a" / "checkpoints" / "best.ckpt", weights_only=True)
    state = best["state_dict"]
    final = ln_a.net_.state_dict()
    assert all(torch.equal(final[k], state[f"ema_net.{k}"]) for k in final)
    assert not all(torch.equal(final[k], state[f"net.{k}"]) for k in final)
    ln_c, _ = fit("c", elastic={"magnitude": 2, "prob": 1.0})
    assert not all(
        torch.equal(v, w)
        for v, w in zip(
            ln_a.net_.state_dict().values(), ln_c.net_.state_dict().values(), strict=True
        )
    )
