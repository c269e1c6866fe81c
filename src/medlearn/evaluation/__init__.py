"""Evaluation: metrics, bootstrap confidence intervals, thresholds, calibration and reports.

One metrics module serves training, evaluation, the CLI and the server, so numbers never
disagree. Metrics are registered in :data:`medlearn.registry.METRICS`
(``METRICS.get("auroc")``); :func:`evaluate_predictions` adds bootstrap 95% CIs.

Example::

    from medlearn.evaluation import evaluate_predictions
    out = evaluate_predictions(y, proba, task="binary", metrics=["auroc", "f1"])
    out["auroc"]  # {"value": 0.951, "ci95": [0.935, 0.966]}
"""

from __future__ import annotations

from medlearn.evaluation._bootstrap import (
    evaluate_predictions,
    paired_bootstrap_diff,
    subgroup_metrics,
)
from medlearn.evaluation.calibration import (
    CALIBRATION_METHODS,
    IsotonicCalibrator,
    PlattScaler,
    TemperatureScaler,
    apply_calibration,
    calibration_candidates,
    choose_calibration,
    fit_calibrator,
    log_loss,
    reliability_curve,
    softmax,
)
from medlearn.evaluation.decision_curve import decision_curve, net_benefit, useful_ranges
from medlearn.evaluation.metrics import (
    accuracy,
    auprc,
    auroc,
    balanced_accuracy,
    brier,
    ece,
    f1,
    mae,
    r2,
    rmse,
    sensitivity,
    specificity,
)
from medlearn.evaluation.report import GalleryItem, ReportInputs, build_report, write_report
from medlearn.evaluation.subgroups import subgroup_analysis, subgroup_labels
from medlearn.evaluation.threshold import choose_threshold

__all__ = [
    "CALIBRATION_METHODS",
    "GalleryItem",
    "IsotonicCalibrator",
    "PlattScaler",
    "ReportInputs",
    "TemperatureScaler",
    "accuracy",
    "apply_calibration",
    "auprc",
    "auroc",
    "balanced_accuracy",
    "brier",
    "build_report",
    "calibration_candidates",
    "choose_calibration",
    "choose_threshold",
    "decision_curve",
    "ece",
    "evaluate_predictions",
    "f1",
    "fit_calibrator",
    "log_loss",
    "mae",
    "net_benefit",
    "paired_bootstrap_diff",
    "r2",
    "reliability_curve",
    "rmse",
    "sensitivity",
    "softmax",
    "specificity",
    "subgroup_analysis",
    "subgroup_labels",
    "subgroup_metrics",
    "useful_ranges",
    "write_report",
]
