"""Image classification ``data.options.precision``: bfloat16 mixed-precision training with
float32 weights, loss and prediction."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medlearn.data import make_record
from medlearn.errors import ConfigError
from medlearn.imaging.tasks import ClassificationModule, ImageClassifier
from medlearn.registry import MODELS

pytest.importorskip("monai")


def _records(n: int, seed: int) -> list:
    """Bright-centre (class 1) or dark-centre (class 0) 16-px images."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        y = i % 2
        img = rng.random((16, 16)).astype(np.float32) * 0.3
        img[5:11, 5:11] += 0.6 * y
        out.append(make_record(f"r{seed}_{i}", img[None], y))
    return out


def _classifier(**kw) -> ImageClassifier:
    return ImageClassifier(
        model="simple_cnn",
        model_params=MODELS.meta("simple_cnn")["tiny"],
        classes=["a", "b"],
        augment=None,
        epochs=2,
        batch_size=8,
        progress=False,
        num_threads=1,
        **kw,
    )


@pytest.mark.parametrize("value", ["fp16", 16, "half"])
def test_unknown_precision_is_refused_when_the_classifier_is_built(value):
    with pytest.raises(ConfigError, match="data.options.precision"):
        _classifier(precision=value)


def test_bf16_module_returns_float32_logits_close_to_float32():
    torch.manual_seed(0)
    net = MODELS.get("simple_cnn")(in_channels=1, num_classes=2, image_size=16, width=4, depth=2)
    net.eval()  # no dropout: the two passes must see the same network
    x = torch.rand(8, 1, 16, 16, generator=torch.Generator().manual_seed(1))
    m32 = ClassificationModule(net, num_classes=2, lr=1e-3)
    m16 = ClassificationModule(net, num_classes=2, lr=1e-3, precision="bf16")
    out32, out16 = m32(x), m16(x)
    assert out16.dtype == torch.float32
    assert not torch.equal(out32, out16)
    assert torch.allclose(out32, out16, atol=0.1, rtol=0.05)


def test_bf16_fit_is_seeded_reported_and_hands_on_float32_weights(tmp_path):
    train, val = _records(32, 0), _records(16, 1)

    def fit(name: str, precision: str):
        clf = _classifier(precision=precision)
        rep = clf.fit(train, val, work_dir=tmp_path / name, resume=False)
        return clf, rep

    a, rep_a = fit("a", "bf16")
    b, _ = fit("b", "bf16")
    c, rep_c = fit("c", "32")
    assert rep_a.extra["precision"] == "bf16" and rep_c.extra["precision"] == "32"
    wa, wb, wc = (x.nets_[0].state_dict() for x in (a, b, c))
    assert all(v.dtype == wc[k].dtype for k, v in wa.items())
    assert all(torch.equal(v, wb[k]) for k, v in wa.items())
    assert not all(torch.equal(v, wc[k]) for k, v in wa.items() if v.is_floating_point())
    logits = a.predict_logits(val)
    assert logits.dtype == np.float32 or logits.dtype == np.float64
    assert np.isfinite(logits).all() and logits.shape == (16, 2)
