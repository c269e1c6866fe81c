"""Evaluation: metrics, bootstrap confidence intervals, thresholds, calibration and reports."""
