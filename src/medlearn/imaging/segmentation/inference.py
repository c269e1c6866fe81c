"""Sliding-window inference with Gaussian blending and test-time augmentation (flips, or
the 8 rotations and reflections of a 2-D image)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["dihedral_transforms", "flip_axes", "predict_volume"]


def flip_axes(spatial_dims: int) -> list[tuple[int, ...]]:
    """The flips used for TTA: none and each single spatial axis (dims of a batched tensor)."""
    return [()] + [(2 + d,) for d in range(spatial_dims)]


def dihedral_transforms() -> list[tuple[int, bool]]:
    """The 8 elements of the 2-D dihedral group as ``(quarter_turns, flip_last_axis)``:
    rotate by ``quarter_turns`` x 90 degrees after an optional flip of the last axis."""
    return [(k, f) for f in (False, True) for k in range(4)]


def _forward(x: torch.Tensor, k: int, flip: bool) -> torch.Tensor:
    x = torch.flip(x, (-1,)) if flip else x
    return torch.rot90(x, k, (-2, -1)) if k else x


def _inverse(x: torch.Tensor, k: int, flip: bool) -> torch.Tensor:
    x = torch.rot90(x, -k, (-2, -1)) if k else x
    return torch.flip(x, (-1,)) if flip else x


@torch.no_grad()
def predict_volume(
    net: nn.Module,
    image: torch.Tensor,
    *,
    roi_size: Sequence[int],
    overlap: float = 0.5,
    sw_batch_size: int = 4,
    mode: str = "gaussian",
    tta: bool | str = False,
) -> torch.Tensor:
    """Class probabilities of one image with MONAI's ``sliding_window_inference``.

    Args:
        net: maps ``(B, C, *roi)`` to logits ``(B, K, *roi)``; put in eval mode here.
        image: ``(C, *spatial)`` or ``(1, C, *spatial)`` float tensor.
        roi_size: window size (clipped to the image where it is smaller; MONAI pads).
        overlap: fraction of overlap between windows.
        sw_batch_size: windows per forward pass.
        mode: blending, ``"gaussian"`` (default) or ``"constant"``.
        tta: ``False``/``"none"``; ``True``/``"flip"``: average the softmax over the image
            and its flips along each spatial axis; ``"dihedral"`` (2-D): over its 8 rotations
            and reflections.

    Returns:
        Probabilities ``(K, *spatial)``.
    """
    from monai.inferers import sliding_window_inference

    net.eval()
    x = image if image.ndim == len(roi_size) + 2 else image[None]
    mode_tta = {False: "none", True: "flip"}.get(tta, tta)  # type: ignore[call-overload]
    if mode_tta == "dihedral" and len(roi_size) != 2:
        raise ValueError(f"dihedral TTA is for 2-D images; got {len(roi_size)}-D.")

    def probs(xi: torch.Tensor) -> torch.Tensor:
        logits = sliding_window_inference(
            xi,
            roi_size=tuple(roi_size),
            sw_batch_size=sw_batch_size,
            predictor=net,
            overlap=overlap,
            mode=mode,
        )
        return torch.softmax(logits, dim=1)

    if mode_tta == "dihedral":
        views = dihedral_transforms()
        total = sum(_inverse(probs(_forward(x, k, f)), k, f) for k, f in views)
        return (total / len(views))[0]
    flips = flip_axes(len(roi_size)) if mode_tta == "flip" else [()]
    total = None
    for axes in flips:
        prob = probs(torch.flip(x, axes) if axes else x)
        prob = torch.flip(prob, axes) if axes else prob
        total = prob if total is None else total + prob
    assert total is not None
    return (total / len(flips))[0]
