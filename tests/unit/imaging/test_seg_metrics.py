"""Segmentation metrics against MONAI's implementations; lesion matching; phantoms."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.metrics import (
    compute_average_surface_distance,
    compute_hausdorff_distance,
    compute_iou,
    compute_surface_dice,
)
from monai.metrics import compute_dice as monai_dice

from medlearn.imaging.segmentation.metrics import (
    asd,
    case_metrics,
    dice,
    hd95,
    instances_from_mask,
    iou,
    match_lesions,
    surface_dice,
)
from medlearn.imaging.segmentation.phantoms import make_lesion_phantom


def _blobs(shape, seed):
    rng = np.random.default_rng(seed)
    from scipy import ndimage

    field = ndimage.gaussian_filter(rng.standard_normal(shape), 2.0)
    gt = field > 0.05
    pred = ndimage.gaussian_filter(field + 0.05 * rng.standard_normal(shape), 1.0) > 0.02
    return pred, gt


def _onehot(mask):
    m = torch.from_numpy(mask.astype(np.float32))[None, None]
    return torch.cat([1 - m, m], dim=1)


@pytest.mark.parametrize(
    ("shape", "spacing"),
    [((40, 36), (1.0, 1.0)), ((24, 20, 16), (0.8, 1.2, 2.5)), ((30, 30), (0.5, 2.0))],
)
def test_metrics_match_monai(shape, spacing):
    pred, gt = _blobs(shape, seed=len(shape))
    assert pred.any() and gt.any() and (pred != gt).any()
    p, g = _onehot(pred), _onehot(gt)
    assert dice(pred, gt) == pytest.approx(
        float(monai_dice(p, g, include_background=False)), abs=1e-6
    )
    assert iou(pred, gt) == pytest.approx(
        float(compute_iou(p, g, include_background=False)), abs=1e-6
    )
    ref_hd = compute_hausdorff_distance(
        p, g, include_background=False, percentile=95, spacing=list(spacing)
    )
    assert hd95(pred, gt, spacing) == pytest.approx(float(ref_hd), rel=1e-5)
    ref_asd = compute_average_surface_distance(
        p, g, include_background=False, symmetric=True, spacing=list(spacing)
    )
    assert asd(pred, gt, spacing) == pytest.approx(float(ref_asd), rel=1e-5)
    ref_sd = compute_surface_dice(
        p, g, class_thresholds=[1.5], include_background=False, spacing=list(spacing)
    )
    assert surface_dice(pred, gt, spacing, tolerance=1.5) == pytest.approx(float(ref_sd), rel=1e-5)


def test_metric_edge_cases():
    empty = np.zeros((8, 8), bool)
    one = empty.copy()
    one[2:5, 2:5] = True
    assert dice(empty, empty) == 1.0 and iou(empty, empty) == 1.0
    assert dice(one, empty) == 0.0
    assert np.isnan(hd95(one, empty)) and np.isnan(asd(empty, one))
    assert surface_dice(one, empty) == 0.0 and np.isnan(surface_dice(empty, empty))
    assert hd95(one, one) == 0.0 and dice(one, one) == 1.0
    with pytest.raises(ValueError, match="shape"):
        dice(one, np.zeros((4, 4), bool))


def test_spacing_scales_distances():
    a = np.zeros((20, 20), bool)
    b = a.copy()
    a[5:10, 5:10] = True
    b[5:10, 8:13] = True
    assert hd95(a, b, (1.0, 2.0)) == pytest.approx(2 * hd95(a, b, (1.0, 1.0)))


def test_lesion_matching_counts_and_sizes():
    gt = np.zeros((30, 30, 30), np.uint8)
    gt[2:6, 2:6, 2:6] = 1  # detected
    gt[20:24, 20:24, 20:24] = 1  # missed
    gt[10:12, 2:4, 25:27] = 1  # tiny, touched by a poor prediction (IoU < 0.1)
    pred = np.zeros_like(gt)
    pred[3:7, 3:7, 3:7] = 1
    pred[12:16, 12:16, 12:16] = 1  # false positive
    pred[11:20, 3:12, 26:29] = 1
    pred[11, 3, 26] = 1
    m = match_lesions(instances_from_mask(gt), instances_from_mask(pred), spacing=(1, 1, 2))
    assert (m.n_true, m.tp, m.fn) == (3, 1, 2)
    assert m.n_pred == 3 and m.fp == 2
    sizes = sorted(les["size_voxels"] for les in m.lesions)
    assert sizes == [8, 64, 64]
    assert sorted(les["size_mm3"] for les in m.lesions) == [16.0, 128.0, 128.0]
    assert sum(les["detected"] for les in m.lesions) == 1


def test_match_is_one_to_one_and_min_size():
    gt = np.zeros((20, 20), np.uint8)
    gt[2:8, 2:8] = 1
    gt[2:8, 10:16] = 1
    pred = np.zeros_like(gt)
    pred[2:8, 2:16] = 1  # one prediction covering both lesions
    pred[18, 18] = 1
    m = match_lesions(instances_from_mask(gt), instances_from_mask(pred, min_size=2))
    assert m.tp == 1 and m.fn == 1 and m.fp == 0 and m.n_pred == 1


def test_case_metrics_multiclass():
    gt = np.zeros((16, 16), np.int64)
    gt[2:8, 2:8] = 1
    gt[9:14, 9:14] = 2
    pred = gt.copy()
    pred[9:14, 9:11] = 0
    row, lesions = case_metrics(pred, gt, num_classes=3)
    assert row["dice_1"] == 1.0
    assert row["dice_2"] == pytest.approx(2 * 15 / (15 + 25))
    assert row["dice"] == pytest.approx((1.0 + row["dice_2"]) / 2)
    assert row["true_lesions"] == 2 and row["tp_lesions"] == 2 and len(lesions) == 2


def test_phantom_is_seeded_with_known_instances():
    a = make_lesion_phantom(32, seed=5, n_lesions=(2, 4))
    b = make_lesion_phantom(32, seed=5, n_lesions=(2, 4))
    c = make_lesion_phantom(32, seed=6, n_lesions=(2, 4))
    assert np.array_equal(a.image, b.image) and not np.array_equal(a.image, c.image)
    k = int(a.instances.max())
    assert 2 <= k <= 4 and len(a.radii) == k == len(a.contrast)
    # instances are separate connected components: relabelling finds the same count
    assert int(instances_from_mask(a.mask).max()) == k
    inside = a.image[a.mask > 0].mean()
    outside = a.image[a.mask == 0].mean()
    assert inside - outside > 1.0
