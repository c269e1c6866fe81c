"""The ``segmentation`` task handler: per-case metrics with case-bootstrap CIs, lesion
detection, overlays, NIfTI outputs and the report sections.

``predictions.parquet`` holds one row per case (``id``, ``patient_id``, ``split``, the
per-case metrics, voxel and lesion counts). ``metrics.json`` holds ``dice``, ``iou``,
``hd95``, ``asd``, ``surface_dice`` (means over cases, foreground classes averaged) and
``lesion_sensitivity``, ``lesion_fp_per_volume``, ``lesion_f1`` (pooled over cases), each with a
case-level bootstrap 95% CI; per-class values go under ``per_class``.
"""

from __future__ import annotations

import base64
import html
import io
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medlearn._io import atomic_write_bytes, atomic_write_json
from medlearn.data import Record
from medlearn.errors import DataValidationError
from medlearn.registry import TASKS
from medlearn.tasks import ReportParts, RunContext, TaskOutcome

__all__ = [
    "MIN_SIZE_CANDIDATES",
    "SEGMENTATION_METRICS",
    "SegmentationTask",
    "THRESHOLD_CANDIDATES",
    "choose_min_lesion_voxels",
    "choose_threshold",
    "score_frame",
]

#: Metric names of a segmentation run, in report order.
SEGMENTATION_METRICS = (
    "dice",
    "iou",
    "hd95",
    "asd",
    "surface_dice",
    "lesion_sensitivity",
    "lesion_fp_per_volume",
    "lesion_f1",
)
_LOWER_IS_BETTER = {"hd95", "asd", "lesion_fp_per_volume"}


def _pooled(frame: pd.DataFrame, name: str) -> float:
    tp = float(frame["tp_lesions"].sum())
    fp = float(frame["fp_lesions"].sum())
    fn = float(frame["fn_lesions"].sum())
    if name == "lesion_sensitivity":
        return tp / (tp + fn) if tp + fn else float("nan")
    if name == "lesion_fp_per_volume":
        return fp / len(frame) if len(frame) else float("nan")
    return 2 * tp / (2 * tp + fp + fn) if (2 * tp + fp + fn) else float("nan")


def _value(frame: pd.DataFrame, name: str) -> float:
    if name.startswith("lesion_"):
        return _pooled(frame, name)
    vals = frame[name].to_numpy(dtype=float)
    return float(np.nanmean(vals)) if np.isfinite(vals).any() else float("nan")


def score_frame(
    frame: pd.DataFrame,
    metrics: Sequence[str] = SEGMENTATION_METRICS,
    *,
    bootstrap: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Metrics with 95% CIs from a per-case table; CIs resample patients (then their cases).

    Args:
        frame: rows of per-case metrics (as written to ``predictions.parquet``).
        metrics: names from :data:`SEGMENTATION_METRICS`.
        bootstrap: resamples (0: no CIs).
        seed: bootstrap seed.

    Returns:
        ``{name: {"value": float | None, "ci95": [lo, hi] | None}}``.
    """
    frame = frame.reset_index(drop=True)
    out: dict[str, Any] = {}
    if frame.empty:
        return {m: {"value": None, "ci95": None} for m in metrics}
    groups = frame["patient_id"].astype(str).to_numpy() if "patient_id" in frame else None
    uniq, inv = np.unique(groups, return_inverse=True) if groups is not None else (None, None)
    rng = np.random.default_rng(seed)
    samples = []
    for _ in range(bootstrap):
        if uniq is not None and len(uniq) < len(frame):
            pick = rng.integers(0, len(uniq), len(uniq))
            rows = np.concatenate([np.flatnonzero(inv == g) for g in pick])
        else:
            rows = rng.integers(0, len(frame), len(frame))
        samples.append(frame.iloc[rows])
    for m in metrics:
        if m.startswith("lesion_") and "tp_lesions" not in frame:
            continue
        v = _value(frame, m)
        ci = None
        if samples:
            bs = np.array([_value(s, m) for s in samples])
            bs = bs[np.isfinite(bs)]
            if bs.size:
                ci = [
                    round(float(np.percentile(bs, 2.5)), 6),
                    round(float(np.percentile(bs, 97.5)), 6),
                ]
        out[m] = {"value": round(v, 6) if np.isfinite(v) else None, "ci95": ci}
    return out


#: Candidate minimum component sizes (voxels) for ``min_lesion_voxels: auto``.
MIN_SIZE_CANDIDATES = (0, 5, 10, 20, 30, 50, 75, 100, 150, 200)


def choose_min_lesion_voxels(
    records: Sequence[Record],
    masks: Sequence[np.ndarray],
    *,
    iou_threshold: float = 0.1,
    candidates: Sequence[int] = MIN_SIZE_CANDIDATES,
) -> tuple[int, dict[str, float]]:
    """The minimum predicted-component size with the best pooled lesion F1 on labelled
    ``records`` (ties: the smaller size); ``(0, {})`` without records.

    Returns:
        ``(size, {str(candidate): f1})``.
    """
    from medlearn.imaging.segmentation.metrics import instances_from_mask, match_lesions

    if not records:
        return 0, {}
    truth = [instances_from_mask(np.asarray(r["target"]) > 0) for r in records]
    scores: dict[str, float] = {}
    best, best_f1 = 0, -1.0
    for c in candidates:
        tp = fp = fn = 0
        for r, t, m in zip(records, truth, masks, strict=True):
            res = match_lesions(
                t,
                instances_from_mask(m > 0, min_size=c),
                spacing=(r.get("meta") or {}).get("spacing"),
                iou_threshold=iou_threshold,
            )
            tp, fp, fn = tp + res.tp, fp + res.fp, fn + res.fn
        f1 = 2 * tp / (2 * tp + fp + fn) if (2 * tp + fp + fn) else 1.0
        scores[str(c)] = round(f1, 4)
        if f1 > best_f1 + 1e-12:
            best, best_f1 = int(c), f1
    return best, scores


#: Candidate foreground thresholds for ``threshold: auto``.
THRESHOLD_CANDIDATES = tuple(round(0.2 + 0.05 * i, 2) for i in range(13))  # 0.2 ... 0.8


def choose_threshold(
    records: Sequence[Record],
    probs: Sequence[np.ndarray],
    *,
    candidates: Sequence[float] = THRESHOLD_CANDIDATES,
) -> tuple[float, dict[str, float]]:
    """The foreground probability threshold with the best mean case Dice on labelled
    binary ``records`` (ties: the one closest to 0.5); ``(0.5, {})`` without records.

    Args:
        records: cases with binary ``target`` masks.
        probs: their class probabilities ``(2, *spatial)``, in the same order.
        candidates: thresholds to try.

    Returns:
        ``(threshold, {str(candidate): mean Dice})``.
    """
    if not records:
        return 0.5, {}
    truth = [np.asarray(r["target"]) > 0 for r in records]
    scores: dict[str, float] = {}
    best, best_dice = 0.5, -1.0
    for c in sorted(candidates, key=lambda v: (abs(v - 0.5), v)):
        dices = []
        for t, p in zip(truth, probs, strict=True):
            pred = p[1] >= c
            denom = int(pred.sum()) + int(t.sum())
            dices.append(2.0 * int((pred & t).sum()) / denom if denom else 1.0)
        dice = float(np.mean(dices))
        scores[str(c)] = round(dice, 5)
        if dice > best_dice + 1e-12:
            best, best_dice = float(c), dice
    return best, dict(sorted(scores.items(), key=lambda kv: float(kv[0])))


def _chosen_metrics(cfg: Any) -> list[str]:
    asked = [
        m for m in (cfg.evaluation.metrics if cfg is not None else []) if m in SEGMENTATION_METRICS
    ]
    return asked or list(SEGMENTATION_METRICS)


def _case_rows(
    learner: Any, records: Sequence[Record], masks: Sequence[np.ndarray], split: str
) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    from medlearn.imaging.segmentation.metrics import case_metrics

    rows, lesions = [], []
    for rec, pred in zip(records, masks, strict=True):
        spacing = (rec.get("meta") or {}).get("spacing")
        row, found = case_metrics(
            pred,
            np.asarray(rec["target"]),
            num_classes=len(learner.classes),
            spacing=spacing,
            tolerance=learner.surface_tolerance,
            min_lesion_voxels=0,
            lesion_iou=learner.lesion_iou,
        )
        rows.append({"id": rec["id"], "patient_id": rec["patient_id"], "split": split, **row})
        lesions.extend({"id": rec["id"], "split": split, **f} for f in found)
    return pd.DataFrame(rows), lesions


def _per_class(frame: pd.DataFrame, classes: Sequence[str]) -> dict[str, Any]:
    out = {}
    for c in range(1, len(classes)):
        entry = {}
        for m in ("dice", "iou", "hd95", "asd", "surface_dice"):
            col = f"{m}_{c}"
            if col in frame:
                vals = frame[col].to_numpy(dtype=float)
                entry[m] = round(float(np.nanmean(vals)), 6) if np.isfinite(vals).any() else None
        out[classes[c]] = entry
    return out


def _overlay_centre(mask: np.ndarray) -> np.ndarray:
    """Centroid of the largest foreground component (the middle when there is none)."""
    from medlearn.imaging.segmentation.metrics import instances_from_mask

    inst = instances_from_mask(mask > 0)
    if inst.max() == 0:
        return np.array(mask.shape) // 2
    largest = int(np.argmax(np.bincount(inst.ravel())[1:])) + 1
    return np.argwhere(inst == largest).mean(0).astype(int)


def _save_overlays(
    path: Path,
    learner: Any,
    records: Sequence[Record],
    masks: Sequence[np.ndarray],
    frame: pd.DataFrame,
    n: int = 4,
) -> None:
    """Middle slices (2-D: the image) of the worst and best cases by Dice: image, truth,
    prediction, for each plane."""
    if frame.empty:
        return
    order = np.argsort(frame["dice"].to_numpy(dtype=float), kind="stable")
    picks = list(dict.fromkeys([*order[: n // 2 or 1].tolist(), *order[::-1][: n // 2].tolist()]))
    arrays: dict[str, np.ndarray] = {"rows": np.array(picks)}
    for k, i in enumerate(picks):
        img = records[i]["input"][0].astype(np.float32)
        gt = np.asarray(records[i]["target"])
        pred = masks[i]
        centre = _overlay_centre(gt if (gt > 0).any() else pred)
        if img.ndim == 2:
            planes = {"slice": (img, gt, pred)}
        else:
            planes = {
                "axial": (img[:, :, centre[2]], gt[:, :, centre[2]], pred[:, :, centre[2]]),
                "coronal": (img[:, centre[1], :], gt[:, centre[1], :], pred[:, centre[1], :]),
                "sagittal": (img[centre[0]], gt[centre[0]], pred[centre[0]]),
            }
        for plane, (a, b, c) in planes.items():
            arrays[f"{k}_{plane}_image"] = a
            arrays[f"{k}_{plane}_true"] = b.astype(np.int16)
            arrays[f"{k}_{plane}_pred"] = c.astype(np.int16)
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


@TASKS.register("segmentation")
class SegmentationTask:
    """The handler for ``task: segmentation`` (2-D/3-D, binary or multi-class)."""

    def _split(self, learner: Any, records: Sequence[Record], split: str, tta: bool):
        masks = learner.predict_masks(records, tta=tta or None)
        frame, lesions = _case_rows(learner, records, masks, split)
        return masks, frame, lesions

    def run(self, ctx: RunContext) -> TaskOutcome:
        from medlearn.imaging.segmentation.learner import remove_small_components

        cfg, parts, learner = ctx.cfg, ctx.parts, ctx.learner
        ctx.echo("[4/6] segmenting val and test cases (sliding window, Gaussian blending)")
        splits = [s for s in ("val", "test") if parts.get(s)]
        t0 = time.perf_counter()
        tta = cfg.evaluation.tta or None
        post: dict[str, Any] = {"min_lesion_voxels": learner.min_lesion_voxels}
        raw: dict[str, list[np.ndarray]] = {}
        if learner.threshold == "auto":
            val = parts.get("val") or []
            probs = [learner.predict_proba(r, tta=tta) for r in val]
            thr, thr_scores = choose_threshold(val, probs)
            learner.set_threshold(thr)
            post["threshold"] = {"value": thr, "chosen_on": "val", "val_dice": thr_scores}
            ctx.echo(f"      threshold={thr} (best Dice on val)")
            if val:
                raw["val"] = [learner.labels_from_proba(p) for p in probs]
        for s in splits:
            if s not in raw:
                raw[s] = learner.predict_masks(parts[s], tta=tta, min_voxels=0)
        if learner.min_lesion_voxels is None:
            size, scores = choose_min_lesion_voxels(
                parts.get("val") or [], raw.get("val") or [], iou_threshold=learner.lesion_iou
            )
            learner.set_min_lesion_voxels(size)
            post.update(min_lesion_voxels=size, chosen_on="val", val_lesion_f1=scores)
            ctx.echo(f"      min_lesion_voxels={size} (best lesion F1 on val)")
        frames, lesions, per_class, metrics = [], [], {}, {}
        for s in splits:
            masks = [remove_small_components(m, learner.min_lesion_voxels or 0) for m in raw[s]]
            frame, found = _case_rows(learner, parts[s], masks, s)
            frames.append(frame)
            lesions.extend(found)
            per_class[s] = _per_class(frame, learner.classes)
            if s == "test":
                _save_overlays(ctx.run_dir / "overlays.npz", learner, parts[s], masks, frame)
        seconds = time.perf_counter() - t0
        frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
        ctx.echo("[5/6] evaluating with case-level bootstrap CIs")
        for s in ("test", "val"):
            if s in splits:
                metrics[s] = self._score(frame[frame["split"] == s], cfg)
        atomic_write_json(ctx.run_dir / "lesions.json", lesions)
        return TaskOutcome(
            predictions=frame,
            metrics=metrics,
            doc={"per_class": per_class, "classes": list(learner.classes), "postprocessing": post},
            manifest={"lesion_iou": learner.lesion_iou, "postprocessing": post},
            predict_seconds=seconds,
        )

    def _score(self, frame: pd.DataFrame, cfg: Any) -> dict[str, Any]:
        return score_frame(
            frame,
            _chosen_metrics(cfg),
            bootstrap=cfg.evaluation.bootstrap if cfg is not None else 1000,
            seed=cfg.training.seed if cfg is not None else 0,
        )

    def score(self, frame: pd.DataFrame, cfg: Any) -> dict[str, Any]:
        """Metrics with CIs of a per-case table (e.g. pooled out-of-fold cases)."""
        return self._score(frame, cfg)

    def evaluate(
        self,
        learner: Any,
        manifest: dict[str, Any],
        cfg: Any,
        records: Sequence[Record],
        out_dir: Path,
    ) -> TaskOutcome:
        unlabelled = [r["id"] for r in records if r["target"] is None]
        if unlabelled:
            raise DataValidationError(
                f"{len(unlabelled)} case(s) have no mask: {', '.join(unlabelled[:10])}.",
                hint="Evaluation needs a mask for every case.",
            )
        tta = bool(cfg.evaluation.tta) if cfg is not None else False
        t0 = time.perf_counter()
        masks, frame, lesions = self._split(learner, records, "test", tta)
        seconds = time.perf_counter() - t0
        _save_overlays(Path(out_dir) / "overlays.npz", learner, records, masks, frame)
        atomic_write_json(Path(out_dir) / "lesions.json", lesions)
        return TaskOutcome(
            predictions=frame,
            metrics={"test": self._score(frame, cfg)},
            doc={"per_class": {"test": _per_class(frame, learner.classes)}},
            predict_seconds=seconds,
        )

    def predict(
        self,
        learner: Any,
        manifest: dict[str, Any],
        records: Sequence[Record],
        explain_dir: Path | None = None,
        output_dir: Path | None = None,
    ) -> list[dict[str, Any]]:
        from medlearn.imaging.segmentation.metrics import instances_from_mask
        from medlearn.imaging.segmentation.readers import save_prediction

        out = Path(output_dir) if output_dir is not None else Path("predictions")
        rows: list[dict[str, Any]] = []
        for rec in records:
            try:
                labels = learner.predict_masks([rec])[0]
            except DataValidationError as exc:
                rows.append({"input": rec["id"], "error": exc.message})
                continue
            meta = rec.get("meta") or {}
            path = save_prediction(labels, meta, out, str(meta.get("source") or rec["id"]))
            spacing = meta.get("spacing") or [1.0] * labels.ndim
            voxel = float(np.prod(spacing))
            inst = instances_from_mask(labels > 0)
            sizes = np.bincount(inst.ravel())[1:]
            rows.append(
                {
                    "input": rec["id"],
                    "output": str(path),
                    "shape": list(labels.shape),
                    "voxels": {
                        learner.classes[c]: int((labels == c).sum())
                        for c in range(1, len(learner.classes))
                    },
                    "lesions": int(len(sizes)),
                    "lesion_volumes_mm3": [round(float(s) * voxel, 3) for s in sizes],
                    "model": manifest.get("name"),
                }
            )
        return rows

    # -- report -------------------------------------------------------------------------------
    def report_sections(
        self,
        run_dir: Path,
        doc: dict[str, Any],
        frame: pd.DataFrame,
        cfg: Any,
        manifest: dict[str, Any],
    ) -> ReportParts:
        classes = list(manifest.get("classes") or doc.get("classes") or [])
        sections = [("seg-metrics", "Segmentation metrics", _metric_table(doc, classes))]
        split = (
            "test"
            if (frame["split"] == "test").any()
            else str(frame["split"].iloc[0])
            if len(frame)
            else "test"
        )
        part = frame[frame["split"] == split]
        if not part.empty:
            sections.append(
                ("seg-cases", f"Per-case results ({split}, worst first)", _case_table(part))
            )
            if "true_lesions" in part:
                sections.append(
                    (
                        "seg-lesions",
                        "Lesion counts: predicted vs true",
                        _lesion_section(part, run_dir),
                    )
                )
        overlays = run_dir / "overlays.npz"
        if overlays.is_file():
            sections.append(
                (
                    "seg-overlays",
                    "Overlays (green: truth, red: prediction)",
                    _overlay_section(overlays, part),
                )
            )
        return ReportParts(sections=sections, classes=classes)


def _fmt(v: Any) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "—"
    return f"{v:.3f}" if isinstance(v, float) else html.escape(str(v))


def _metric_table(doc: dict[str, Any], classes: Sequence[str]) -> str:
    rows = []
    for split, block in doc.get("metrics", {}).items():
        for name, entry in block.items():
            if not isinstance(entry, dict) or "value" not in entry:
                continue
            ci = entry.get("ci95")
            ci_txt = f"{ci[0]:.3f}–{ci[1]:.3f}" if ci else "—"
            arrow = "lower is better" if name in _LOWER_IS_BETTER else "higher is better"
            rows.append(
                f"<tr><td>{html.escape(split)}</td><td>{html.escape(name)}</td>"
                f"<td>{_fmt(entry.get('value'))}</td><td>{ci_txt}</td><td>{arrow}</td></tr>"
            )
    per = doc.get("per_class", {})
    extra = ""
    for split, by_class in per.items():
        if len(by_class) < 1:
            continue
        body = "".join(
            f"<tr><td>{html.escape(c)}</td>"
            + "".join(
                f"<td>{_fmt(v.get(m))}</td>" for m in ("dice", "iou", "hd95", "asd", "surface_dice")
            )
            + "</tr>"
            for c, v in by_class.items()
        )
        extra += (
            f"<h3>Per class ({html.escape(split)})</h3><table><thead><tr><th>class</th>"
            "<th>Dice</th><th>IoU</th><th>HD95</th><th>ASD</th><th>surface Dice</th></tr>"
            f"</thead><tbody>{body}</tbody></table>"
        )
    return (
        "<table><thead><tr><th>split</th><th>metric</th><th>value</th><th>95% CI</th><th></th></tr>"
        f"</thead><tbody>{''.join(rows)}</tbody></table>{extra}"
        "<p>CIs: bootstrap over cases (patients). Distances in the images' physical units (mm).</p>"
    )


def _case_table(part: pd.DataFrame) -> str:
    cols = [
        c
        for c in (
            "dice",
            "iou",
            "hd95",
            "asd",
            "surface_dice",
            "true_lesions",
            "pred_lesions",
            "tp_lesions",
            "fp_lesions",
        )
        if c in part
    ]
    part = part.sort_values("dice", kind="stable")
    body = "".join(
        f"<tr><td>{html.escape(str(r['id']))}</td>"
        + "".join(
            f"<td>{_fmt(r[c] if not isinstance(r[c], (np.integer,)) else int(r[c]))}</td>"
            for c in cols
        )
        + "</tr>"
        for _, r in part.iterrows()
    )
    head = "".join(f"<th>{c}</th>" for c in cols)
    return f"<table><thead><tr><th>case</th>{head}</tr></thead><tbody>{body}</tbody></table>"


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _lesion_section(part: pd.DataFrame, run_dir: Path) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(8, 3.2))
    t, p = part["true_lesions"].to_numpy(), part["pred_lesions"].to_numpy()
    axes[0].scatter(t, p, alpha=0.7)
    hi = max(1, int(max(t.max(initial=0), p.max(initial=0))))
    axes[0].plot([0, hi], [0, hi], "k--", lw=1)
    axes[0].set_xlabel("true lesions per case")
    axes[0].set_ylabel("predicted lesions per case")
    lesions_path = run_dir / "lesions.json"
    text = ""
    if lesions_path.is_file():
        import json

        found = [
            r
            for r in json.loads(lesions_path.read_text())
            if r.get("split") == part["split"].iloc[0]
        ]
        if found:
            sizes = np.array([r["size_mm3"] for r in found])
            det = np.array([r["detected"] for r in found])
            bins = np.quantile(sizes, [0, 0.33, 0.66, 1.0])
            labels = []
            rates = []
            for lo, hi_ in zip(bins[:-1], bins[1:], strict=True):
                sel = (sizes >= lo) & (sizes <= hi_)
                labels.append(f"{lo:.0f}–{hi_:.0f}")
                rates.append(det[sel].mean() if sel.any() else 0)
            axes[1].bar(labels, rates)
            axes[1].set_ylim(0, 1.05)
            axes[1].set_xlabel("lesion size (mm³)")
            axes[1].set_ylabel("sensitivity")
            text = f"<p>{int(det.sum())} of {len(det)} true lesions detected.</p>"
    fig.tight_layout()
    return f'<img src="{_png(fig)}" alt="lesion counts">{text}'


def _overlay_section(path: Path, part: pd.DataFrame) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    html_parts = []
    with np.load(path, allow_pickle=False) as z:
        rows = z["rows"].tolist()
        for k, row in enumerate(rows):
            planes = sorted({key.split("_")[1] for key in z.files if key.startswith(f"{k}_")})
            planes = [p for p in ("axial", "coronal", "sagittal", "slice") if p in planes]
            fig, axes = plt.subplots(1, len(planes), figsize=(3 * len(planes), 3), squeeze=False)
            for ax, plane in zip(axes[0], planes, strict=True):
                img = z[f"{k}_{plane}_image"]
                ax.imshow(
                    img.T if img.ndim == 2 and plane != "slice" else img,
                    cmap="gray",
                    origin="lower" if plane != "slice" else "upper",
                )
                for key, colour in (("true", "lime"), ("pred", "red")):
                    m = z[f"{k}_{plane}_{key}"]
                    m = m.T if plane != "slice" else m
                    if (m > 0).any():
                        ax.contour(m > 0, levels=[0.5], colors=colour, linewidths=0.8)
                ax.set_title(plane)
                ax.axis("off")
            case = str(part.iloc[row]["id"]) if row < len(part) else "?"
            dsc = float(part.iloc[row]["dice"]) if row < len(part) else float("nan")
            html_parts.append(
                f'<figure><img src="{_png(fig)}" alt="overlay"><figcaption>'
                f"{html.escape(case)} — Dice {_fmt(dsc)}</figcaption></figure>"
            )
    return "".join(html_parts)
