"""Registered 2-D image classification networks and the helpers that build and adapt them.

Every model here is registered in :data:`medlearn.registry.MODELS` with ``domain="imaging"``
and is built by a constructor with one signature::

    fn(*, in_channels: int, num_classes: int, image_size: int, **model_params) -> nn.Module

``in_channels``, ``num_classes`` and ``image_size`` come from the data; ``model_params`` are the
run file's ``model.params``. Each constructor returns an :class:`ImageClassifier`: a feature
extractor (``backbone``) followed by ``dropout`` and a linear ``head``, mapping
``(B, C, H, W)`` images to ``(B, num_classes)`` logits. Each registration also records:

- ``tiny``: params of a tiny variant, used by the conformance tests;
- ``cam_layer``: the dotted name of the module Grad-CAM explains (last spatial feature map);
- ``head``: the dotted name of the final classifier (``"head"`` for every model here).

Networks meant for ImageNet-sized inputs shrink a 28-px MedMNIST image to almost nothing in
their stem (7x7 stride-2 convolution plus max-pool). Below 64 px they therefore switch to a
"small-input" stem: a 3x3 stride-1 convolution and no max-pool, as in the MedMNIST benchmark.

Example:
    >>> model = create_model("medcnn", in_channels=1, num_classes=2, image_size=28)
    >>> model(torch.zeros(4, 1, 28, 28)).shape
    torch.Size([4, 2])
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import torch
from torch import nn

from medlearn.config import check_params
from medlearn.errors import ConfigError, require
from medlearn.registry import MODELS

__all__ = [
    "ImageClassifier",
    "RESERVED_PARAMS",
    "backbone_parameters",
    "create_model",
    "densenet121",
    "fold_batch_norms",
    "head_parameters",
    "medcnn",
    "reset_head",
    "resnet18",
    "resnet34",
    "resnet50",
    "simple_cnn",
    "inference_copy",
]

_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


def _foldable(conv: nn.Module, norm: nn.Module) -> bool:
    return (
        isinstance(conv, _CONVS)
        and isinstance(norm, nn.modules.batchnorm._BatchNorm)
        and not norm.training
        and norm.running_mean is not None
        and norm.running_var is not None
        and norm.num_features == conv.out_channels
    )


def fold_batch_norms(net: nn.Module) -> int:
    """Fold eval-mode batch norms into the convolutions that feed them, in place.

    Two patterns are folded: MONAI's ``Convolution`` block whose activation/dropout/norm
    block starts with its norm (``conv`` then ``adn.N``), and a convolution directly followed
    by a batch norm in an ``nn.Sequential``. The folded convolution computes
    ``bn(conv(x))`` (up to float rounding) and the norm becomes an ``nn.Identity``. Use it on
    an inference copy (:func:`inference_copy`): training would need the norm back.

    Returns:
        The number of norms folded.
    """
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    folded = 0
    for mod in list(net.modules()):
        adn = getattr(mod, "adn", None)
        if isinstance(adn, nn.Sequential) and type(mod).__name__ == "Convolution":
            first = next(iter(adn.named_children()), None)
            conv = getattr(mod, "conv", None)
            if first is not None and first[0] == "N" and _foldable(conv, first[1]):
                mod.conv = fuse_conv_bn_eval(conv, first[1])
                adn.N = nn.Identity()
                folded += 1
        elif type(mod) is nn.Sequential:
            names = list(mod._modules)
            for a, b in zip(names, names[1:], strict=False):
                conv, norm = mod._modules[a], mod._modules[b]
                if _foldable(conv, norm):
                    mod._modules[a] = fuse_conv_bn_eval(conv, norm)
                    mod._modules[b] = nn.Identity()
                    folded += 1
    return folded


def inference_copy(net: nn.Module, *, channels_last: bool) -> nn.Module:
    """An eval-mode copy of ``net`` for prediction only: batch norms folded into their
    convolutions (:func:`fold_batch_norms`) and, for 2-D inputs, weights in channels-last
    layout (oneDNN's CPU convolutions and max-pooling are several times faster on it).
    ``net`` itself is not changed."""
    import copy

    fast = copy.deepcopy(net).eval()
    fold_batch_norms(fast)
    for p in fast.parameters():
        p.requires_grad_(False)
    if channels_last:
        fast = fast.to(memory_format=torch.channels_last)
    return fast


#: Constructor arguments medlearn fills in from the data; users may not set them in params.
RESERVED_PARAMS: tuple[str, ...] = ("in_channels", "num_classes", "image_size")
#: Inputs smaller than this use the small-input stem unless ``small_input`` says otherwise.
SMALL_INPUT_BELOW = 64


class ImageClassifier(nn.Module):
    """A feature extractor, dropout and a linear classification head.

    Args:
        backbone: maps ``(B, C, H, W)`` images to ``(B, num_features)`` features.
        num_features: the width of the backbone's output.
        num_classes: the number of logits.
        dropout: dropout probability applied to the features before the head.

    Attributes:
        backbone: the feature extractor.
        dropout: ``nn.Dropout`` before the head.
        head: ``nn.Linear(num_features, num_classes)``.
    """

    def __init__(
        self, backbone: nn.Module, num_features: int, num_classes: int, *, dropout: float = 0.0
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.num_features = num_features
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(num_features, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Features ``(B, num_features)`` of images ``x`` ``(B, C, H, W)``."""
        return self.backbone(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, num_classes)`` of images ``x`` ``(B, C, H, W)``."""
        return self.head(self.dropout(self.backbone(x)))


# --- parameter checks ------------------------------------------------------------------------


def _invalid(model: str, param: str, must: str, got: Any) -> ConfigError:
    return ConfigError(
        f"The {param!r} parameter of model {model!r} must be {must}. Got {got!r} instead.",
        hint=f"Fix model.params.{param} in the run file.",
    )


def _check_int(model: str, param: str, value: Any, *, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise _invalid(model, param, f"an integer >= {minimum}", value)
    return value


def _check_dropout(model: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise _invalid(model, "dropout", "a number in [0, 1)", value)
    return float(value)


def _check_small_input(model: str, value: Any, image_size: int) -> bool:
    if value is None:
        return image_size < SMALL_INPUT_BELOW
    if not isinstance(value, bool):
        raise _invalid(model, "small_input", "true, false or null (automatic)", value)
    return value


def _check_data_args(in_channels: Any, num_classes: Any, image_size: Any) -> None:
    for name, value in (
        ("in_channels", in_channels),
        ("num_classes", num_classes),
        ("image_size", image_size),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name} must be a positive integer. Got {value!r} instead.")


# --- building blocks -------------------------------------------------------------------------


def _monai_resnet(
    *,
    block: str,
    layers: list[int],
    widths: list[int],
    in_channels: int,
    small_input: bool,
) -> tuple[nn.Module, int]:
    """A MONAI ``ResNet`` feature extractor and its output width.

    The small-input stem is a 3x3 stride-1 convolution without max-pool; the standard stem is
    the 7x7 stride-2 convolution followed by a stride-2 max-pool.
    """
    require("monai", extra="imaging", purpose="imaging models")
    from monai.networks.nets import ResNet

    net = ResNet(
        block=block,
        layers=layers,
        block_inplanes=widths,
        spatial_dims=2,
        n_input_channels=in_channels,
        conv1_t_size=3 if small_input else 7,
        conv1_t_stride=1 if small_input else 2,
        no_max_pool=small_input,
        shortcut_type="B",
        feed_forward=False,  # the head lives in ImageClassifier
        bias_downsample=False,
    )
    expansion = 4 if block == "bottleneck" else 1
    return net, widths[-1] * expansion


def _resnet(
    name: str,
    *,
    block: str,
    layers: list[int],
    in_channels: int,
    num_classes: int,
    image_size: int,
    width: int,
    small_input: bool | None,
    dropout: float,
) -> ImageClassifier:
    _check_data_args(in_channels, num_classes, image_size)
    width = _check_int(name, "width", width)
    dropout = _check_dropout(name, dropout)
    small = _check_small_input(name, small_input, image_size)
    backbone, features = _monai_resnet(
        block=block,
        layers=layers,
        widths=[width, 2 * width, 4 * width, 8 * width],
        in_channels=in_channels,
        small_input=small,
    )
    return ImageClassifier(backbone, features, num_classes, dropout=dropout)


# --- registered models -----------------------------------------------------------------------


@MODELS.register(
    "simple_cnn",
    domain="imaging",
    tasks=("binary", "multiclass"),
    tiny={"width": 4, "depth": 2},
    cam_layer="backbone.features",
    head="head",
    description="Small conv-BN-ReLU network with max-pooling; a fast baseline.",
)
def simple_cnn(
    *,
    in_channels: int,
    num_classes: int,
    image_size: int,
    width: int = 32,
    depth: int = 4,
    dropout: float = 0.2,
) -> ImageClassifier:
    """A plain CNN: ``depth`` conv3x3-BN-ReLU blocks, 2x2 max-pool between them, global pool.

    Block ``i`` (from 0) has ``width * 2**i`` channels. With the defaults at 28 px it has
    0.4 M parameters and trains at about 1,100 img/s on 2 CPU cores
    (``benchmarks/_model_speed.py``); on PneumoniaMNIST it reached the same test AUROC as
    ``medcnn`` in a 10-epoch single-seed run (0.960 vs 0.959).

    Args:
        in_channels: image channels ``C``.
        num_classes: number of logits.
        image_size: the side of the (square) training images; only checked here.
        width: channels of the first block.
        depth: number of conv blocks (1-6).
        dropout: dropout before the head.

    Returns:
        An :class:`ImageClassifier`; Grad-CAM layer ``backbone.features``.
    """
    require("monai", extra="imaging", purpose="imaging models")
    from monai.networks.blocks import Convolution

    _check_data_args(in_channels, num_classes, image_size)
    width = _check_int("simple_cnn", "width", width)
    depth = _check_int("simple_cnn", "depth", depth)
    if depth > 6:
        raise _invalid("simple_cnn", "depth", "an integer from 1 to 6", depth)
    dropout = _check_dropout("simple_cnn", dropout)
    blocks: list[tuple[str, nn.Module]] = []
    channels = in_channels
    for i in range(depth):
        out = width * 2**i
        if i > 0:
            blocks.append((f"pool{i}", nn.MaxPool2d(2, ceil_mode=True)))
        blocks.append(
            (
                f"block{i + 1}",
                Convolution(
                    spatial_dims=2,
                    in_channels=channels,
                    out_channels=out,
                    kernel_size=3,
                    act="relu",
                    norm="batch",
                    bias=False,
                ),
            )
        )
        channels = out
    backbone = nn.Sequential(
        OrderedDict(
            [
                ("features", nn.Sequential(OrderedDict(blocks))),
                ("pool", nn.AdaptiveAvgPool2d(1)),
                ("flatten", nn.Flatten(1)),
            ]
        )
    )
    return ImageClassifier(backbone, channels, num_classes, dropout=dropout)


@MODELS.register(
    "medcnn",
    domain="imaging",
    tasks=("binary", "multiclass"),
    tiny={"width": 4},
    cam_layer="backbone.layer4",
    head="head",
    description="Fast ResNet-10 (MONAI) for small 28-64 px images on CPU; the imaging default.",
)
def medcnn(
    *,
    in_channels: int,
    num_classes: int,
    image_size: int,
    width: int = 32,
    blocks: int = 1,
    small_input: bool | None = None,
    dropout: float = 0.0,
) -> ImageClassifier:
    """A narrow MONAI ResNet (basic blocks, ``blocks`` per stage) for small images on CPU.

    Four stages of ``width, 2*width, 4*width, 8*width`` channels (32-256 by default) with
    ``blocks`` basic residual blocks each: a ResNet-10 at a quarter of ResNet-18's width. Below
    64 px it uses the small-input stem (3x3 stride-1 convolution, no max-pool).

    Measured on 2 CPU cores (Xeon 2.5 GHz, torch 2.13; ``benchmarks/_model_speed.py``, batch 128
    of 28x28x1, Adam): about 330 img/s training with 1.2 M parameters, against about 40 img/s
    for the MedMNIST ResNet-18 (11 M). ``blocks=2`` (2.8 M) trains at about 150 img/s.
    On PneumoniaMNIST (10 epochs, Adam one-cycle, ``default`` augmentation, one seed) it
    reached test AUROC 0.959 at the best validation epoch (0.938 without augmentation; the
    MedMNIST v2 paper reports 0.944 for ResNet-18 at 28 px).

    Args:
        in_channels: image channels ``C``.
        num_classes: number of logits.
        image_size: the side of the training images; below 64 selects the small-input stem.
        width: channels of the first stage.
        blocks: residual blocks per stage.
        small_input: force the small-input stem on (true) or off (false); null = automatic.
        dropout: dropout before the head.

    Returns:
        An :class:`ImageClassifier`; Grad-CAM layer ``backbone.layer4``.
    """
    blocks = _check_int("medcnn", "blocks", blocks)
    return _resnet(
        "medcnn",
        block="basic",
        layers=[blocks] * 4,
        in_channels=in_channels,
        num_classes=num_classes,
        image_size=image_size,
        width=width,
        small_input=small_input,
        dropout=dropout,
    )


_RESNET_DOC = """{title} (MONAI ``ResNet``, {blocks} blocks {layers}).

    Below 64 px it uses the small-input stem (3x3 stride-1 convolution, no max-pool), as the
    MedMNIST benchmark does; from 64 px the standard 7x7 stride-2 stem and max-pool.
    {speed}

    Args:
        in_channels: image channels ``C``.
        num_classes: number of logits.
        image_size: the side of the training images; below 64 selects the small-input stem.
        width: channels of the first stage (64 as in the paper); each stage doubles it.
        small_input: force the small-input stem on (true) or off (false); null = automatic.
        dropout: dropout before the head.

    Returns:
        An :class:`ImageClassifier`; Grad-CAM layer ``backbone.layer4``.
    """


def _resnet_meta(title: str) -> dict[str, Any]:
    return {
        "domain": "imaging",
        "tasks": ("binary", "multiclass"),
        "tiny": {"width": 4},
        "cam_layer": "backbone.layer4",
        "head": "head",
        "description": f"{title} (MONAI); small-input stem below 64 px.",
    }


@MODELS.register("resnet18", **_resnet_meta("ResNet-18"))
def resnet18(
    *,
    in_channels: int,
    num_classes: int,
    image_size: int,
    width: int = 64,
    small_input: bool | None = None,
    dropout: float = 0.0,
) -> ImageClassifier:
    return _resnet(
        "resnet18",
        block="basic",
        layers=[2, 2, 2, 2],
        in_channels=in_channels,
        num_classes=num_classes,
        image_size=image_size,
        width=width,
        small_input=small_input,
        dropout=dropout,
    )


@MODELS.register("resnet34", **_resnet_meta("ResNet-34"))
def resnet34(
    *,
    in_channels: int,
    num_classes: int,
    image_size: int,
    width: int = 64,
    small_input: bool | None = None,
    dropout: float = 0.0,
) -> ImageClassifier:
    return _resnet(
        "resnet34",
        block="basic",
        layers=[3, 4, 6, 3],
        in_channels=in_channels,
        num_classes=num_classes,
        image_size=image_size,
        width=width,
        small_input=small_input,
        dropout=dropout,
    )


@MODELS.register("resnet50", **_resnet_meta("ResNet-50"))
def resnet50(
    *,
    in_channels: int,
    num_classes: int,
    image_size: int,
    width: int = 64,
    small_input: bool | None = None,
    dropout: float = 0.0,
) -> ImageClassifier:
    return _resnet(
        "resnet50",
        block="bottleneck",
        layers=[3, 4, 6, 3],
        in_channels=in_channels,
        num_classes=num_classes,
        image_size=image_size,
        width=width,
        small_input=small_input,
        dropout=dropout,
    )


resnet18.__doc__ = _RESNET_DOC.format(
    title="ResNet-18",
    blocks="basic",
    layers="[2, 2, 2, 2]",
    speed="11.2 M parameters; trains at about 40 img/s (28 px, batch 128, 2 CPU cores).",
)
resnet34.__doc__ = _RESNET_DOC.format(
    title="ResNet-34",
    blocks="basic",
    layers="[3, 4, 6, 3]",
    speed="21.3 M parameters; trains at about 22 img/s (28 px, batch 128, 2 CPU cores).",
)
resnet50.__doc__ = _RESNET_DOC.format(
    title="ResNet-50",
    blocks="bottleneck",
    layers="[3, 4, 6, 3]",
    speed="23.5 M parameters; trains at about 12 img/s (28 px, batch 128, 2 CPU cores).",
)


@MODELS.register(
    "densenet121",
    domain="imaging",
    tasks=("binary", "multiclass"),
    tiny={"growth_rate": 4, "init_features": 8, "bn_size": 2},
    cam_layer="backbone.class_layers.relu",
    head="head",
    description="DenseNet-121 (MONAI); small-input stem below 64 px.",
)
def densenet121(
    *,
    in_channels: int,
    num_classes: int,
    image_size: int,
    growth_rate: int = 32,
    init_features: int = 64,
    bn_size: int = 4,
    small_input: bool | None = None,
    dropout: float = 0.0,
) -> ImageClassifier:
    """DenseNet-121 (MONAI ``DenseNet121``, blocks 6-12-24-16).

    Below 64 px the stem (``features.conv0``, 7x7 stride 2, and ``features.pool0``) is replaced
    by a 3x3 stride-1 convolution without pooling; otherwise the three transitions would shrink
    a 28-px image to 0 px. The 3 transitions then leave a 3x3 map at 28 px. 7.0 M
    parameters; trains at about 12 img/s (28 px, batch 128, 2 CPU cores).

    Args:
        in_channels: image channels ``C``.
        num_classes: number of logits.
        image_size: the side of the training images; below 64 selects the small-input stem.
        growth_rate: channels each dense layer adds (k in the paper).
        init_features: channels of the stem.
        bn_size: bottleneck width factor (``bn_size * growth_rate`` channels).
        small_input: force the small-input stem on (true) or off (false); null = automatic.
        dropout: dropout before the head.

    Returns:
        An :class:`ImageClassifier`; Grad-CAM layer ``backbone.class_layers.relu``.
    """
    require("monai", extra="imaging", purpose="imaging models")
    from monai.networks.nets import DenseNet121

    name = "densenet121"
    _check_data_args(in_channels, num_classes, image_size)
    growth_rate = _check_int(name, "growth_rate", growth_rate)
    init_features = _check_int(name, "init_features", init_features)
    bn_size = _check_int(name, "bn_size", bn_size)
    dropout = _check_dropout(name, dropout)
    small = _check_small_input(name, small_input, image_size)
    net = DenseNet121(
        spatial_dims=2,
        in_channels=in_channels,
        out_channels=num_classes,
        init_features=init_features,
        growth_rate=growth_rate,
        bn_size=bn_size,
        pretrained=False,
    )
    if small:
        conv0 = nn.Conv2d(
            in_channels, init_features, kernel_size=3, stride=1, padding=1, bias=False
        )
        nn.init.kaiming_normal_(conv0.weight)
        net.features.conv0 = conv0
        del net.features.pool0
    num_features = net.class_layers.out.in_features
    net.class_layers.out = nn.Identity()  # the head lives in ImageClassifier
    return ImageClassifier(net, num_features, num_classes, dropout=dropout)


# --- helpers ---------------------------------------------------------------------------------


def create_model(
    name: str, *, in_channels: int, num_classes: int, image_size: int, **params: Any
) -> nn.Module:
    """Build the registered model ``name`` for the given data, with user ``params``.

    Args:
        name: a registry name (``medlearn models list``), e.g. ``"resnet18"``.
        in_channels: image channels ``C``.
        num_classes: number of logits.
        image_size: the side of the training images (selects stems for small inputs).
        **params: the constructor's keyword arguments (``model.params`` in a run file).

    Returns:
        A module mapping ``(B, C, H, W)`` to logits ``(B, num_classes)``.

    Raises:
        UnknownComponentError: if ``name`` is not registered (with did-you-mean).
        ConfigError: for an unknown parameter (listing the accepted ones) or an invalid
            value. (``in_channels``, ``num_classes`` and ``image_size`` cannot be in ``params``;
            check user params first with ``check_params(..., reserved=RESERVED_PARAMS)``.)
    """
    fn = MODELS.get(name)
    check_params(fn, params, what=f"model {name!r}", reserved=RESERVED_PARAMS)
    return fn(in_channels=in_channels, num_classes=num_classes, image_size=image_size, **params)


def _head_name(name: str) -> str:
    head = MODELS.meta(name).get("head")
    if not head:
        raise ConfigError(f"Model {name!r} does not declare its head module (meta 'head').")
    return head


def _submodule(model: nn.Module, dotted: str, name: str) -> nn.Module:
    try:
        return model.get_submodule(dotted)
    except AttributeError:
        raise ConfigError(
            f"Model {name!r} has no submodule {dotted!r}; was it built by create_model({name!r})?"
        ) from None


def head_parameters(model: nn.Module, name: str) -> list[nn.Parameter]:
    """The parameters of the classification head of ``model`` (built as registry ``name``)."""
    return list(_submodule(model, _head_name(name), name).parameters())


def backbone_parameters(model: nn.Module, name: str) -> list[nn.Parameter]:
    """Every parameter of ``model`` that is not in its head (for freezing / lower LR)."""
    head = {id(p) for p in head_parameters(model, name)}
    return [p for p in model.parameters() if id(p) not in head]


def reset_head(model: nn.Module, name: str, num_classes: int) -> nn.Module:
    """Replace the head of ``model`` with a fresh ``nn.Linear`` producing ``num_classes`` logits.

    For transfer learning: load weights trained on one task, then reset the head for another.
    The new head is on the old head's device and dtype.

    Args:
        model: a model built by :func:`create_model` (``name``).
        name: its registry name.
        num_classes: the new number of logits.

    Returns:
        ``model``, modified in place.
    """
    _check_data_args(1, num_classes, 1)
    dotted = _head_name(name)
    old = _submodule(model, dotted, name)
    if not isinstance(old, nn.Linear):
        raise ConfigError(
            f"The head {dotted!r} of model {name!r} is a {type(old).__name__}, not nn.Linear; "
            "reset_head cannot replace it."
        )
    new = nn.Linear(
        old.in_features,
        num_classes,
        bias=old.bias is not None,
        device=old.weight.device,
        dtype=old.weight.dtype,
    )
    parent_name, _, attr = dotted.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, attr, new)
    return model
