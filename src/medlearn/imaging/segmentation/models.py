"""Registered MONAI segmentation networks (2-D and 3-D) and losses.

Every network takes ``spatial_dims``, ``in_channels`` and ``out_channels`` from the learner
(reserved: users set the rest in ``model.params``) and returns logits ``(B, K, *spatial)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import nn

from medlearn.errors import ConfigError, require
from medlearn.registry import MODELS

__all__ = ["LOSSES", "basic_unet", "dynunet", "make_loss", "segresnet", "unet"]

_META: dict[str, Any] = {
    "domain": "imaging",
    "learner": "segmentation",
    "reader": "segmentation",
    "tasks": ("segmentation",),
}
RESERVED = ("spatial_dims", "in_channels", "out_channels")


def _check_dims(spatial_dims: int) -> int:
    if spatial_dims not in (2, 3):
        raise ConfigError(f"Segmentation networks are 2-D or 3-D; got spatial_dims={spatial_dims}.")
    return spatial_dims


@MODELS.register(
    "unet",
    **_META,
    tiny={"channels": [4, 8, 16], "strides": [2, 2], "num_res_units": 0},
    description="MONAI residual U-Net (Kerfoot et al.), 2-D or 3-D.",
)
def unet(
    *,
    spatial_dims: int,
    in_channels: int,
    out_channels: int,
    channels: Sequence[int] = (16, 32, 64, 128),
    strides: Sequence[int] = (2, 2, 2),
    num_res_units: int = 2,
    dropout: float = 0.0,
    norm: str = "batch",
) -> nn.Module:
    """MONAI ``UNet``: ``len(channels)`` levels, residual units per level.

    Args:
        spatial_dims: 2 or 3.
        in_channels: image channels.
        out_channels: classes (background included).
        channels: features per level.
        strides: down-sampling per level (one fewer than ``channels``).
        num_res_units: residual units per block (0: plain convolutions).
        dropout: dropout probability.
        norm: ``"batch"`` or ``"instance"``.
    """
    require("monai", extra="imaging", purpose="segmentation networks")
    from monai.networks.nets import UNet

    return UNet(
        spatial_dims=_check_dims(spatial_dims),
        in_channels=in_channels,
        out_channels=out_channels,
        channels=tuple(channels),
        strides=tuple(strides),
        num_res_units=num_res_units,
        dropout=dropout,
        norm=norm,
    )


@MODELS.register(
    "basic_unet",
    **_META,
    tiny={"features": [4, 4, 8, 16, 32, 4]},
    description="MONAI BasicUNet: the original 4-level U-Net with two convs per block.",
)
def basic_unet(
    *,
    spatial_dims: int,
    in_channels: int,
    out_channels: int,
    features: Sequence[int] = (32, 32, 64, 128, 256, 32),
    dropout: float = 0.0,
    norm: str = "batch",
) -> nn.Module:
    """MONAI ``BasicUNet`` (Ronneberger et al. 2015 layout).

    Args:
        spatial_dims: 2 or 3.
        in_channels: image channels.
        out_channels: classes (background included).
        features: six feature counts (encoder levels 0-4, decoder output).
        dropout: dropout probability.
        norm: ``"batch"`` or ``"instance"``.
    """
    require("monai", extra="imaging", purpose="segmentation networks")
    from monai.networks.nets import BasicUNet

    return BasicUNet(
        spatial_dims=_check_dims(spatial_dims),
        in_channels=in_channels,
        out_channels=out_channels,
        features=tuple(features),
        dropout=dropout,
        norm=norm,
    )


@MODELS.register(
    "segresnet",
    **_META,
    tiny={"init_filters": 8, "blocks_down": [1, 1, 1], "blocks_up": [1, 1]},
    description="MONAI SegResNet (Myronenko 2018): residual encoder, light decoder.",
)
def segresnet(
    *,
    spatial_dims: int,
    in_channels: int,
    out_channels: int,
    init_filters: int = 16,
    blocks_down: Sequence[int] = (1, 2, 2, 4),
    blocks_up: Sequence[int] = (1, 1, 1),
    dropout: float | None = None,
) -> nn.Module:
    """MONAI ``SegResNet``.

    Args:
        spatial_dims: 2 or 3.
        in_channels: image channels.
        out_channels: classes (background included).
        init_filters: features of the first level (doubled per level).
        blocks_down: residual blocks per encoder level.
        blocks_up: residual blocks per decoder level (one fewer than ``blocks_down``).
        dropout: dropout probability or ``None``.
    """
    require("monai", extra="imaging", purpose="segmentation networks")
    from monai.networks.nets import SegResNet

    return SegResNet(
        spatial_dims=_check_dims(spatial_dims),
        in_channels=in_channels,
        out_channels=out_channels,
        init_filters=init_filters,
        blocks_down=tuple(blocks_down),
        blocks_up=tuple(blocks_up),
        dropout_prob=dropout,
    )


@MODELS.register(
    "dynunet",
    **_META,
    tiny={"filters": [4, 8, 16]},
    description="MONAI DynUNet (nnU-Net's architecture), 2-D or 3-D.",
)
def dynunet(
    *,
    spatial_dims: int,
    in_channels: int,
    out_channels: int,
    filters: Sequence[int] = (16, 32, 64, 128),
    norm: str = "instance",
    res_block: bool = False,
) -> nn.Module:
    """MONAI ``DynUNet`` with 3x3(x3) kernels and stride-2 down-sampling per level.

    Args:
        spatial_dims: 2 or 3.
        in_channels: image channels.
        out_channels: classes (background included).
        filters: features per level (the level count follows).
        norm: ``"instance"`` or ``"batch"``.
        res_block: residual blocks instead of plain ones.
    """
    require("monai", extra="imaging", purpose="segmentation networks")
    from monai.networks.nets import DynUNet

    n = len(filters)
    if n < 2:
        raise ConfigError("dynunet needs at least 2 filter levels.")
    kernels = [[3] * spatial_dims] * n
    strides = [[1] * spatial_dims] + [[2] * spatial_dims] * (n - 1)
    return DynUNet(
        spatial_dims=_check_dims(spatial_dims),
        in_channels=in_channels,
        out_channels=out_channels,
        kernel_size=kernels,
        strides=strides,
        upsample_kernel_size=strides[1:],
        filters=list(filters),
        norm_name=norm,
        res_block=res_block,
    )


#: Loss names accepted in ``data.options.loss``.
LOSSES = ("dice", "dice_ce", "dice_focal")


def make_loss(name: str) -> nn.Module:
    """A MONAI loss on logits ``(B, K, ...)`` and integer labels ``(B, 1, ...)``.

    Args:
        name: ``"dice"`` (DiceLoss), ``"dice_ce"`` (DiceCELoss) or ``"dice_focal"``
            (DiceFocalLoss); all with softmax and one-hot targets.
    """
    from monai.losses import DiceCELoss, DiceFocalLoss, DiceLoss

    common = {"to_onehot_y": True, "softmax": True}
    if name == "dice":
        return DiceLoss(**common)
    if name == "dice_ce":
        return DiceCELoss(**common)
    if name == "dice_focal":
        return DiceFocalLoss(**common)
    raise ConfigError(
        f"Unknown segmentation loss {name!r}.", hint=f"Use one of: {', '.join(LOSSES)}."
    )
