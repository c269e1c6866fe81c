"""Grad-CAM (MONAI) wrapper: known answers, no side effects on the model, overlays."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest
import torch
from torch import nn

import medlearn.explain as explain
from medlearn.errors import ConfigError, DataValidationError
from medlearn.explain import gradcam, overlay, save_overlay_png


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models are overhead-bound: one thread is faster than two and immune to
    oversubscription when other processes share the cores. The previous setting is restored."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class _MeanModel(nn.Module):
    """logit_k = w_k * mean(relu(x)): Grad-CAM of class 0 (w_0 > 0) is relu(x) itself."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            OrderedDict([("conv", nn.Conv2d(1, 1, 1, bias=False)), ("relu", nn.ReLU(True))])
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(1, 2)
        with torch.no_grad():
            self.features.conv.weight.fill_(1.0)
            self.head.weight.copy_(torch.tensor([[2.0], [-1.0]]))
            self.head.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.features(x)).flatten(1))


class _SmallCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            OrderedDict(
                [
                    ("conv1", nn.Conv2d(1, 8, 3, padding=1)),
                    ("relu1", nn.ReLU()),
                    ("conv2", nn.Conv2d(8, 8, 3, padding=1)),
                    ("bn", nn.BatchNorm2d(8)),
                    ("relu2", nn.ReLU(inplace=True)),
                ]
            )
        )
        self.head = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).amax((2, 3)))


def test_exports():
    assert explain.__all__ == sorted(explain.__all__)
    assert {"gradcam", "overlay", "save_overlay_png"} <= set(explain.__all__)


def test_known_answer_is_the_normalised_activation():
    x = torch.rand(3, 1, 12, 10, generator=torch.Generator().manual_seed(0)) - 0.3
    heat = gradcam(_MeanModel(), x, target_layer="features", class_index=0)
    expected = x.clamp_min(0)[:, 0]
    lo = expected.flatten(1).min(1).values[:, None, None]
    hi = expected.flatten(1).max(1).values[:, None, None]
    np.testing.assert_allclose(heat, ((expected - lo) / (hi - lo)).numpy(), atol=1e-5)


def test_negative_evidence_gives_an_empty_map():
    # class 1 has weight -1: every location lowers its score, so ReLU leaves nothing.
    heat = gradcam(_MeanModel(), torch.rand(2, 1, 8, 8), target_layer="features", class_index=1)
    assert heat.shape == (2, 8, 8) and np.all(heat == 0)


def _left_signal_data(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = 0.1 * torch.rand(n, 1, 16, 16, generator=g)
    y = torch.arange(n) % 2
    rows = torch.randint(1, 14, (n,), generator=g)
    cols = torch.randint(1, 6, (n,), generator=g)
    for i in range(n):
        if y[i] == 1:  # the class signal: a bright blob somewhere in the left half
            x[i, 0, rows[i] - 1 : rows[i] + 2, cols[i] - 1 : cols[i] + 2] += 1.0
        # a distractor in the right half for both classes
        r, c = int(rows[(i + 3) % n]), 8 + int(cols[(i + 5) % n])
        x[i, 0, r - 1 : r + 2, c - 1 : c + 2] += 0.5
    return x, y


def test_trained_model_looks_at_the_left_half():
    torch.manual_seed(0)
    model = _SmallCNN()
    x, y = _left_signal_data(64, seed=0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(60):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        assert (model(x).argmax(1) == y).float().mean() > 0.95
    xt, yt = _left_signal_data(16, seed=1)
    heat = gradcam(model, xt[yt == 1], target_layer="features", class_index=1)
    left, right = heat[..., :8].sum(), heat[..., 8:].sum()
    assert left > 2 * right


@pytest.mark.parametrize("class_index", [None, 1, [0, 1, 1, 0], torch.tensor([1, 0, 0, 1])])
def test_shape_and_range(class_index):
    torch.manual_seed(0)
    heat = gradcam(_SmallCNN(), torch.rand(4, 1, 16, 12), target_layer="features.relu2",
                   class_index=class_index)  # fmt: skip
    assert heat.shape == (4, 16, 12) and heat.dtype == np.float32
    assert heat.min() >= 0 and heat.max() <= 1


def test_per_image_classes_equal_separate_calls():
    torch.manual_seed(0)
    model = _SmallCNN()
    x = torch.rand(4, 1, 16, 16)
    together = gradcam(model, x, target_layer="features", class_index=[0, 1, 1, 0])
    for i, c in enumerate([0, 1, 1, 0]):
        alone = gradcam(model, x[i : i + 1], target_layer="features", class_index=c)
        np.testing.assert_allclose(together[i], alone[0], atol=1e-5)


def test_default_class_is_the_prediction():
    torch.manual_seed(0)
    model = _SmallCNN().eval()
    x = torch.rand(3, 1, 16, 16)
    with torch.no_grad():
        predicted = model(x).argmax(1).tolist()
    np.testing.assert_allclose(
        gradcam(model, x, target_layer="features"),
        gradcam(model, x, target_layer="features", class_index=predicted),
        atol=1e-6,
    )


def test_model_is_left_as_it_was():
    torch.manual_seed(0)
    model = _SmallCNN().train()
    model.features.bn.eval()  # a mixed-mode model (frozen batch norm)
    model.features.conv1.weight.requires_grad_(False)  # a frozen parameter
    model.head.weight.grad = torch.ones_like(model.head.weight)  # an existing gradient
    state = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.rand(2, 1, 16, 16)
    gradcam(model, x, target_layer="features.relu2")
    assert model.training and model.features.conv2.training and not model.features.bn.training
    assert not model.features.conv1.weight.requires_grad
    assert all(p.requires_grad for n, p in model.named_parameters() if n != "features.conv1.weight")
    assert torch.equal(model.head.weight.grad, torch.ones_like(model.head.weight))
    assert all(p.grad is None for n, p in model.named_parameters() if n != "head.weight")
    assert model.features.relu2.inplace  # MONAI switches it off; it is switched back on
    for module in model.modules():
        assert not module._forward_hooks and not module._backward_hooks
    for k, v in model.state_dict().items():  # eval mode: batch-norm statistics untouched
        assert torch.equal(v, state[k]), k
    assert x.grad is None and not x.requires_grad


def test_unknown_layer_suggests_names():
    with pytest.raises(ConfigError, match="features.relu2"):
        gradcam(_SmallCNN(), torch.rand(1, 1, 8, 8), target_layer="features.relu_2")


@pytest.mark.parametrize("class_index", [2, -1, [0]])
def test_bad_class_index(class_index):
    with pytest.raises(ConfigError, match="class_index"):
        gradcam(_SmallCNN(), torch.rand(2, 1, 8, 8), target_layer="features",
                class_index=class_index)  # fmt: skip


def test_bad_input():
    with pytest.raises(DataValidationError):
        gradcam(_SmallCNN(), torch.rand(1, 8, 8), target_layer="features")


# --- overlays --------------------------------------------------------------------------------


def test_overlay_gray_and_rgb():
    image = np.linspace(0, 1, 20 * 10).reshape(20, 10)
    heat = np.zeros((20, 10))
    heat[:, :5] = 1.0
    out = overlay(image, heat)
    assert out.shape == (20, 10, 3) and out.dtype == np.uint8
    assert not np.array_equal(out[:, :5], out[:, 5:])
    rgb = np.stack([image] * 3, axis=-1)
    np.testing.assert_array_equal(overlay(rgb, heat), out)
    plain = overlay(image, heat, alpha=0.0)
    np.testing.assert_array_equal(plain[..., 0], np.round(image * 255).astype(np.uint8))


@pytest.mark.parametrize(
    ("image", "heat", "kwargs", "error"),
    [
        (np.zeros((4, 4)), np.zeros((4, 5)), {}, DataValidationError),
        (np.zeros((4, 4, 2)), np.zeros((4, 4)), {}, DataValidationError),
        (np.full((4, 4), np.nan), np.zeros((4, 4)), {}, DataValidationError),
        (np.zeros((4, 4)), np.zeros((4, 4)), {"alpha": 1.5}, ConfigError),
        (np.zeros((4, 4)), np.zeros((4, 4)), {"cmap": "jett"}, ConfigError),
    ],
)
def test_overlay_refuses(image, heat, kwargs, error):
    with pytest.raises(error):
        overlay(image, heat, **kwargs)


def test_save_overlay_png_is_atomic_and_readable(tmp_path):
    from matplotlib import image as mpimg

    image = np.random.default_rng(0).random((16, 12))
    heat = np.random.default_rng(1).random((16, 12))
    path = save_overlay_png(tmp_path / "sub" / "cam.png", image, heat)
    assert path == tmp_path / "sub" / "cam.png"
    assert [p.name for p in path.parent.iterdir()] == ["cam.png"]  # no temporary file left
    back = mpimg.imread(path)
    assert back.shape[:2] == (16, 12)
    np.testing.assert_array_equal(
        np.round(back[..., :3] * 255).astype(np.uint8), overlay(image, heat)
    )
