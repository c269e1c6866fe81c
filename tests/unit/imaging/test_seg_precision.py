"""Segmentation ``precision`` option: bfloat16 mixed-precision training with float32 weights,
loss and inference."""

from __future__ import annotations

import pytest
import torch

from medlearn.errors import ConfigError
from medlearn.imaging.segmentation.learner import SegmentationLearner, SegmentationModule
from medlearn.imaging.segmentation.models import make_loss
from medlearn.registry import MODELS


def _learner(**options) -> SegmentationLearner:
    return SegmentationLearner(
        model="unet",
        classes=["background", "fg"],
        spatial_dims=2,
        in_channels=1,
        model_params=MODELS.meta("unet")["tiny"],
        options={"samples_per_image": 2, **options},
        epochs=2,
        batch_size=2,
        progress=False,
        num_threads=1,
    )


def _module(precision: str) -> SegmentationModule:
    torch.manual_seed(0)
    net = MODELS.get("unet")(
        spatial_dims=2, in_channels=1, out_channels=2, **MODELS.meta("unet")["tiny"]
    )
    return SegmentationModule(
        net, make_loss("dice_ce"), num_classes=2, lr=1e-3, precision=precision
    )


@pytest.mark.parametrize("value", ["fp16", 16, "half"])
def test_unknown_precision_is_refused_when_the_learner_is_built(value):
    with pytest.raises(ConfigError, match="data.options.precision"):
        _learner(precision=value)


def test_bf16_forward_returns_float32_logits_close_to_float32():
    x = torch.randn(2, 1, 32, 32, generator=torch.Generator().manual_seed(1))
    m32, m16 = _module("32"), _module("bf16")
    out32, out16 = m32(x), m16(x)
    assert out16.dtype == torch.float32
    assert not torch.equal(out32, out16)  # computed in bfloat16 ...
    assert torch.allclose(out32, out16, atol=0.1, rtol=0.05)  # ... to bfloat16's precision
    # the loss and the gradients stay float32, like the weights
    loss = m16.loss_fn(out16, (x > 0).long())
    loss.backward()
    assert all(p.grad.dtype == torch.float32 for p in m16.net.parameters())


def test_bf16_fit_is_reported_and_hands_on_float32_weights(seg_cases, tmp_path):
    records = seg_cases(4)

    def fit(name: str, **options):
        ln = _learner(**options)
        rep = ln.fit(records[:3], records[3:], work_dir=tmp_path / name, resume=False)
        return ln, rep

    ln16, rep16 = fit("bf16", precision="bf16")
    ln16b, _ = fit("bf16b", precision="bf16")
    ln32, rep32 = fit("f32")
    assert rep16.extra["precision"] == "bf16" and rep32.extra["precision"] == "32"
    w16, w16b, w32 = (ln.net_.state_dict() for ln in (ln16, ln16b, ln32))
    assert all(v.dtype == w32[k].dtype for k, v in w16.items())
    assert all(torch.equal(v, w16b[k]) for k, v in w16.items())  # seeded
    assert not all(torch.equal(v, w32[k]) for k, v in w16.items())  # a different computation
    prob = ln16.predict_proba(records[3])
    assert prob.dtype == "float32" and abs(float(prob.sum(0).mean()) - 1.0) < 1e-5
