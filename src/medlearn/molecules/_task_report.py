"""Report sections of the molecule task handlers: per-target tables, scatter and ROC/PR
figures, uncertainty calibration and the atom-attribution drawings."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medlearn.errors import DataValidationError
from medlearn.molecules._task_metrics import (
    _MIN_VAR,
    ATTRIBUTIONS_FILE,
    _col,
    _frame_names,
    coverage_curve,
    flat_variance_targets,
)


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _fmt_entry(entry: Any) -> str:
    if not isinstance(entry, dict) or entry.get("value") is None:
        note = entry.get("note") if isinstance(entry, dict) else None
        return f'<span class="muted" title="{_e(note or "")}">—</span>'
    text = f"{entry['value']:.3f}"
    ci = entry.get("ci95")
    if isinstance(ci, list) and len(ci) == 2:
        text += f' <span class="ci">({ci[0]:.3f}–{ci[1]:.3f})</span>'
    return text


def _per_task_table(block: dict[str, Any], names: list[str], split: str) -> str:
    """A table of each target's metrics (rows) for one split, macro mean last."""
    if not block:
        return ""
    per_task = block.get("per_task") or {names[0]: block}
    metrics = [k for k in block if k not in ("per_task",) and isinstance(block[k], dict)]
    head = "".join(f"<th>{_e(m)}</th>" for m in metrics)
    rows = []
    notes = []
    for name in names:
        entries = per_task.get(name) or {}
        cells = "".join(f'<td class="num">{_fmt_entry(entries.get(m))}</td>' for m in metrics)
        rows.append(f"<tr><th>{_e(name)}</th>{cells}</tr>")
        for m in metrics:
            note = (entries.get(m) or {}).get("note")
            if note:
                notes.append(f"{name} ({m}): {note}")
    if "per_task" in block:
        cells = "".join(f'<td class="num"><b>{_fmt_entry(block.get(m))}</b></td>' for m in metrics)
        rows.append(f"<tr><th>macro mean</th>{cells}</tr>")
    text = (
        f'<div class="scroll"><table class="metrics"><thead><tr><th>{_e(split)} target</th>'
        f"{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
        '<p class="muted small">Each target is scored on its labelled molecules only; 95% '
        "CIs resample molecules (the same resamples for every target).</p>"
    )
    if notes:
        text += "".join(f'<p class="muted small">{_e(n)}</p>' for n in sorted(set(notes)))
    return text


def _png_uri(fig: Any) -> str:
    import base64
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _scatter_grid(frame: pd.DataFrame, names: list[str], split: str) -> str:
    """Predicted-vs-true scatter per target (up to 6), reusing the shared regression figure."""
    from medlearn.tasks.regression import _scatter_html

    parts = []
    t = len(names)
    for name in names[:6]:
        sub = pd.DataFrame(
            {
                "target": frame[_col("target", name, t)].to_numpy(dtype=float),
                "prediction": frame[_col("prediction", name, t)].to_numpy(dtype=float),
            }
        ).dropna()
        if sub.empty:
            continue
        label = split if t == 1 else f"{split}: {name}"
        parts.append(_scatter_html(sub, label))
    return '<div class="grid">' + "".join(parts) + "</div>" if parts else ""


def _error_vs_std_png(frame: pd.DataFrame, names: list[str]) -> str | None:
    from matplotlib.figure import Figure

    t = len(names)
    shown = [n for n in names[:4] if _col("variance", n, t) in frame.columns]
    if not shown:
        return None
    fig = Figure(figsize=(4.2 * len(shown), 3.8))
    for k, name in enumerate(shown):
        ax = fig.add_subplot(1, len(shown), k + 1)
        y = frame[_col("target", name, t)].to_numpy(dtype=float)
        p = frame[_col("prediction", name, t)].to_numpy(dtype=float)
        s = np.sqrt(np.maximum(frame[_col("variance", name, t)].to_numpy(dtype=float), 0.0))
        ok = np.isfinite(y) & np.isfinite(p) & np.isfinite(s)
        err = np.abs(p[ok] - y[ok])
        ax.scatter(s[ok], err, s=10, alpha=0.6, color="#2563eb")
        if ok.any():
            ax.set_ylim(0, 1.1 * float(max(err.max(), 1.96 * s[ok].min(), 1e-9)))
            hi = float(max(s[ok].max(), 1e-9))
            xs = np.linspace(0, hi, 20)
            ax.plot(xs, xs, color="#94a3b8", ls="--", lw=1, label="|error| = 1 std")
            ax.plot(xs, 1.96 * xs, color="#dc2626", ls=":", lw=1, label="|error| = 1.96 std")
            ax.legend(fontsize=7, frameon=False)
        ax.set_xlabel("predicted std (scaled)")
        ax.set_ylabel("|error|")
        ax.set_title(name if t > 1 else "test split", fontsize=10)
    fig.tight_layout()
    return _png_uri(fig)


def _coverage_png(frame: pd.DataFrame, names: list[str]) -> str | None:
    """Observed against expected coverage of the central intervals (the miscalibration area
    is the mean gap between the curve and the diagonal)."""
    from matplotlib.figure import Figure

    t = len(names)
    shown = [n for n in names[:4] if _col("variance", n, t) in frame.columns]
    if not shown:
        return None
    levels = np.linspace(0.0, 1.0, 41)
    fig = Figure(figsize=(3.6 * len(shown), 3.4))
    for k, name in enumerate(shown):
        ax = fig.add_subplot(1, len(shown), k + 1)
        y = frame[_col("target", name, t)].to_numpy(dtype=float)
        p = frame[_col("prediction", name, t)].to_numpy(dtype=float)
        v = frame[_col("variance", name, t)].to_numpy(dtype=float)
        z = (p - y) / np.sqrt(np.maximum(v, _MIN_VAR))
        ax.plot([0, 1], [0, 1], color="#94a3b8", ls="--", lw=1, label="ideal")
        ax.plot(levels, coverage_curve(z, levels), color="#2563eb", lw=1.5, label="observed")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("expected coverage")
        ax.set_ylabel("observed coverage")
        ax.set_title(name if t > 1 else "test split", fontsize=10)
        ax.legend(fontsize=7, frameon=False, loc="upper left")
    fig.tight_layout()
    return _png_uri(fig)


def _uq_table(block: dict[str, Any], names: list[str]) -> str:
    rows = []
    for split in ("test", "val"):
        scores = block.get(split)
        if not isinstance(scores, dict):
            continue
        stats = [k for k in scores if k != "per_task"]
        cells = "".join(f'<td class="num">{_fmt_entry(scores.get(k))}</td>' for k in stats)
        if not rows:
            head = "".join(f"<th>{_e(k)}</th>" for k in stats)
            rows.append(f"<thead><tr><th>split</th>{head}</tr></thead>")
        rows.append(f"<tr><th>{_e(split)}</th>{cells}</tr>")
    if not rows:
        return ""
    return f'<div class="scroll"><table class="metrics">{"".join(rows)}</table></div>'


def _uncertainty_section(doc: dict[str, Any], frame: pd.DataFrame, names: list[str]) -> str:
    block = doc.get("uncertainty")
    if not isinstance(block, dict):
        return ""
    parts = [_uq_table(block, names)]
    if block.get("kind") == "regression":
        scale = block.get("variance_scale")
        offset = block.get("variance_offset")
        parts.append(
            '<p class="muted small">Ensemble (or blend) variance in target units, calibrated '
            "per target as scale × variance + offset, both fitted on validation by the Gaussian "
            f"negative log-likelihood (scale: {_e(scale)}; offset: {_e(offset or 0)}). "
            "Spearman: rank correlation of |error| with the std (higher "
            "is better); nll: Gaussian negative log-likelihood (lower is better); coverage_68 / "
            "coverage_95: share of molecules within 1 / 1.96 std (ideal 0.683 / 0.95); "
            "miscalibration_area: mean gap between observed and expected coverage (0 is "
            "ideal).</p>"
        )
        flat = flat_variance_targets(names, block.get("variance_share") or [])
        if flat:
            parts.append(
                '<p class="notes">The ensemble variance did not rank the validation errors for '
                f"{_e(', '.join(flat))}: the calibration put almost all of the variance in the "
                "offset, so every molecule gets about the same interval there. More ensemble "
                "members or a larger validation split may give a useful ranking.</p>"
            )
        test = frame[frame["split"] == "test"]
        figures = (
            (
                _error_vs_std_png,
                "absolute error against predicted std",
                "Test molecules: absolute error against the predicted std; about 68% should "
                "fall under the grey line and 95% under the red one.",
            ),
            (
                _coverage_png,
                "observed against expected coverage",
                "Test molecules: share within the central interval of each expected coverage. "
                "Above the diagonal the stds are too wide, below it too narrow.",
            ),
        )
        for draw, alt, caption in figures:
            uri = draw(test, names) if not test.empty else None
            if uri:
                parts.append(
                    f'<figure><img src="{uri}" alt="{alt}"><figcaption>{caption}'
                    "</figcaption></figure>"
                )
    else:
        parts.append(
            '<p class="muted small">AUROC of the ensemble variance of the predicted '
            "probability for telling misclassified molecules from correct ones (0.5: the "
            "variance carries no warning; higher is better).</p>"
        )
    return "".join(p for p in parts if p)


def _attribution_section(run_dir: Path) -> str:
    from medlearn.molecules._draw import draw_grid, to_data_uri

    path = run_dir / ATTRIBUTIONS_FILE
    if not path.is_file():
        return ""
    payload = json.loads(path.read_text())
    items = payload.get("items") or []
    if not items:
        return ""
    legends = []
    for it in items:
        true = "—" if it.get("true") is None else f"{it['true']:.3g}"
        legends.append(f"{it['id']}: true {true}, predicted {it['shown']:.3g}")
    try:
        svg = draw_grid(
            [it["smiles"] for it in items],
            legends=legends,
            atom_weights=[it["atoms"] for it in items],
            per_row=3,
            sub_size=(300, 240),
        )
    except DataValidationError as exc:
        return f'<p class="muted">The attributions could not be drawn: {_e(exc.message)}</p>'
    return (
        f'<figure><img src="{to_data_uri(svg)}" alt="atom attributions of test molecules">'
        f"<figcaption>{_e(payload.get('split', 'test'))} molecules, target "
        f"{_e(payload.get('target'))}; method: {_e(payload.get('method') or 'model default')}. "
        "Red atoms push the prediction up, blue atoms push it down, relative to the "
        "attribution method's baseline (for integrated gradients, a molecule with all-zero "
        "features); colour strength is relative to the molecule's largest attribution."
        "</figcaption></figure>"
    )


def _blend_section(doc: dict[str, Any]) -> str:
    """The blend's chosen weights and validation scores (``training.blend``), if any: one
    baseline (``model`` a name, a weight per target) or several (``model`` a list, per
    target a weight per baseline)."""
    blend = (doc.get("training") or {}).get("blend")
    if not isinstance(blend, dict) or not isinstance(blend.get("weights"), dict):
        return ""
    metric, scores = next(
        ((k[4:], v) for k, v in blend.items() if k.startswith("val_") and isinstance(v, dict)),
        ("", {}),
    )
    model = blend.get("model")
    names = [str(m) for m in model] if isinstance(model, list) else [str(model)]
    several = isinstance(model, list)

    def cells(w: Any) -> str:
        values = [w.get(n, 0.0) for n in names] if isinstance(w, dict) else [w]
        return "".join(f'<td class="num">{float(v):.1f}</td>' for v in values)

    rows = "".join(
        f"<tr><th>{_e(name)}</th>{cells(w)}</tr>" for name, w in blend["weights"].items()
    )
    heads = "".join(f"<th>weight of {_e(n)}</th>" for n in names)
    table = (
        '<div class="scroll"><table class="metrics"><thead><tr><th>target</th>'
        f"{heads}</tr></thead>{rows}</table></div>"
    )
    if scores:
        keys = ["network", *(names if several else ["baseline"]), "blend"]
        keys = [k for k in keys if k in scores]
        vals = "".join(f'<td class="num">{float(scores[k]):.3f}</td>' for k in keys)
        head = "".join(f"<th>{_e(k)}</th>" for k in keys)
        table += (
            f'<div class="scroll"><table class="metrics"><thead><tr><th>validation</th>{head}'
            f"</tr></thead><tr><th>{_e(metric)}</th>{vals}</tr></table></div>"
        )
    if several:
        how = (
            "Each target's prediction is w₀ × the network(s) + Σ wᵢ × baseline i (of "
            "probabilities for classification), the weights a point of the grid of steps of "
            "0.1 that sums to 1, chosen by the validation loss"
        )
    else:
        how = (
            "Each target's prediction is (1 − w) × the network(s) + w × the "
            f"{_e(names[0])} baseline (of probabilities for classification), w chosen from "
            "0, 0.1, …, 1 by the validation loss"
        )
    return table + (
        f'<p class="muted small">{how}; the scores above are on the validation split that '
        "chose it.</p>"
    )


def _molecule_sections(
    run_dir: Path, doc: dict[str, Any], frame: pd.DataFrame, names: list[str]
) -> list[tuple[str, str, str]]:
    sections = []
    blend = _blend_section(doc)
    if blend:
        sections.append(("blend", "Blend with fingerprint baselines", blend))
    uq = _uncertainty_section(doc, frame, names)
    if uq:
        sections.append(("uncertainty", "Uncertainty", uq))
    atoms = _attribution_section(run_dir)
    if atoms:
        sections.append(("atom-attributions", "Atom attributions", atoms))
    return sections


def _doc_names(doc: dict[str, Any], manifest: dict[str, Any], frame: pd.DataFrame) -> list[str]:
    names = doc.get("targets") or manifest.get("targets")
    if names:
        return [str(n["name"]) if isinstance(n, dict) else str(n) for n in names]
    return _frame_names(frame)


def _targets_doc(names: list[str], y: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """Each target's labelled count per split (and positives for classification)."""
    out = []
    for k, name in enumerate(names):
        entry: dict[str, Any] = {"name": name, "n_labelled": {}}
        for split, arr in y.items():
            entry["n_labelled"][split] = int(np.isfinite(arr[:, k]).sum())
        out.append(entry)
    return out


def _roc_section(frame: pd.DataFrame, names: list[str], split: str) -> str:
    from medlearn.evaluation._figures import roc_pr_pngs

    t = len(names)
    series = []
    for name in names:
        y = frame[_col("target", name, t)].to_numpy(dtype=float)
        p = frame[_col("prediction", name, t)].to_numpy(dtype=float)
        ok = np.isfinite(y) & np.isfinite(p)
        pos = y[ok] == 1
        if 0 < pos.sum() < pos.size:
            series.append((name, pos, p[ok]))
    if not series:
        return ""
    roc, pr = roc_pr_pngs(series, binary=False)
    caption = f"{_e(split)} split; one line per target, on its labelled molecules."
    return (
        '<div class="grid">'
        f'<figure><img src="{roc}" alt="ROC curves per target"><figcaption>{caption}'
        "</figcaption></figure>"
        f'<figure><img src="{pr}" alt="precision-recall curves per target"><figcaption>'
        f"{caption}</figcaption></figure></div>"
    )
