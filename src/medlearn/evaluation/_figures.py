"""Figures of the run report, drawn with matplotlib's Agg canvas.

No pyplot: figures are :class:`matplotlib.figure.Figure` objects rendered straight to PNG, so
there is no global state, no display is needed and threads do not interfere. Each function
returns a ``data:image/png;base64,...`` URI ready for an ``<img src>``.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from medlearn.evaluation.calibration import reliability_curve
from medlearn.evaluation.metrics import ECE_BINS, auprc, auroc, ece

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "calibration_methods_png",
    "decision_curve_png",
    "gallery_png",
    "importance_png",
    "reliability_png",
    "roc_pr_pngs",
    "training_png",
]

PALETTE = (
    "#2563eb",
    "#dc2626",
    "#059669",
    "#d97706",
    "#7c3aed",
    "#0891b2",
    "#db2777",
    "#65a30d",
    "#475569",
    "#b45309",
)

_GREY = "#94a3b8"
_INK = "#1f2933"


def _new_figure(width: float, height: float, **margins: float) -> Figure:
    """A figure with fixed margins in inches (automatic layout engines double drawing time)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110)
    left, right = margins.get("left", 0.62), margins.get("right", 0.18)
    bottom, top = margins.get("bottom", 0.5), margins.get("top", 0.32)
    fig.subplots_adjust(
        left=left / width,
        right=1 - right / width,
        bottom=bottom / height,
        top=1 - top / height,
        wspace=margins.get("wspace", 0.25),
        hspace=margins.get("hspace", 0.2),
    )
    return fig


def _style(ax: Any) -> None:
    ax.grid(True, color="#e5e7eb", linewidth=0.8)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    for side in ("left", "bottom"):
        ax.spines[side].set_color("#94a3b8")
    ax.tick_params(colors="#334155", labelsize=8.5)
    ax.xaxis.label.set_color("#1f2933")
    ax.yaxis.label.set_color("#1f2933")


def _png(fig: Figure, dpi: int = 110) -> str:
    """Render ``fig`` to a ``data:image/png;base64,...`` URI."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None}, facecolor="white")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _curve_points(
    pos: np.ndarray, score: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """ROC ``(fpr, tpr)`` and precision-recall ``(recall, precision)`` points, recall ascending.

    One point per distinct score (cases with equal scores move together), as in
    :func:`~medlearn.evaluation.metrics.auroc` and :func:`~medlearn.evaluation.metrics.auprc`.
    """
    order = np.argsort(-score, kind="stable")
    s, p = score[order], pos[order]
    ends = np.r_[np.flatnonzero(s[1:] != s[:-1]), len(s) - 1]
    tps = np.cumsum(p)[ends].astype(np.float64)
    fps = np.cumsum(~p)[ends].astype(np.float64)
    n_pos, n_neg = max(tps[-1], 1.0), max(fps[-1], 1.0)
    fpr = np.r_[0.0, fps / n_neg]
    tpr = np.r_[0.0, tps / n_pos]
    recall = np.r_[0.0, tps / n_pos]
    precision = np.r_[1.0, tps / (tps + fps)]
    return fpr, tpr, recall, precision


def _confidence(y: np.ndarray, proba: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(confidence, outcome): binary p(positive) vs label; multiclass top-label vs correct."""
    if proba.shape[1] == 2:
        return proba[:, 1], y
    return proba.max(axis=1), (proba.argmax(axis=1) == y).astype(np.int64)


def _ece_of(y: np.ndarray, proba: np.ndarray) -> float:
    score = proba[:, 1] if proba.shape[1] == 2 else proba
    return ece(y, np.clip(score, 0.0, 1.0))


def _to_rgb(image: Any) -> np.ndarray:
    """``(H, W)``, ``(H, W, 1)`` or ``(H, W, 3|4)`` floats → ``(H, W, 3)`` in [0, 1]."""
    img = np.nan_to_num(np.asarray(image, dtype=np.float64))
    if img.ndim == 3 and img.shape[-1] == 1:
        img = img[..., 0]
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    if img.ndim != 3 or img.shape[-1] not in (3, 4):
        raise ValueError(f"a gallery image must be (H, W) or (H, W, 3). Got {img.shape}.")
    return np.clip(img[..., :3], 0.0, 1.0)


def _resize_nearest(array: np.ndarray, height: int, width: int) -> np.ndarray:
    rows = np.minimum((np.arange(height) * array.shape[0]) // height, array.shape[0] - 1)
    cols = np.minimum((np.arange(width) * array.shape[1]) // width, array.shape[1] - 1)
    return array[rows][:, cols]


def gallery_png(image: Any, heatmap: Any | None, *, alpha: float = 0.4, min_size: int = 160) -> str:
    """The input, and (with a heat map) the input with the jet-coloured map at ``alpha``.

    Args:
        image: ``(H, W)`` or ``(H, W, 3)`` in [0, 1].
        heatmap: ``(H, W)`` in [0, 1] (resized to the image if needed), or ``None``.
        alpha: opacity of the heat map.
        min_size: small images are enlarged (nearest neighbour) to at least this many pixels.

    Raises:
        ValueError: for arrays of the wrong rank.
    """
    from matplotlib import colormaps
    from matplotlib.image import imsave

    image = _to_rgb(image)
    h, w = image.shape[:2]
    scale = max(1, int(np.ceil(min_size / max(1, min(h, w)))))
    image = _resize_nearest(image, h * scale, w * scale)
    panels = [image]
    if heatmap is not None:
        heat = np.clip(np.nan_to_num(np.asarray(heatmap, dtype=np.float64)), 0.0, 1.0)
        if heat.ndim != 2:
            raise ValueError(f"a gallery heat map must be (H, W). Got {heat.shape}.")
        heat = _resize_nearest(heat, *image.shape[:2])
        colored = colormaps["jet"](heat)[..., :3]
        gap = np.ones((image.shape[0], max(4, image.shape[1] // 24), 3))
        panels += [gap, (1.0 - alpha) * image + alpha * colored]
    composite = np.concatenate(panels, axis=1)
    buf = io.BytesIO()
    imsave(buf, composite, format="png", metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def roc_pr_pngs(
    series: Sequence[tuple[str, np.ndarray, np.ndarray]], *, binary: bool
) -> tuple[str, str]:
    """ROC and precision-recall curves, one line per ``(label, positive mask, score)``."""
    roc_fig, pr_fig = _new_figure(4.6, 4.2), _new_figure(4.6, 4.2)
    ax_roc, ax_pr = roc_fig.add_subplot(), pr_fig.add_subplot()
    for i, (name, pos, score) in enumerate(series):
        color = PALETTE[i % len(PALETTE)]
        fpr, tpr, rec, prec = _curve_points(pos, score)
        label = "" if binary else f"{name} "
        ax_roc.plot(fpr, tpr, color=color, lw=1.8, label=f"{label}AUROC {auroc(pos, score):.3f}")
        ax_pr.step(
            rec, prec, where="pre", color=color, lw=1.8, label=f"{label}AP {auprc(pos, score):.3f}"
        )
        if binary:
            prevalence = float(pos.mean())
            ax_pr.axhline(
                prevalence, color=_GREY, ls="--", lw=1, label=f"prevalence {prevalence:.3f}"
            )
    ax_roc.plot([0, 1], [0, 1], color=_GREY, ls="--", lw=1, label="chance")
    ax_roc.set(
        xlabel="1 − specificity (false-positive rate)",
        ylabel="Sensitivity (true-positive rate)",
        xlim=(0, 1),
        ylim=(0, 1.01),
    )
    ax_pr.set(xlabel="Recall (sensitivity)", ylabel="Precision (PPV)", xlim=(0, 1), ylim=(0, 1.01))
    for ax, title, loc in (
        (ax_roc, "ROC curve", "lower right"),
        (ax_pr, "Precision–recall curve", "lower left"),
    ):
        _style(ax)
        ax.set_title(title, fontsize=10.5, color=_INK)
        ax.legend(fontsize=7.5, loc=loc, frameon=False)
    return _png(roc_fig), _png(pr_fig)


def reliability_png(y: np.ndarray, probas: Sequence[tuple[str, np.ndarray]]) -> str:
    """Reliability diagram (with ECE in the legend) and confidence histogram.

    Args:
        y: class indices ``(N,)``.
        probas: ``(label, proba (N, C))`` pairs, e.g. before and after calibration. Binary
            (``C = 2``): the positive-class probability against the label; multiclass: the
            top-label confidence against whether the top label is right.
    """
    from matplotlib.gridspec import GridSpec

    fig = _new_figure(5.2, 5.0, hspace=0.32)
    grid = GridSpec(2, 1, figure=fig, height_ratios=(3.2, 1))
    ax, hist = fig.add_subplot(grid[0]), fig.add_subplot(grid[1])
    ax.plot([0, 1], [0, 1], color=_GREY, ls="--", lw=1, label="perfect calibration")
    styles = (("#d97706", "s"), ("#2563eb", "o")) if len(probas) == 2 else (("#2563eb", "o"),)
    bins = np.linspace(0, 1, ECE_BINS + 1)
    binary = True
    for (label, proba), (color, marker) in zip(probas, styles, strict=True):
        binary = proba.shape[1] == 2
        conf, outcome = _confidence(y, proba)
        conf = np.clip(conf, 0.0, 1.0)
        mean_p, frac, _ = reliability_curve(outcome, conf, n_bins=ECE_BINS)
        ece_value = _ece_of(y, proba)
        ax.plot(
            mean_p,
            frac,
            marker=marker,
            ms=4,
            lw=1.6,
            color=color,
            label=f"{label} (ECE {ece_value:.3f})",
        )
        hist.hist(conf, bins=bins, color=color, alpha=0.45, label=label)
    ax.set(
        xlim=(0, 1),
        ylim=(0, 1.01),
        ylabel="Observed fraction positive" if binary else "Observed accuracy",
    )
    ax.legend(fontsize=7.5, loc="upper left", frameon=False)
    ax.set_title("Reliability diagram (test)", fontsize=10.5, color=_INK)
    hist.set(
        xlim=(0, 1),
        ylabel="cases",
        xlabel="Predicted probability" if binary else "Top-label confidence",
    )
    for a in (ax, hist):
        _style(a)
    return _png(fig)


def training_png(
    rows: Sequence[Mapping[str, Any]], monitored: str | None, monitored_title: str
) -> str:
    """Loss (train solid, validation dashed) and the monitored metric per epoch and member."""
    members = sorted({int(r.get("member", 0) or 0) for r in rows})
    panels = ["Loss"] + ([monitored_title] if monitored else [])
    fig = _new_figure(4.4 * len(panels), 3.6)
    axes = [fig.add_subplot(1, len(panels), i + 1) for i in range(len(panels))]

    def series(member: int, key: str) -> tuple[np.ndarray, np.ndarray]:
        pts = []
        for i, r in enumerate(rows):
            if int(r.get("member", 0) or 0) != member:
                continue
            v = r.get(key)
            if isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v):
                pts.append((float(r.get("epoch", i)), float(v)))
        pts.sort()
        return np.array([p[0] for p in pts]), np.array([p[1] for p in pts])

    for m_i, member in enumerate(members):
        color = PALETTE[m_i % len(PALETTE)]
        prefix = f"member {member} " if len(members) > 1 else ""
        for key, ls, name in (("train_loss", "-", "train"), ("val_loss", "--", "val")):
            x, v = series(member, key)
            if x.size:
                axes[0].plot(
                    x, v, ls=ls, color=color, lw=1.6, marker="o", ms=2.5, label=prefix + name
                )
        if monitored:
            x, v = series(member, monitored)
            if x.size:
                axes[1].plot(
                    x, v, color=color, lw=1.6, marker="o", ms=2.5, label=prefix.strip() or monitored
                )
    for ax, title in zip(axes, panels, strict=True):
        _style(ax)
        ax.set_title(title, fontsize=10.5, color=_INK)
        ax.set_xlabel("epoch")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7.5, frameon=False)
    return _png(fig)


def calibration_methods_png(y: np.ndarray, probas: Sequence[tuple[str, np.ndarray]]) -> str:
    """Reliability curves of several calibration methods on one set of labels.

    Args:
        y: class indices ``(N,)``.
        probas: ``(label, proba (N, C))`` per method (label includes e.g. the ECE).
    """
    fig = _new_figure(5.2, 4.2)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot([0, 1], [0, 1], color=_GREY, ls="--", lw=1, label="perfect calibration")
    binary = True
    for k, (label, proba) in enumerate(probas):
        binary = proba.shape[1] == 2
        conf, outcome = _confidence(y, proba)
        mean_p, frac, _ = reliability_curve(outcome, np.clip(conf, 0.0, 1.0), n_bins=ECE_BINS)
        ax.plot(
            mean_p,
            frac,
            marker="os^dv"[k % 5],
            ms=3.5,
            lw=1.4,
            color=PALETTE[k % len(PALETTE)],
            label=f"{label} (ECE {_ece_of(y, proba):.3f})",
        )
    ax.set(
        xlim=(0, 1),
        ylim=(0, 1.01),
        xlabel="Predicted probability" if binary else "Top-label confidence",
        ylabel="Observed fraction positive" if binary else "Observed accuracy",
    )
    ax.legend(fontsize=7.5, loc="upper left", frameon=False)
    ax.set_title("Reliability by calibration method", fontsize=10.5, color=_INK)
    _style(ax)
    return _png(fig)


def decision_curve_png(curve: Mapping[str, Any]) -> str:
    """Net benefit of the model, treat-all and treat-none against the threshold probability.

    Args:
        curve: the output of :func:`medlearn.evaluation.decision_curve.decision_curve`.
    """
    t = np.asarray(curve["thresholds"], dtype=float)
    model = np.asarray(curve["model"], dtype=float)
    treat_all = np.asarray(curve["treat_all"], dtype=float)
    fig = _new_figure(5.6, 3.9)
    ax = fig.add_subplot(1, 1, 1)
    for lo, hi in curve.get("useful_ranges") or []:
        ax.axvspan(lo, hi, color="#dcfce7", lw=0)
    ax.plot(t, model, color=PALETTE[0], lw=1.8, label="model")
    ax.plot(t, treat_all, color=PALETTE[3], lw=1.2, ls="-.", label="treat all")
    ax.axhline(0.0, color=_INK, lw=1.0, ls=":", label="treat none")
    prevalence = float(curve.get("prevalence") or 0.0)
    top = max(prevalence, float(np.nanmax(model)) if model.size else 0.0, 0.01)
    ax.set(
        xlim=(0, 1),
        ylim=(-0.25 * top, 1.1 * top),
        xlabel="Threshold probability",
        ylabel="Net benefit",
    )
    ax.legend(fontsize=7.5, loc="upper right", frameon=False)
    ax.set_title("Decision curve (green: model useful)", fontsize=10.5, color=_INK)
    _style(ax)
    return _png(fig)


def importance_png(
    features: Sequence[str],
    values: Sequence[float],
    *,
    errors: Sequence[float] | None = None,
    xlabel: str = "importance",
    top: int = 20,
) -> str:
    """Horizontal bar chart of the ``top`` features by value (largest at the top).

    Args:
        features: feature names.
        values: one importance per feature.
        errors: optional error bars (e.g. permutation standard deviations).
        xlabel: the x-axis label.
        top: how many features to draw.
    """
    vals = np.asarray(values, dtype=float)
    order = np.argsort(-np.nan_to_num(vals, nan=-np.inf), kind="stable")[:top][::-1]
    names = [str(features[i]) for i in order]
    height = 0.9 + 0.24 * len(order)
    width_left = min(2.6, 0.35 + 0.065 * max((len(n) for n in names), default=4))
    fig = _new_figure(5.6, height, left=width_left, bottom=0.45, top=0.3)
    ax = fig.add_subplot(1, 1, 1)
    err = None if errors is None else np.asarray(errors, dtype=float)[order]
    ax.barh(np.arange(len(order)), vals[order], xerr=err, color=PALETTE[0], alpha=0.85)
    ax.set_yticks(np.arange(len(order)), names)
    ax.set_xlabel(xlabel)
    _style(ax)
    ax.grid(True, axis="x", color="#e5e7eb", linewidth=0.8)
    ax.grid(False, axis="y")
    return _png(fig)
