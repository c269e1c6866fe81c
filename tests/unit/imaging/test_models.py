"""Conformance tests for every registered imaging model, plus the model helpers."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import medlearn.imaging.models as models
from medlearn.config import check_params
from medlearn.errors import ConfigError, UnknownComponentError
from medlearn.registry import MODELS


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models are overhead-bound: one thread is faster than two and immune to
    oversubscription when other processes share the cores. The previous setting is restored."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


IMAGING_MODELS = [  # classification models (segmentation networks have their own learner)
    n
    for n in MODELS.list(domain="imaging")
    if MODELS.meta(n).get("learner", "imaging") == "imaging"
]
DATA_ARGS = ("in_channels", "num_classes", "image_size")


def _tiny(name: str, *, in_channels: int = 1, num_classes: int = 3, image_size: int = 28):
    torch.manual_seed(0)
    return models.create_model(
        name,
        in_channels=in_channels,
        num_classes=num_classes,
        image_size=image_size,
        **MODELS.meta(name)["tiny"],
    )


def test_expected_models_are_registered():
    for name in ("simple_cnn", "medcnn", "resnet18", "resnet34", "resnet50", "densenet121"):
        assert name in IMAGING_MODELS


@pytest.mark.parametrize("name", IMAGING_MODELS)
def test_registration_metadata(name):
    meta = MODELS.meta(name)
    assert meta["domain"] == "imaging"
    assert set(meta["tasks"]) >= {"binary", "multiclass"}
    assert isinstance(meta["tiny"], dict)
    assert meta["description"]
    assert isinstance(meta["cam_layer"], str) and isinstance(meta["head"], str)


@pytest.mark.parametrize("name", IMAGING_MODELS)
@pytest.mark.parametrize("image_size", [28, 64])
@pytest.mark.parametrize("in_channels", [1, 3])
def test_forward_backward(name, image_size, in_channels):
    model = _tiny(name, in_channels=in_channels, num_classes=3, image_size=image_size)
    model.train()
    x = torch.randn(2, in_channels, image_size, image_size)
    logits = model(x)
    assert logits.shape == (2, 3)
    assert torch.isfinite(logits).all()
    logits.square().sum().backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, f"{name}: {pname} got no gradient"
        assert torch.isfinite(p.grad).all(), f"{name}: {pname} has a non-finite gradient"


@pytest.mark.parametrize("name", IMAGING_MODELS)
def test_eval_forward_single_image(name):
    model = _tiny(name).eval()
    with torch.no_grad():
        assert model(torch.rand(1, 1, 28, 28)).shape == (1, 3)


@pytest.mark.parametrize("name", IMAGING_MODELS)
def test_constructor_signature(name):
    import inspect

    sig = inspect.signature(MODELS.get(name))
    for arg in DATA_ARGS:
        assert sig.parameters[arg].kind is inspect.Parameter.KEYWORD_ONLY
    for pname, p in sig.parameters.items():
        assert p.kind is inspect.Parameter.KEYWORD_ONLY, pname
        if pname not in DATA_ARGS:
            assert p.default is not inspect.Parameter.empty, f"{name}.{pname} needs a default"
    assert (MODELS.get(name).__doc__ or "").strip(), f"{name} needs a docstring"


@pytest.mark.parametrize("name", IMAGING_MODELS)
def test_unknown_param_lists_accepted(name):
    with pytest.raises(ConfigError) as info:
        models.create_model(name, in_channels=1, num_classes=2, image_size=28, no_such_param=1)
    message = str(info.value)
    assert "no_such_param" in message
    for accepted in MODELS.meta(name)["tiny"]:
        assert accepted in message


@pytest.mark.parametrize("reserved", DATA_ARGS)
def test_reserved_param_is_refused(reserved):
    fn = MODELS.get("simple_cnn")
    with pytest.raises(ConfigError, match=reserved):
        check_params(fn, {reserved: 3}, what="model", reserved=models.RESERVED_PARAMS)


def test_unknown_model_suggests_names():
    with pytest.raises(UnknownComponentError, match="resnet18"):
        models.create_model("resnet81", in_channels=1, num_classes=2, image_size=28)


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("simple_cnn", {"width": 0}),
        ("simple_cnn", {"depth": 7}),
        ("simple_cnn", {"dropout": 1.0}),
        ("resnet18", {"width": 2.5}),
        ("resnet18", {"small_input": "yes"}),
        ("medcnn", {"blocks": 0}),
        ("densenet121", {"growth_rate": -1}),
    ],
)
def test_invalid_param_values(name, params):
    (param,) = params
    with pytest.raises(ConfigError, match=f"'{param}' parameter of model '{name}'"):
        models.create_model(name, in_channels=1, num_classes=2, image_size=28, **params)


@pytest.mark.parametrize("bad", [0, -1, 2.0, True])
def test_invalid_data_args(bad):
    with pytest.raises(ConfigError, match="num_classes"):
        models.create_model("simple_cnn", in_channels=1, num_classes=bad, image_size=28)


@pytest.mark.parametrize("name", IMAGING_MODELS)
def test_cam_layer_and_head_resolve(name):
    model = _tiny(name)
    meta = MODELS.meta(name)
    head = model.get_submodule(meta["head"])
    assert isinstance(head, nn.Linear)
    cam = model.get_submodule(meta["cam_layer"])
    seen = {}
    handle = cam.register_forward_hook(lambda m, i, o: seen.update(shape=o.shape))
    model.eval()(torch.rand(2, 1, 28, 28))
    handle.remove()
    assert len(seen["shape"]) == 4 and seen["shape"][0] == 2  # a spatial feature map


@pytest.mark.parametrize("name", IMAGING_MODELS)
def test_head_and_backbone_parameters_partition(name):
    model = _tiny(name)
    head = models.head_parameters(model, name)
    backbone = models.backbone_parameters(model, name)
    assert head and backbone
    ids = [id(p) for p in head + backbone]
    assert len(ids) == len(set(ids)) == len(list(model.parameters()))
    assert {id(p) for p in head} == {id(p) for p in model.get_submodule("head").parameters()}


@pytest.mark.parametrize("name", IMAGING_MODELS)
def test_reset_head_changes_output_size(name):
    model = _tiny(name, num_classes=3)
    backbone_before = {k: v.clone() for k, v in model.state_dict().items() if "head" not in k}
    models.reset_head(model, name, 5)
    assert model.eval()(torch.rand(2, 1, 28, 28)).shape == (2, 5)
    after = model.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in backbone_before.items())


def test_reset_head_rejects_bad_class_count():
    model = _tiny("simple_cnn")
    with pytest.raises(ConfigError):
        models.reset_head(model, "simple_cnn", 0)


@pytest.mark.parametrize("name", ["resnet18", "medcnn"])
def test_resnet_stem_follows_image_size(name):
    small = models.create_model(name, in_channels=1, num_classes=2, image_size=28, width=4)
    large = models.create_model(name, in_channels=1, num_classes=2, image_size=64, width=4)
    forced = models.create_model(
        name, in_channels=1, num_classes=2, image_size=64, width=4, small_input=True
    )
    assert small.backbone.conv1.kernel_size == (3, 3) and small.backbone.conv1.stride == (1, 1)
    assert small.backbone.no_max_pool and forced.backbone.no_max_pool
    assert large.backbone.conv1.kernel_size == (7, 7) and large.backbone.conv1.stride == (2, 2)
    assert not large.backbone.no_max_pool


def test_densenet_small_stem_keeps_28px_alive():
    model = models.create_model(
        "densenet121", in_channels=1, num_classes=2, image_size=28, growth_rate=4, init_features=8
    )
    features = model.backbone.features
    assert features.conv0.kernel_size == (3, 3) and features.conv0.stride == (1, 1)
    assert not hasattr(features, "pool0")
    with torch.no_grad():
        fmap = features(torch.rand(1, 1, 28, 28))
    assert fmap.shape[-2:] == (3, 3)
    large = models.create_model(
        "densenet121", in_channels=1, num_classes=2, image_size=64, growth_rate=4, init_features=8
    )
    assert large.backbone.features.conv0.stride == (2, 2)
    assert hasattr(large.backbone.features, "pool0")


def test_default_resnet18_matches_the_medmnist_size():
    model = models.create_model("resnet18", in_channels=1, num_classes=2, image_size=28)
    n = sum(p.numel() for p in model.parameters())
    assert 11.0e6 < n < 11.3e6  # ResNet-18 (11.2 M parameters)


def test_models_are_seed_deterministic():
    a = _tiny("medcnn")
    b = _tiny("medcnn")
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert ka == kb and torch.equal(va, vb)


def test_tiny_medcnn_can_overfit_a_small_batch():
    torch.manual_seed(0)
    model = models.create_model("medcnn", in_channels=1, num_classes=2, image_size=16, width=4)
    x = torch.rand(16, 1, 16, 16)
    y = torch.arange(16) % 2
    x[y == 1, :, :, :8] += 1.0  # a visible class signal
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(25):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
    assert loss.item() < 0.1
