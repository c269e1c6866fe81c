"""Explanations of model predictions: Grad-CAM heatmaps and image overlays.

A layer package: it never imports a domain. Callers say what to explain (e.g. the
``target_layer`` of a CNN, which imaging models declare as ``MODELS.meta(name)["cam_layer"]``).
"""

from __future__ import annotations

from medlearn.explain.gradcam import gradcam, overlay, save_overlay_png

__all__ = ["gradcam", "overlay", "save_overlay_png"]
