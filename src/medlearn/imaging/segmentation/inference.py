"""Sliding-window inference with Gaussian blending and flip test-time augmentation."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["flip_axes", "predict_volume"]


def flip_axes(spatial_dims: int) -> list[tuple[int, ...]]:
    """The flips used for TTA: none and each single spatial axis (dims of a batched tensor)."""
    return [()] + [(2 + d,) for d in range(spatial_dims)]


@torch.no_grad()
def predict_volume(
    net: nn.Module,
    image: torch.Tensor,
    *,
    roi_size: Sequence[int],
    overlap: float = 0.5,
    sw_batch_size: int = 4,
    mode: str = "gaussian",
    tta: bool = False,
) -> torch.Tensor:
    """Class probabilities of one image with MONAI's ``sliding_window_inference``.

    Args:
        net: maps ``(B, C, *roi)`` to logits ``(B, K, *roi)``; put in eval mode here.
        image: ``(C, *spatial)`` or ``(1, C, *spatial)`` float tensor.
        roi_size: window size (clipped to the image where it is smaller; MONAI pads).
        overlap: fraction of overlap between windows.
        sw_batch_size: windows per forward pass.
        mode: blending, ``"gaussian"`` (default) or ``"constant"``.
        tta: average the softmax over flips of every spatial axis.

    Returns:
        Probabilities ``(K, *spatial)``.
    """
    from monai.inferers import sliding_window_inference

    net.eval()
    x = image if image.ndim == len(roi_size) + 2 else image[None]
    flips = flip_axes(len(roi_size)) if tta else [()]
    total = None
    for axes in flips:
        xi = torch.flip(x, axes) if axes else x
        logits = sliding_window_inference(
            xi,
            roi_size=tuple(roi_size),
            sw_batch_size=sw_batch_size,
            predictor=net,
            overlap=overlap,
            mode=mode,
        )
        prob = torch.softmax(logits, dim=1)
        if axes:
            prob = torch.flip(prob, axes)
        total = prob if total is None else total + prob
    assert total is not None
    return (total / len(flips))[0]
