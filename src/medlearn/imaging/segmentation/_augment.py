"""Training patches for the segmentation learner: random (foreground-oversampled) crops of
cached cases and their augmentations (flips, 90° rotations, intensity jitter, elastic
deformation). All randomness comes from torch's global RNG, which the shared trainer re-seeds
before every batch, so a seeded fit draws the same patches."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from medlearn.errors import ConfigError

__all__ = ["ElasticSettings", "elastic_deform", "elastic_settings"]


# --- elastic deformation -------------------------------------------------------------------------


@dataclass(frozen=True)
class ElasticSettings:
    """Random elastic deformation of training patches (Ronneberger et al., 2015).

    Attributes:
        magnitude: standard deviation of the control points' random displacements, in voxels.
        grid: control points per axis (the displacement field is their cubic / linear
            interpolation over the patch).
        prob: probability of deforming a patch.
    """

    magnitude: float = 10.0
    grid: int = 3
    prob: float = 0.5


_ELASTIC_KEYS = ("magnitude", "grid", "prob")
_ELASTIC_HINT = "For example elastic: 10, or elastic: {magnitude: 10, grid: 3, prob: 0.5}."


def _elastic_error(what: str, value: Any) -> ConfigError:
    return ConfigError(f"data.options.elastic{what}. Got {value!r}.", hint=_ELASTIC_HINT)


def _real(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    out = float(value)
    return out if np.isfinite(out) else None


def elastic_settings(value: Any) -> ElasticSettings | None:
    """Parse the ``elastic`` option.

    Args:
        value: ``None``/``False``/``0`` (off), a displacement magnitude in voxels (> 0, at
            most 64; grid 3, probability 0.5), or a mapping with any of ``magnitude``,
            ``grid`` (2 to 16 control points per axis) and ``prob`` (in (0, 1]).

    Returns:
        The settings, or ``None`` when off.

    Raises:
        ConfigError: for anything else, naming the bad key and the accepted values.
    """
    if value is None or value is False:
        return None
    if isinstance(value, Mapping):
        unknown = sorted(set(map(str, value)) - set(_ELASTIC_KEYS))
        if unknown:
            raise _elastic_error(
                f" has unknown key(s) {', '.join(unknown)}; accepted: {', '.join(_ELASTIC_KEYS)}",
                dict(value),
            )
        fields = dict(value)
    else:
        fields = {"magnitude": value}
    default = ElasticSettings()
    magnitude = _real(fields.get("magnitude", default.magnitude))
    if magnitude is None or not 0 <= magnitude <= 64:
        raise _elastic_error(
            ".magnitude must be a number of voxels in [0, 64] (0 = off)", fields.get("magnitude")
        )
    grid = fields.get("grid", default.grid)
    if isinstance(grid, bool) or not isinstance(grid, int) or not 2 <= grid <= 16:
        raise _elastic_error(".grid must be an integer in [2, 16]", grid)
    prob = _real(fields.get("prob", default.prob))
    if prob is None or not 0 < prob <= 1:
        raise _elastic_error(".prob must be a number in (0, 1]", fields.get("prob"))
    if magnitude == 0:
        return None
    return ElasticSettings(magnitude=magnitude, grid=grid, prob=prob)


def elastic_deform(
    image: torch.Tensor, label: torch.Tensor, *, magnitude: float, grid: int = 3
) -> tuple[torch.Tensor, torch.Tensor]:
    """Deform an image and its label map with one random smooth displacement field.

    Displacements of ``grid`` control points per axis are drawn from N(0, ``magnitude``²)
    voxels (torch's global RNG), interpolated over the patch (bicubic in 2-D, trilinear in
    3-D) and applied with ``grid_sample``: bilinear for the image, nearest for the labels,
    reflecting at the border.

    Args:
        image: ``(C, *S)`` float image, ``S`` 2-D or 3-D.
        label: ``(1, *S)`` integer label map.
        magnitude: displacement standard deviation in voxels.
        grid: control points per axis (>= 2).

    Returns:
        The deformed image ``(C, *S)`` (its dtype) and label map ``(1, *S)`` (its dtype).
    """
    spatial = tuple(image.shape[1:])
    dims = len(spatial)
    if dims not in (2, 3):
        raise ValueError(
            f"elastic_deform needs a 2-D or 3-D image (C, *S); got shape {tuple(image.shape)}."
        )
    coarse = torch.randn(1, dims, *([grid] * dims)) * magnitude
    mode = "bicubic" if dims == 2 else "trilinear"
    field = F.interpolate(coarse, size=spatial, mode=mode, align_corners=True)[0]  # (D, *S)
    # grid_sample wants normalised (x, y[, z]) coordinates: the last spatial axis first.
    axes = [torch.linspace(-1.0, 1.0, s) for s in spatial]
    base = torch.stack(torch.meshgrid(*axes, indexing="ij"))  # (D, *S), axis order
    scale = torch.tensor([2.0 / max(1, s - 1) for s in spatial]).reshape(dims, *([1] * dims))
    coords = (base + field * scale).flip(0)  # (D, *S), reversed axis order
    sample_grid = coords.permute(*range(1, dims + 1), 0)[None]  # (1, *S, D)
    x = F.grid_sample(
        image[None].float(),
        sample_grid,
        mode="bilinear",
        padding_mode="reflection",
        align_corners=True,
    )[0].to(image.dtype)
    y = (
        F.grid_sample(
            label[None].float(),
            sample_grid,
            mode="nearest",
            padding_mode="reflection",
            align_corners=True,
        )[0]
        .round()
        .to(label.dtype)
    )
    return x, y


# --- patch datasets ------------------------------------------------------------------------------


def _pad_to(arr: np.ndarray, size: Sequence[int], spatial_from: int) -> np.ndarray:
    pads = [(0, 0)] * spatial_from
    for s, p in zip(arr.shape[spatial_from:], size, strict=True):
        extra = max(0, p - s)
        pads.append((extra // 2, extra - extra // 2))
    if any(a or b for a, b in pads):
        return np.pad(arr, pads, mode="constant")
    return arr


class _PatchDataset(torch.utils.data.Dataset):
    """Random patches (foreground-oversampled) of cached cases; randomness from torch's global
    RNG, which the shared trainer re-seeds per batch.

    With ``augment``: random flips, 90° rotations (square 2-D patches), ``intensity_jitter``
    and, with probability ``elastic.prob``, an elastic deformation (:func:`elastic_deform`).
    """

    def __init__(
        self,
        cases: Any,
        patch: Sequence[int],
        *,
        per_image: int,
        fg_fraction: float,
        augment: bool,
        intensity_jitter: float = 0.0,
        elastic: ElasticSettings | None = None,
    ) -> None:
        self.cases = cases
        self.patch = list(patch)
        self.per_image = per_image
        self.fg_fraction = fg_fraction
        self.augment = augment
        self.intensity_jitter = intensity_jitter
        self.elastic = elastic
        self._fg: list[np.ndarray] = []
        for i in range(len(cases)):
            item = cases[i]
            lbl = _pad_to(item["label"], self.patch, 0)
            fg = np.argwhere(lbl > 0)
            if len(fg) > 20000:
                fg = fg[np.linspace(0, len(fg) - 1, 20000).astype(int)]
            self._fg.append(fg)

    def __len__(self) -> int:
        return len(self.cases) * self.per_image

    def _rand(self, high: int) -> int:
        return int(torch.randint(0, max(1, high), (1,)).item())

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        k = i % len(self.cases)
        item = self.cases[k]
        img = _pad_to(item["image"], self.patch, 1)
        lbl = _pad_to(item["label"], self.patch, 0)
        shape = lbl.shape
        fg = self._fg[k]
        if len(fg) and torch.rand(()).item() < self.fg_fraction:
            centre = fg[self._rand(len(fg))]
            start = [
                int(np.clip(c - p // 2 + self._rand(p // 2 + 1) - p // 4, 0, s - p))
                for c, p, s in zip(centre, self.patch, shape, strict=True)
            ]
        else:
            start = [self._rand(s - p + 1) for p, s in zip(self.patch, shape, strict=True)]
        box = tuple(slice(a, a + p) for a, p in zip(start, self.patch, strict=True))
        x = torch.from_numpy(np.ascontiguousarray(img[(slice(None), *box)]))
        y = torch.from_numpy(np.ascontiguousarray(lbl[box]).astype(np.int64))[None]
        if self.augment:
            x, y = self._augment(x, y)
        return x.contiguous(), y.contiguous()

    def _augment(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        for d in range(len(self.patch)):
            if torch.rand(()).item() < 0.5:
                x, y = x.flip(1 + d), y.flip(1 + d)
        if len(self.patch) == 2 and self.patch[0] == self.patch[1]:
            k90 = self._rand(4)
            x, y = torch.rot90(x, k90, (1, 2)), torch.rot90(y, k90, (1, 2))
        if self.intensity_jitter > 0:
            a, b = (2 * torch.rand(2) - 1) * self.intensity_jitter
            x = x * (1 + a) + b
        if self.elastic is not None and torch.rand(()).item() < self.elastic.prob:
            x, y = elastic_deform(x, y, magnitude=self.elastic.magnitude, grid=self.elastic.grid)
        return x, y


class _FixedPatches(torch.utils.data.Dataset):
    """Deterministic validation patches (seeded once)."""

    def __init__(self, source: _PatchDataset, seed: int) -> None:
        state = torch.random.get_rng_state()
        torch.manual_seed(seed)
        aug = source.augment
        source.augment = False
        self.items = [source[i] for i in range(len(source))]
        source.augment = aug
        torch.random.set_rng_state(state)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.items[i]
