"""Segmentation and lesion-detection metrics (numpy/scipy), with physical spacing.

Overlap metrics (Dice, IoU) are per class. Surface metrics follow MONAI's conventions (and are
tested against ``monai.metrics``): a mask's surface is the set of voxels removed by one binary
erosion with a face-connected structuring element (outside the image counts as background);
distances are Euclidean in physical units (``spacing``) from each surface voxel of one mask to
the nearest surface voxel of the other.

* ``hd95``: the larger of the two directed 95th percentiles of surface distances.
* ``asd``: the mean of all surface distances in both directions (symmetric).
* ``surface_dice``: the share of surface voxels of both masks within ``tolerance`` of the other
  mask's surface (Nikolov et al. 2021, without sub-voxel areas).

Empty masks: Dice/IoU are 1 when both masks are empty and 0 when only one is; distance metrics
are ``nan`` when either mask is empty (they are undefined), and aggregates ignore ``nan``.

Lesion detection works on *instance maps* (0 = background, 1..K = instances).
:func:`instances_from_mask` makes them from a semantic mask by connected components; an
instance model can hand its own instance maps to :func:`match_lesions` directly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

__all__ = [
    "LesionMatch",
    "asd",
    "case_metrics",
    "dice",
    "hd95",
    "instances_from_mask",
    "iou",
    "match_lesions",
    "surface_dice",
    "surface_distances",
]


def _pair(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred, gt = np.asarray(pred).astype(bool), np.asarray(gt).astype(bool)
    if pred.shape != gt.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from reference {gt.shape}")
    return pred, gt


def dice(pred: np.ndarray, gt: np.ndarray) -> float:
    """Dice of two binary masks (1.0 when both are empty)."""
    pred, gt = _pair(pred, gt)
    denom = int(pred.sum()) + int(gt.sum())
    return 1.0 if denom == 0 else 2.0 * int((pred & gt).sum()) / denom


def iou(pred: np.ndarray, gt: np.ndarray) -> float:
    """Intersection over union (Jaccard) of two binary masks (1.0 when both are empty)."""
    pred, gt = _pair(pred, gt)
    union = int((pred | gt).sum())
    return 1.0 if union == 0 else int((pred & gt).sum()) / union


def _surface(mask: np.ndarray) -> np.ndarray:
    return mask ^ ndimage.binary_erosion(mask, border_value=0)


def _spacing(spacing: Sequence[float] | None, ndim: int) -> tuple[float, ...]:
    if spacing is None:
        return (1.0,) * ndim
    sp = tuple(float(s) for s in spacing)
    if len(sp) != ndim:
        raise ValueError(f"spacing has {len(sp)} values for a {ndim}-D mask")
    return sp


def surface_distances(
    pred: np.ndarray, gt: np.ndarray, spacing: Sequence[float] | None = None
) -> tuple[np.ndarray, np.ndarray] | None:
    """Distances pred-surface → gt-surface and gt-surface → pred-surface, or ``None`` if
    either mask is empty."""
    pred, gt = _pair(pred, gt)
    if not pred.any() or not gt.any():
        return None
    sp = _spacing(spacing, pred.ndim)
    # Crop to the union's bounding box (+1 voxel) to keep the distance transforms small.
    idx = np.argwhere(pred | gt)
    lo = np.maximum(idx.min(axis=0) - 1, 0)
    hi = idx.max(axis=0) + 2
    box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
    # Erode on the full image so the image border counts as background, then crop.
    sp_pred, sp_gt = _surface(pred)[box], _surface(gt)[box]
    d_to_gt = ndimage.distance_transform_edt(~sp_gt, sampling=sp)
    d_to_pred = ndimage.distance_transform_edt(~sp_pred, sampling=sp)
    return d_to_gt[sp_pred], d_to_pred[sp_gt]


def hd95(pred: np.ndarray, gt: np.ndarray, spacing: Sequence[float] | None = None) -> float:
    """Symmetric 95th-percentile Hausdorff distance (``nan`` if either mask is empty)."""
    d = surface_distances(pred, gt, spacing)
    if d is None:
        return float("nan")
    return float(max(np.percentile(d[0], 95), np.percentile(d[1], 95)))


def asd(pred: np.ndarray, gt: np.ndarray, spacing: Sequence[float] | None = None) -> float:
    """Symmetric average surface distance (``nan`` if either mask is empty)."""
    d = surface_distances(pred, gt, spacing)
    if d is None:
        return float("nan")
    return float(np.concatenate(d).mean())


def surface_dice(
    pred: np.ndarray,
    gt: np.ndarray,
    spacing: Sequence[float] | None = None,
    tolerance: float = 1.0,
) -> float:
    """Normalised surface Dice at ``tolerance`` (physical units); ``nan`` if both masks are
    empty, 0 if only one is."""
    p, g = _pair(pred, gt)
    if not p.any() and not g.any():
        return float("nan")
    d = surface_distances(p, g, spacing)
    if d is None:
        return 0.0
    within = int((d[0] <= tolerance).sum()) + int((d[1] <= tolerance).sum())
    return within / (d[0].size + d[1].size)


# --- lesion detection ---------------------------------------------------------------------------


def instances_from_mask(mask: np.ndarray, *, min_size: int = 0) -> np.ndarray:
    """Instance map from a binary mask: connected components (full connectivity: 8 in 2-D,
    26 in 3-D), numbered 1..K in scan order; components under ``min_size`` voxels dropped."""
    mask = np.asarray(mask).astype(bool)
    structure = ndimage.generate_binary_structure(mask.ndim, mask.ndim)
    labels, n = ndimage.label(mask, structure=structure)
    if min_size > 0 and n:
        sizes = np.bincount(labels.ravel(), minlength=n + 1)
        small = np.flatnonzero(sizes < min_size)
        small = small[small > 0]
        if small.size:
            labels[np.isin(labels, small)] = 0
            labels, n = ndimage.label(labels > 0, structure=structure)
    return labels.astype(np.int32)


@dataclass
class LesionMatch:
    """Lesion-level result of one case.

    Attributes:
        n_true: reference lesions.
        n_pred: predicted lesions.
        tp: reference lesions matched by a prediction.
        fp: predicted lesions matching no reference lesion.
        fn: reference lesions with no match.
        lesions: one dict per reference lesion: ``size_voxels``, ``size_mm3``, ``detected``,
            ``iou`` (best IoU with a predicted lesion).
    """

    n_true: int
    n_pred: int
    tp: int
    fp: int
    fn: int
    lesions: list[dict[str, Any]] = field(default_factory=list)


def match_lesions(
    true_instances: np.ndarray,
    pred_instances: np.ndarray,
    *,
    spacing: Sequence[float] | None = None,
    iou_threshold: float = 0.1,
) -> LesionMatch:
    """Match reference and predicted instances one-to-one by IoU (greedy, best IoU first).

    A pair matches when its IoU is at least ``iou_threshold``; each instance matches at most
    once. Inputs are instance maps (0 = background), e.g. from :func:`instances_from_mask` or
    from an instance-segmentation model.
    """
    t, p = np.asarray(true_instances), np.asarray(pred_instances)
    if t.shape != p.shape:
        raise ValueError(f"instance maps differ in shape: {t.shape} vs {p.shape}")
    sp = _spacing(spacing, t.ndim)
    voxel_mm3 = float(np.prod(sp))
    nt, npred = int(t.max(initial=0)), int(p.max(initial=0))
    t_sizes = np.bincount(t.ravel(), minlength=nt + 1)
    p_sizes = np.bincount(p.ravel(), minlength=npred + 1)
    both = (t > 0) & (p > 0)
    pairs = t[both].astype(np.int64) * (npred + 1) + p[both]
    inter = np.bincount(pairs, minlength=(nt + 1) * (npred + 1)).reshape(nt + 1, npred + 1)
    candidates = []
    for i, j in zip(*np.nonzero(inter), strict=True):
        union = t_sizes[i] + p_sizes[j] - inter[i, j]
        candidates.append((inter[i, j] / union, int(i), int(j)))
    candidates.sort(reverse=True)
    best_iou = np.zeros(nt + 1)
    for value, i, _ in candidates:
        best_iou[i] = max(best_iou[i], value)
    used_t: set[int] = set()
    used_p: set[int] = set()
    for value, i, j in candidates:
        if value < iou_threshold:
            break
        if i in used_t or j in used_p:
            continue
        used_t.add(i)
        used_p.add(j)
    lesions = [
        {
            "size_voxels": int(t_sizes[i]),
            "size_mm3": round(float(t_sizes[i]) * voxel_mm3, 3),
            "detected": i in used_t,
            "iou": round(float(best_iou[i]), 4),
        }
        for i in range(1, nt + 1)
        if t_sizes[i] > 0
    ]
    n_true = len(lesions)
    n_pred = int((p_sizes[1:] > 0).sum())
    tp = len(used_t)
    return LesionMatch(
        n_true=n_true, n_pred=n_pred, tp=tp, fp=n_pred - tp, fn=n_true - tp, lesions=lesions
    )


# --- one case ----------------------------------------------------------------------------------


def case_metrics(
    pred: np.ndarray,
    gt: np.ndarray,
    *,
    num_classes: int,
    spacing: Sequence[float] | None = None,
    tolerance: float = 1.0,
    lesions: bool = True,
    min_lesion_voxels: int = 0,
    lesion_iou: float = 0.1,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """All metrics of one case from label maps ``pred`` and ``gt`` (values 0..num_classes-1).

    Returns:
        ``(row, lesions)``: ``row`` holds per-class ``dice_<c>``, ``iou_<c>``, ``hd95_<c>``,
        ``asd_<c>``, ``surface_dice_<c>`` for foreground classes ``c``, their means over
        classes (``dice``, ``iou``, ...), voxel counts and, with ``lesions``, lesion counts
        (``true_lesions``, ``pred_lesions``, ``tp_lesions``, ``fp_lesions``, ``fn_lesions``)
        over the foreground (all classes > 0 together); ``lesions`` lists reference lesions.
    """
    pred, gt = np.asarray(pred), np.asarray(gt)
    if pred.shape != gt.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from reference {gt.shape}")
    row: dict[str, Any] = {}
    per: dict[str, list[float]] = {k: [] for k in ("dice", "iou", "hd95", "asd", "surface_dice")}
    for c in range(1, num_classes):
        p, g = pred == c, gt == c
        values = {
            "dice": dice(p, g),
            "iou": iou(p, g),
        }
        d = surface_distances(p, g, spacing)
        if d is None:
            values["hd95"] = values["asd"] = float("nan")
            values["surface_dice"] = float("nan") if not p.any() and not g.any() else 0.0
        else:
            values["hd95"] = float(max(np.percentile(d[0], 95), np.percentile(d[1], 95)))
            values["asd"] = float(np.concatenate(d).mean())
            within = int((d[0] <= tolerance).sum()) + int((d[1] <= tolerance).sum())
            values["surface_dice"] = within / (d[0].size + d[1].size)
        for k, v in values.items():
            row[f"{k}_{c}"] = v
            per[k].append(v)
    for k, vals in per.items():
        arr = np.asarray(vals, dtype=float)
        row[k] = float(np.nanmean(arr)) if np.isfinite(arr).any() else float("nan")
    row["true_voxels"] = int((gt > 0).sum())
    row["pred_voxels"] = int((pred > 0).sum())
    found: list[dict[str, Any]] = []
    if lesions:
        m = match_lesions(
            instances_from_mask(gt > 0),
            instances_from_mask(pred > 0, min_size=min_lesion_voxels),
            spacing=spacing,
            iou_threshold=lesion_iou,
        )
        row.update(
            true_lesions=m.n_true,
            pred_lesions=m.n_pred,
            tp_lesions=m.tp,
            fp_lesions=m.fp,
            fn_lesions=m.fn,
        )
        found = m.lesions
    return row, found
