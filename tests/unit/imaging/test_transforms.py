"""Augmentation presets, the batched MONAI transforms (checked against MONAI) and TTA."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from monai.transforms import AdjustContrast, Affine, Flip, RandRotate90
from torch import nn

import medlearn.imaging.transforms as T
from medlearn.errors import ConfigError, DataValidationError
from medlearn.registry import TRANSFORMS


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models are overhead-bound: one thread is faster than two and immune to
    oversubscription when other processes share the cores. The previous setting is restored."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


PRESETS = TRANSFORMS.list(domain="imaging")


def _batch(b: int = 16, c: int = 1, h: int = 28, w: int = 28) -> torch.Tensor:
    return torch.rand(b, c, h, w, generator=torch.Generator().manual_seed(0))


def test_presets_are_registered():
    assert {"default", "light", "none"} <= set(PRESETS)


@pytest.mark.parametrize("name", PRESETS)
@pytest.mark.parametrize("shape", [(16, 1, 28, 28), (4, 3, 64, 48)])
def test_preset_keeps_shape_dtype_and_finiteness(name, shape):
    augment = TRANSFORMS.get(name)()
    augment.set_random_state(0)
    x = torch.rand(*shape)
    y = augment(x)
    assert y.shape == x.shape and y.dtype == x.dtype
    assert type(y) is torch.Tensor
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("name", PRESETS)
def test_same_seed_same_output(name):
    augment = TRANSFORMS.get(name)()
    x = _batch()
    augment.set_random_state(7)
    first = [augment(x), augment(x)]  # the second call continues the random stream
    augment.set_random_state(7)
    second = [augment(x), augment(x)]
    for a, b in zip(first, second, strict=True):
        assert torch.equal(a, b)


def test_a_new_preset_instance_with_the_same_seed_agrees():
    x = _batch()
    a = TRANSFORMS.get("default")().set_random_state(3)(x)
    b = TRANSFORMS.get("default")().set_random_state(3)(x)
    assert torch.equal(a, b)


def test_default_changes_images_and_differs_per_image_and_per_seed():
    x = _batch(32)
    augment = TRANSFORMS.get("default")()
    y0 = augment.set_random_state(0)(x)
    y1 = augment.set_random_state(1)(x)
    assert not torch.equal(y0, x)
    assert not torch.equal(y0, y1)
    # identical inputs get different augmentations within a batch
    same = x[:1].repeat(8, 1, 1, 1)
    out = augment.set_random_state(0)(same)
    assert len({out[i].sum().item() for i in range(8)}) > 1


def test_thread_setting_is_restored_and_does_not_change_results():
    x = _batch()
    torch.set_num_threads(2)  # the autouse fixture restores its own setting afterwards
    one = T.ImageAugment(TRANSFORMS.get("default")().transforms, threads=1, seed=0)(x)
    assert torch.get_num_threads() == 2
    keep = T.ImageAugment(TRANSFORMS.get("default")().transforms, threads=None, seed=0)(x)
    torch.testing.assert_close(one, keep)
    with pytest.raises(ConfigError, match="threads"):
        T.ImageAugment([], threads=0)


def test_none_is_identity():
    x = _batch()
    assert torch.equal(TRANSFORMS.get("none")()(x), x)


def test_default_flip_can_be_disabled():
    names = [type(t).__name__ for t in TRANSFORMS.get("default")(flip=False).transforms]
    assert "BatchRandFlip" not in names
    names = [type(t).__name__ for t in TRANSFORMS.get("default")().transforms]
    assert names == [
        "BatchRandAffine",
        "BatchRandFlip",
        "BatchRandAdjustContrast",
        "BatchRandGaussianNoise",
    ]


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("default", {"rotate_degrees": -1}),
        ("default", {"translate": 2.0}),
        ("default", {"flip": "yes"}),
        ("default", {"noise_std": -0.1}),
        ("light", {"scale": 1.5}),
    ],
)
def test_invalid_preset_params(name, params):
    with pytest.raises(ConfigError, match=next(iter(params))):
        TRANSFORMS.get(name)(**params)


@pytest.mark.parametrize("bad", [torch.rand(28, 28), torch.zeros(2, 1, 8, 8, dtype=torch.uint8)])
def test_bad_input_is_refused(bad):
    with pytest.raises(DataValidationError, match="shape"):
        TRANSFORMS.get("default")()(bad)


# --- batched transforms against MONAI's per-image transforms ---------------------------------


def test_batch_affine_matches_monai_affine_per_image():
    x = torch.rand(6, 2, 28, 20, generator=torch.Generator().manual_seed(1))
    t = T.BatchRandAffine(0.7, rotate_range=0.4, translate_fraction=0.15, scale_range=0.2)
    t.set_random_state(5)
    y = t(x)
    assert t.selected.any() and not t.selected.all()
    for i in range(len(x)):
        if not t.selected[i]:
            assert torch.equal(y[i], x[i])
            continue
        reference = Affine(
            rotate_params=float(t.angles[i]),
            translate_params=[float(v) for v in t.shifts[i]],
            scale_params=[float(v) for v in t.scales[i]],
            padding_mode="border",
            image_only=True,
        )(x[i])
        torch.testing.assert_close(y[i], torch.as_tensor(reference), atol=1e-5, rtol=0)


def test_batch_affine_pure_rotation_by_90_degrees():
    x = torch.arange(16.0).view(1, 1, 4, 4)
    t = T.BatchRandAffine(1.0, rotate_range=math.pi / 2)
    t.randomize(x)
    t.angles[:] = math.pi / 2
    y = t(x, randomize=False)
    ref = torch.as_tensor(Affine(rotate_params=math.pi / 2, image_only=True)(x[0]))
    torch.testing.assert_close(y[0], ref, atol=1e-4, rtol=0)
    assert torch.allclose(y[0, 0], torch.rot90(x[0, 0], 1), atol=1e-4) or torch.allclose(
        y[0, 0], torch.rot90(x[0, 0], -1), atol=1e-4
    )


def test_batch_flip_matches_monai_flip():
    x = _batch(12)
    t = T.BatchRandFlip(0.5, spatial_axis=1)
    t.set_random_state(0)
    y = t(x)
    assert t.selected.any() and not t.selected.all()
    for i in range(len(x)):
        expected = torch.as_tensor(Flip(spatial_axis=1)(x[i])) if t.selected[i] else x[i]
        assert torch.equal(y[i], expected)


def test_batch_contrast_matches_monai_adjust_contrast():
    x = _batch(10) * 3 - 1
    t = T.BatchRandAdjustContrast(0.6, gamma=(0.5, 2.0))
    t.set_random_state(0)
    y = t(x)
    assert t.selected.any()
    for i in range(len(x)):
        if t.selected[i]:
            ref = torch.as_tensor(AdjustContrast(gamma=float(t.gammas[i]))(x[i]))
            torch.testing.assert_close(y[i], ref, atol=1e-5, rtol=1e-5)
        else:
            assert torch.equal(y[i], x[i])


def test_batch_noise_scale_and_selection():
    x = torch.zeros(200, 1, 16, 16)
    t = T.BatchRandGaussianNoise(0.5, std=0.1, sample_std=False)
    t.set_random_state(0)
    y = t(x)
    sd = y.flatten(1).std(1).numpy()
    assert np.all(sd[~t.selected] == 0)
    assert np.allclose(sd[t.selected], 0.1, rtol=0.2)
    assert 0.35 < t.selected.mean() < 0.65


def test_per_image_monai_compose_path():
    augment = T.ImageAugment([RandRotate90(prob=1.0, max_k=1)], batched=False, seed=0)
    x = torch.rand(3, 1, 8, 8)
    y = augment(x)
    assert type(y) is torch.Tensor
    for i in range(3):
        assert torch.equal(y[i, 0], torch.rot90(x[i, 0], 1, (0, 1)))


def test_per_image_transform_is_refused_in_batched_mode():
    with pytest.raises(ConfigError, match="RandRotate90.*per-image"):
        T.ImageAugment([RandRotate90(prob=1.0)])


def test_failures_name_the_transform_and_shape():
    def broken(_x):
        raise RuntimeError("boom")

    augment = T.ImageAugment([broken])
    with pytest.raises(DataValidationError, match=r"broken.*\(2, 1, 8, 8\)"):
        augment(torch.rand(2, 1, 8, 8))


# --- test-time augmentation --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flips", "shifts", "count"), [(False, 0, 1), (True, 0, 2), (False, 2, 5), (True, 1, 6)]
)
def test_tta_view_count_and_shape(flips, shifts, count):
    x = _batch(4)
    views = T.tta_views(x, flips=flips, shifts=shifts)
    assert len(views) == count
    assert torch.equal(views[0], x)
    assert all(v.shape == x.shape for v in views)


def test_tta_views_are_flip_and_shift():
    x = torch.arange(25.0).view(1, 1, 5, 5)
    identity, flipped, right, left, down, up = T.tta_views(x, flips=True, shifts=1)
    assert torch.equal(flipped, x.flip(3))
    assert torch.equal(right[..., 1:], x[..., :-1]) and torch.equal(right[..., 0], x[..., 0])
    assert torch.equal(left[..., :-1], x[..., 1:]) and torch.equal(left[..., -1], x[..., -1])
    assert torch.equal(down[..., 1:, :], x[..., :-1, :])
    assert torch.equal(up[..., :-1, :], x[..., 1:, :])


class _Linear(nn.Module):
    def __init__(self, k: int = 3) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(28 * 28, k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.flatten(1))


def test_tta_average_shape_and_probabilities():
    model = _Linear().train()
    x = _batch(4)
    out = T.tta_average(model, x, T.tta_views(x, shifts=1))
    assert out.shape == (4, 3)
    assert torch.allclose(out.exp().sum(1), torch.ones(4), atol=1e-5)
    assert model.training  # mode restored


def test_tta_average_of_flip_invariant_input_equals_plain_prediction():
    x = _batch(4)
    x = (x + x.flip(3)) / 2  # mirror-symmetric images
    model = _Linear().eval()
    out = T.tta_average(model, x, T.tta_views(x, flips=True))
    with torch.no_grad():
        plain = torch.log_softmax(model(x), dim=1)
    torch.testing.assert_close(out, plain, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(T.tta_average(model, x), plain, atol=1e-5, rtol=1e-5)


def test_tta_average_single_logit_uses_sigmoid():
    model = _Linear(1).eval()
    x = _batch(2)
    out = T.tta_average(model, x, [x])
    with torch.no_grad():
        assert torch.allclose(out, torch.sigmoid(model(x)).log(), atol=1e-6)


def test_tta_average_refuses_mismatched_views():
    x = _batch(2)
    with pytest.raises(DataValidationError):
        T.tta_average(_Linear(), x, [x, x[:1]])
