"""Grad-CAM heatmaps for image classifiers (MONAI ``GradCAM``) and overlays for people.

:func:`gradcam` wraps ``monai.visualize.GradCAM`` so that it can be called on a model in the
middle of training without side effects: MONAI's class registers hooks it never removes, turns
``inplace`` off on the target layer, zeroes and fills the parameters' ``.grad`` and leaves the
model in eval or train mode as a whole. Here the hooks are removed, every flag restored, and
the parameters never get a gradient (the input carries the graph instead).

The explain package is a layer: it never imports a domain. Callers pass the layer to explain
(``target_layer``); imaging models declare theirs as ``MODELS.meta(name)["cam_layer"]``.

Example:
    >>> heat = gradcam(model, x, target_layer="backbone.layer4")   # (B, H, W) in [0, 1]
    >>> rgb = overlay(x[0, 0].numpy(), heat[0])                    # (H, W, 3) uint8
"""

from __future__ import annotations

import difflib
import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from medlearn._io import atomic_write_bytes
from medlearn.errors import ConfigError, DataValidationError, require

__all__ = ["gradcam", "overlay", "save_overlay_png"]


def _find_layer(model: nn.Module, target_layer: str) -> nn.Module:
    names = [n for n, _ in model.named_modules() if n]
    try:
        return model.get_submodule(target_layer)
    except AttributeError:
        close = difflib.get_close_matches(target_layer, names, n=3, cutoff=0.5)
        guess = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        raise ConfigError(
            f"The model has no layer {target_layer!r} to explain.{guess}",
            hint="Pass a name from model.named_modules(); imaging models list theirs as "
            "MODELS.meta(name)['cam_layer'].",
        ) from None


def _normalise(maps: torch.Tensor) -> np.ndarray:
    """Scale each map ``(B, 1, H, W)`` to [0, 1] on its own; constant maps become 0."""
    flat = maps.detach().flatten(1).double()
    lo = flat.min(1, keepdim=True).values
    span = flat.max(1, keepdim=True).values - lo
    scaled = torch.where(span > 0, (flat - lo) / span.clamp_min(1e-12), torch.zeros_like(flat))
    return scaled.view(maps.shape[0], *maps.shape[2:]).float().cpu().numpy()


def _class_indices(
    model: nn.Module, x: torch.Tensor, class_index: Sequence[int] | int | None
) -> list[int]:
    b = x.shape[0]
    if class_index is None:
        with torch.no_grad():
            return model(x).argmax(1).tolist()
    if isinstance(class_index, (torch.Tensor, np.ndarray)):
        class_index = class_index.tolist()
    if isinstance(class_index, (int, np.integer)) and not isinstance(class_index, bool):
        return [int(class_index)] * b
    indices = [int(c) for c in class_index]
    if len(indices) != b:
        raise ConfigError(
            f"class_index must be one int or one per image ({b}). Got {len(indices)} values."
        )
    return indices


def gradcam(
    model: nn.Module,
    x: torch.Tensor,
    *,
    target_layer: str,
    class_index: Sequence[int] | int | None = None,
) -> np.ndarray:
    """Grad-CAM heatmaps of ``model`` for images ``x``, one per image, scaled to [0, 1].

    Uses ``monai.visualize.GradCAM``: the target layer's activations weighted by the spatial
    mean of the class score's gradient, ReLU, upsampled bilinearly to the input size. Each map
    is then scaled to [0, 1] (a map that is constant, e.g. all zero, becomes all 0).

    The model runs in eval mode. Afterwards every submodule's train/eval mode, every
    parameter's ``requires_grad`` and ``.grad``, and the target layer's ``inplace`` flag are as
    before, and no hook is left behind.

    Args:
        model: a classifier mapping ``(B, C, H, W)`` to logits ``(B, K)``.
        x: images ``(B, C, H, W)`` on the model's device.
        target_layer: dotted name of the module whose output is explained (a spatial feature
            map, usually the last convolutional stage), e.g. ``"backbone.layer4"``.
        class_index: the class explained: one index for all images, one per image, or
            ``None`` for each image's predicted class.

    Returns:
        Heatmaps ``(B, H, W)``, float32 in [0, 1].

    Raises:
        ConfigError: if ``target_layer`` does not exist (with close names) or
            ``class_index`` is out of range or of the wrong length.
        DataValidationError: if ``x`` is not a float ``(B, C, H, W)`` tensor.
    """
    require("monai", extra="imaging", purpose="Grad-CAM")
    from monai.visualize import GradCAM
    from monai.visualize.class_activation_maps import ModelWithHooks

    if not isinstance(x, torch.Tensor) or x.ndim != 4 or not torch.is_floating_point(x):
        raise DataValidationError(
            "gradcam expects a float batch of images (B, C, H, W). "
            f"Got shape {tuple(getattr(x, 'shape', ()))} and dtype {getattr(x, 'dtype', None)}."
        )
    layer = _find_layer(model, target_layer)

    modes = [(m, m.training) for m in model.modules()]
    params = list(model.parameters())
    saved = [(p, p.requires_grad, p.grad) for p in params]
    inplace = layer.__dict__.get("inplace")
    handles: list[Any] = []
    try:
        model.eval()
        for p in params:
            p.requires_grad_(False)
        classes = _class_indices(model, x, class_index)
        with torch.no_grad():
            k = model(x[:1]).shape[1]
        bad = [c for c in classes if not 0 <= c < k]
        if bad:
            raise ConfigError(f"class_index must be in [0, {k}). Got {bad[0]}.")

        # MONAI's ModelWithHooks keeps no hook handles; register them ourselves so that they
        # can be removed, using MONAI's own hook functions.
        hooked = ModelWithHooks(model, (), register_forward=True, register_backward=True)
        hooked.target_layers = (target_layer,)
        if inplace:
            layer.inplace = False  # full backward hooks fail on in-place outputs
        handles.append(layer.register_forward_hook(hooked.forward_hook(target_layer)))
        handles.append(layer.register_full_backward_hook(hooked.backward_hook(target_layer)))
        cam = GradCAM(nn_module=hooked, target_layers=target_layer, postprocessing=lambda m: m)

        # The graph runs through the input, not the (frozen) parameters.
        inputs = x.detach().clone().requires_grad_(True)
        out = torch.empty((x.shape[0], 1, *x.shape[2:]), dtype=torch.float32, device=x.device)
        index = torch.as_tensor(classes, device=x.device)
        # MONAI scores logits[:, class_idx]; an int per call keeps images independent.
        for c in sorted(set(classes)):
            rows = torch.nonzero(index == c).flatten()
            with torch.enable_grad():
                maps = cam(x=inputs[rows], class_idx=c)
            out[rows] = maps.detach().float()
            hooked.gradients.clear()
            hooked.activations.clear()
        return _normalise(out)
    finally:
        for handle in handles:
            handle.remove()
        if inplace is not None:
            layer.inplace = inplace
        for p, requires_grad, grad in saved:
            p.requires_grad_(requires_grad)
            p.grad = grad
        for module, training in modes:
            module.training = training


def _as_rgb(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return np.repeat(image[..., None], 3, axis=-1)
    if image.ndim == 3 and image.shape[-1] == 3:
        return image
    if image.ndim == 3 and image.shape[-1] == 1:
        return np.repeat(image, 3, axis=-1)
    raise DataValidationError(
        f"overlay expects an image (H, W) or (H, W, 3). Got shape {image.shape}.",
        hint="Pass one channel (image[0]) or an RGB image with channels last.",
    )


def overlay(
    image: np.ndarray, heatmap: np.ndarray, *, alpha: float = 0.4, cmap: str = "jet"
) -> np.ndarray:
    """Blend a heatmap, coloured with a matplotlib colormap, over an image.

    Args:
        image: ``(H, W)`` grayscale or ``(H, W, 3)`` RGB, floats in [0, 1] (clipped).
        heatmap: ``(H, W)`` in [0, 1] (clipped), e.g. one map of :func:`gradcam`.
        alpha: weight of the heatmap colour; ``0`` shows the image only.
        cmap: a matplotlib colormap name.

    Returns:
        ``(H, W, 3)`` uint8 RGB: ``(1 - alpha) * image + alpha * cmap(heatmap)``.

    Raises:
        DataValidationError: for shapes that do not match or non-finite values.
        ConfigError: for an unknown colormap or ``alpha`` outside [0, 1].
    """
    img = _as_rgb(np.asarray(image, dtype=np.float64))
    heat = np.asarray(heatmap, dtype=np.float64)
    if heat.shape != img.shape[:2]:
        raise DataValidationError(
            f"overlay: heatmap shape {heat.shape} differs from image shape {img.shape[:2]}."
        )
    if not (np.isfinite(img).all() and np.isfinite(heat).all()):
        raise DataValidationError("overlay: image or heatmap contains NaN or infinite values.")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 <= alpha <= 1:
        raise ConfigError(f"alpha must be a number in [0, 1]. Got {alpha!r} instead.")
    import matplotlib

    try:
        colormap = matplotlib.colormaps[cmap]
    except KeyError:
        close = difflib.get_close_matches(str(cmap), list(matplotlib.colormaps), n=3)
        guess = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        raise ConfigError(f"Unknown colormap {cmap!r}.{guess}") from None
    colour = colormap(np.clip(heat, 0, 1))[..., :3]
    blended = (1 - alpha) * np.clip(img, 0, 1) + alpha * colour
    return np.clip(np.round(blended * 255), 0, 255).astype(np.uint8)


def save_overlay_png(
    path: str | os.PathLike[str],
    image: np.ndarray,
    heatmap: np.ndarray,
    *,
    alpha: float = 0.4,
    cmap: str = "jet",
) -> Path:
    """Write :func:`overlay` of ``image`` and ``heatmap`` as a PNG, atomically.

    Written with :func:`medlearn._io.atomic_write_bytes` (temporary file in the same folder,
    fsync, rename), so readers never see a partial file.

    Args:
        path: the PNG file to write; its directory is created if missing.
        image: ``(H, W)`` or ``(H, W, 3)`` floats in [0, 1].
        heatmap: ``(H, W)`` in [0, 1].
        alpha: weight of the heatmap colour.
        cmap: a matplotlib colormap name.

    Returns:
        The path written.
    """
    rgb = overlay(image, heatmap, alpha=alpha, cmap=cmap)
    from matplotlib import image as mpimg

    buffer = io.BytesIO()
    mpimg.imsave(buffer, rgb, format="png")
    return atomic_write_bytes(path, buffer.getvalue())
