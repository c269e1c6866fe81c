"""Explanations of model predictions: Grad-CAM heatmaps and image overlays, SHAP values and
permutation importance for tabular models.

A layer package: it never imports a domain. Callers say what to explain (e.g. the
``target_layer`` of a CNN, which imaging models declare as ``MODELS.meta(name)["cam_layer"]``).
"""

from __future__ import annotations

from medlearn.explain.gradcam import gradcam, overlay, save_overlay_png
from medlearn.explain.shap_values import permutation_scores, shap_values

__all__ = ["gradcam", "overlay", "permutation_scores", "save_overlay_png", "shap_values"]
