"""A seeded 3-D lesion phantom: ellipsoids of varied size and contrast in textured noise.

Each phantom has known instances, so lesion-level detection (sensitivity, false positives per
volume) can be measured exactly. Used by the tests, the ``phantom3d_lesions`` example and the
detection benchmark.

A phantom *dataset* is described by a small JSON recipe file (``{"kind":
"medlearn-phantom3d", "n_cases": 16, "size": 64, "seed": 0}``) that the segmentation reader
turns into records in memory, or written out as NIfTI pairs by :func:`write_phantom_dataset`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

__all__ = [
    "LesionPhantom",
    "PHANTOM_KIND",
    "make_lesion_phantom",
    "phantom_cases",
    "write_phantom_dataset",
]

#: The ``kind`` of a phantom recipe JSON file.
PHANTOM_KIND = "medlearn-phantom3d"


@dataclass
class LesionPhantom:
    """One phantom volume.

    Attributes:
        image: float32 ``(D, H, W)`` intensities (background ~ N(0, 1) texture).
        instances: int32 ``(D, H, W)``: 0 background, 1..K lesions.
        radii: ``(K, 3)`` semi-axes in voxels.
        contrast: ``(K,)`` lesion intensity above background, in background SDs.
    """

    image: np.ndarray
    instances: np.ndarray
    radii: np.ndarray
    contrast: np.ndarray

    @property
    def mask(self) -> np.ndarray:
        """Binary lesion mask (uint8)."""
        return (self.instances > 0).astype(np.uint8)


def make_lesion_phantom(
    size: int | tuple[int, int, int] = 64,
    *,
    seed: int = 0,
    n_lesions: tuple[int, int] = (1, 5),
    radius: tuple[float, float] = (2.5, 7.0),
    contrast: tuple[float, float] = (2.0, 4.0),
    texture_sigma: float = 2.0,
) -> LesionPhantom:
    """Make one phantom.

    Args:
        size: volume side (or ``(D, H, W)``).
        seed: RNG seed; the same seed gives the same phantom.
        n_lesions: inclusive range of the lesion count.
        radius: range of ellipsoid semi-axes (voxels).
        contrast: range of lesion contrast in units of the background SD.
        texture_sigma: Gaussian smoothing (voxels) of the correlated part of the background.

    Returns:
        A :class:`LesionPhantom`; lesions are at least 3 voxels apart.
    """
    shape = (size,) * 3 if isinstance(size, int) else tuple(int(s) for s in size)
    rng = np.random.default_rng(seed)
    texture = ndimage.gaussian_filter(rng.standard_normal(shape), texture_sigma)
    texture /= texture.std() + 1e-8
    white = rng.standard_normal(shape)
    image = 0.5 * texture + 0.85 * white  # SD about 1; texture mimics tissue
    instances = np.zeros(shape, np.int32)
    grid = np.indices(shape, dtype=np.float32)
    k = int(rng.integers(n_lesions[0], n_lesions[1] + 1))
    radii, contrasts = [], []
    tries = 0
    while len(radii) < k and tries < 200:
        tries += 1
        r = rng.uniform(radius[0], radius[1], size=3)
        margin = np.ceil(r).astype(int) + 2
        centre = [rng.uniform(m, s - m) for m, s in zip(margin, shape, strict=True)]
        rot = _random_rotation(rng)
        d = (grid.reshape(3, -1).T - np.asarray(centre, np.float32)) @ rot
        inside = (((d / r) ** 2).sum(axis=1) <= 1.0).reshape(shape)
        if not inside.any():
            continue
        grown = ndimage.binary_dilation(inside, iterations=3)
        if (instances[grown] > 0).any():
            continue
        c = rng.uniform(contrast[0], contrast[1])
        label = len(radii) + 1
        instances[inside] = label
        # Soft edge: the lesion's intensity falls off over about one voxel.
        soft = ndimage.gaussian_filter(inside.astype(np.float32), 0.7)
        image += c * soft
        radii.append(r)
        contrasts.append(c)
    return LesionPhantom(
        image=image.astype(np.float32),
        instances=instances,
        radii=np.asarray(radii, np.float32).reshape(-1, 3),
        contrast=np.asarray(contrasts, np.float32),
    )


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    return (q * np.sign(np.diag(r))).astype(np.float32)


def phantom_cases(recipe: dict[str, Any]) -> list[tuple[str, LesionPhantom]]:
    """The cases of a recipe (``n_cases``, ``size``, ``seed`` and any
    :func:`make_lesion_phantom` argument); case ``i`` uses seed ``seed * 100003 + i``."""
    n = int(recipe.get("n_cases", 16))
    seed = int(recipe.get("seed", 0))
    kwargs = {
        k: (tuple(v) if isinstance(v, list) else v)
        for k, v in recipe.items()
        if k in ("size", "n_lesions", "radius", "contrast", "texture_sigma")
    }
    return [
        (f"phantom_{i:03d}", make_lesion_phantom(seed=seed * 100003 + i, **kwargs))
        for i in range(n)
    ]


def write_phantom_dataset(folder: str | Path, **recipe: Any) -> Path:
    """Write a phantom dataset as NIfTI pairs ``images/phantom_XXX.nii.gz`` and
    ``masks/phantom_XXX.nii.gz`` (1 mm isotropic) plus its ``recipe.json``; returns ``folder``."""
    import nibabel as nib

    folder = Path(folder)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "masks").mkdir(parents=True, exist_ok=True)
    for name, ph in phantom_cases(recipe):
        affine = np.eye(4)
        nib.save(nib.Nifti1Image(ph.image, affine), folder / "images" / f"{name}.nii.gz")
        nib.save(nib.Nifti1Image(ph.mask, affine), folder / "masks" / f"{name}.nii.gz")
    (folder / "recipe.json").write_text(json.dumps({"kind": PHANTOM_KIND, **recipe}, indent=2))
    return folder
