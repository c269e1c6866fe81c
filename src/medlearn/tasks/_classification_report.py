"""HTML sections the classification handler adds to the report (calibration methods,
operating point, decision curve, subgroups, feature importance). Bodies are trusted HTML with
every data value escaped."""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medlearn.tasks.classification import MIN_SUBGROUP_N, _labelled, _proba_of


# -- report HTML --------------------------------------------------------------------------------
def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _n(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "–"
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return f"{int(value):,}"
    return f"{float(value):.{digits}f}"


def _ci(entry: Any) -> str:
    if not isinstance(entry, dict):
        return "–"
    text = _n(entry.get("value"))
    ci = entry.get("ci95")
    if ci:
        text += f' <span class="ci">({_n(ci[0])}–{_n(ci[1])})</span>'
    return text


def _p(text: str, *, muted: bool = False) -> str:
    return f'<p class="muted">{_e(text)}</p>' if muted else f"<p>{_e(text)}</p>"


def _table(head: Sequence[str], rows: Sequence[Sequence[str]], cls: str = "metrics") -> str:
    """A table whose cells are trusted HTML (callers escape)."""
    th = "".join(f"<th>{h}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return (
        f'<div class="scroll"><table class="{cls}"><thead><tr>{th}</tr></thead>'
        f"<tbody>{body}</tbody></table></div>"
    )


def _figure(uri: str, alt: str, caption: str) -> str:
    return (
        f'<div class="grid narrow"><figure><img src="{uri}" alt="{_e(alt)}">'
        f"<figcaption>{caption}</figcaption></figure></div>"
    )


def _calibration_section(doc: dict[str, Any], part: pd.DataFrame, split: str) -> str:
    from medlearn.evaluation import apply_calibration
    from medlearn.evaluation._figures import calibration_methods_png

    cal = doc.get("calibration")
    cands = cal.get("candidates") if isinstance(cal, dict) else None
    if not cands:
        return ""
    chosen = cal.get("method", "none")
    requested = cal.get("requested", chosen)
    intro = (
        f"Requested: <b>{_e(requested)}</b>; applied: <b>{_e(chosen)}</b>. Every method is "
        "fitted on the validation split. "
        + (
            "<i>auto</i> picks the lowest 5-fold cross-fitted validation log-loss (so a "
            "flexible map such as isotonic cannot win by overfitting), then refits on all "
            "validation rows. "
            if requested == "auto"
            else ""
        )
        + "ECE and Brier are on the test split (lower is better)."
    )
    rows = []
    for method, c in cands.items():
        name = _e(method) + (" <b>(applied)</b>" if c.get("chosen") else "")
        rows.append(
            [
                name,
                _n(c.get("val_log_loss"), 4),
                _n(c.get("cv_log_loss"), 4),
                _n(c.get("test_ece")),
                _n(c.get("test_brier")),
            ]
        )
    body = f"<p>{intro}</p>" + _table(
        ["method", "val log-loss", "val log-loss (5-fold CV)", "test ECE", "test Brier"], rows
    )
    lab = _labelled(part)
    raw = _proba_of(lab, "raw_prob_") if not lab.empty else np.zeros((0, 0))
    if split == "test" and raw.size:
        logits = np.log(np.clip(raw, 1e-300, 1.0))
        y = lab["target"].to_numpy(dtype=int)
        probas = []
        for method, c in cands.items():
            state = c.get("state")
            if isinstance(state, dict):
                probas.append((method, apply_calibration(logits, state)))
        if probas:
            uri = calibration_methods_png(y, probas)
            body += _figure(
                uri,
                "Reliability of each calibration method on the test split",
                f"Test split (n = {len(y):,}); each method fitted on validation data.",
            )
    return body


def _threshold_section(doc: dict[str, Any], analysis: dict[str, Any]) -> str:
    sel = doc.get("threshold_selection")
    if not isinstance(sel, dict):
        return ""
    method = sel.get("method")
    target = sel.get("target")
    what = {
        "youden": "maximising Youden's J (sensitivity + specificity − 1)",
        "f1": "maximising F1",
        "fixed": "fixed at 0.5",
        "sensitivity": f"the best specificity with sensitivity ≥ {_n(target, 2)}",
        "specificity": f"the best sensitivity with specificity ≥ {_n(target, 2)}",
    }.get(str(method), _e(method))
    text = (
        f"Threshold <b>{_n(sel.get('threshold'))}</b> on the calibrated positive-class "
        f"probability, chosen on the validation split: {what}."
    )
    val = sel.get("val") or {}
    rows = [["validation", _n(val.get("sensitivity")), _n(val.get("specificity"))]]
    test = sel.get("test")
    if isinstance(test, dict):
        rows.append(
            [
                _e(test.get("split", "test")),
                _ci(test.get("sensitivity")),
                _ci(test.get("specificity")),
            ]
        )
    return f"<p>{text}</p>" + _table(["split", "sensitivity", "specificity"], rows)


def _decision_section(curve: dict[str, Any]) -> str:
    from medlearn.evaluation._figures import decision_curve_png

    ranges = curve.get("useful_ranges") or []
    where = (
        ", ".join(f"{_n(lo, 2)}–{_n(hi, 2)}" for lo, hi in ranges)
        if ranges
        else "no threshold probability (treat-all or treat-none is as good or better)"
    )
    gain = curve.get("max_net_benefit_gain") or {}
    text = (
        f"Net benefit on the {_e(curve.get('split', 'test'))} split "
        f"(n = {_n(curve.get('n'))}, prevalence {_n(curve.get('prevalence'))}) against "
        "treating everyone and treating no one (Vickers &amp; Elkin, 2006). "
        f"The model is useful at threshold probabilities <b>{where}</b>; its largest gain is "
        f"{_n(gain.get('value'), 4)} net true positives per patient at "
        f"{_n(gain.get('threshold'), 2)}."
    )
    return f"<p>{text}</p>" + _figure(
        decision_curve_png(curve), "Decision curve", "Shaded: the model beats both strategies."
    )


def _subgroup_section(sub: dict[str, Any]) -> str:
    from medlearn.registry import METRICS

    parts = [
        _p(
            f"Split: {sub.get('split', 'test')}. Subgroups with fewer than "
            f"{sub.get('min_n', MIN_SUBGROUP_N)} cases get no metrics. The largest gap is "
            "best minus worst subgroup, with a paired bootstrap 95% CI over the whole split; a "
            "CI that excludes 0 is highlighted.",
            muted=True,
        )
    ]
    for key, res in (sub.get("by") or {}).items():
        groups = res.get("groups") or {}
        gaps = res.get("gaps") or {}
        metrics = list(gaps) or sorted(
            {m for g in groups.values() for m in (g.get("metrics") or {})}
        )
        rows = []
        for name, g in groups.items():
            if g.get("status") != "ok":
                rows.append(
                    [_e(name), _n(g.get("n"))]
                    + ['<span class="muted">too few</span>'] * len(metrics)
                )
                continue
            rows.append(
                [_e(name), _n(g.get("n"))] + [_ci((g["metrics"] or {}).get(m)) for m in metrics]
            )
        gap_row = ["<b>largest gap</b>", ""]
        for m in metrics:
            gap = gaps.get(m)
            if not gap:
                gap_row.append("–")
                continue
            ci = gap.get("ci95")
            significant = bool(ci) and (ci[0] > 0 or ci[1] < 0)
            cell = f'{_ci(gap)}<br><span class="small">{_e(gap["high"])} − {_e(gap["low"])}</span>'
            if significant:
                cell = f'<b style="color:#b91c1c">{cell}</b>'
            gap_row.append(cell)
        rows.append(gap_row)
        worst = None
        for m in metrics:
            gap = gaps.get(m)
            if (
                gap
                and gap.get("value") is not None
                and (worst is None or gap["value"] > worst[1]["value"])
            ):
                worst = (m, gap)
        parts.append(f"<h3>{_e(key)}</h3>")
        if worst is not None:
            m, gap = worst
            direction = "higher" if METRICS.meta(m).get("higher_is_better", True) else "lower"
            parts.append(
                f"<p>Largest gap: <b>{_e(m)}</b> differs by {_ci(gap)} between "
                f"<b>{_e(gap['high'])}</b> and <b>{_e(gap['low'])}</b> ({direction} is better)."
                "</p>"
            )
        parts.append(_table(["subgroup", "n", *(_e(m) for m in metrics)], rows))
    return "".join(parts)


def _importance_section(run_dir: Path) -> str:
    from medlearn.evaluation._figures import importance_png

    path = run_dir / "importance.json"
    if not path.is_file():
        return ""
    try:
        data = json.loads(path.read_text())
        features = [str(f) for f in data["features"]]
        methods = {k: list(v) for k, v in (data.get("methods") or {}).items()}
    except (ValueError, KeyError, TypeError):
        return _p("importance.json is unreadable.", muted=True)
    shown = [m for m in methods if not m.endswith("_std") and len(methods[m]) == len(features)]
    if not shown:
        return ""
    primary = shown[0]
    std = methods.get(f"{primary}_std")
    uri = importance_png(
        features,
        methods[primary],
        errors=std if std and len(std) == len(features) else None,
        xlabel=primary.replace("_", " "),
    )
    order = np.argsort(-np.nan_to_num(np.asarray(methods[primary], float), nan=-np.inf))
    rows = []
    for i in order[:30]:
        cells = [_e(features[i])]
        for m in shown:
            value = _n(methods[m][i], 4)
            s = methods.get(f"{m}_std")
            if s and len(s) == len(features):
                value += f' <span class="ci">± {_n(s[i], 4)}</span>'
            cells.append(value)
        rows.append(cells)
    return (
        _p(
            f"Global importance on the {data.get('split', 'test')} split: "
            + ", ".join(m.replace("_", " ") for m in shown)
            + ". Importance is association with the model's output, not causation.",
            muted=True,
        )
        + _figure(uri, "Feature importance", _e(primary.replace("_", " ")))
        + _table(["feature", *(_e(m.replace("_", " ")) for m in shown)], rows)
        + _time_heatmap_section(data.get("time_heatmap"))
    )


def _time_heatmap_png(variables: Sequence[str], hours: Sequence[float], values: Any) -> str:
    """Heatmap (variables × time) of mean |attribution|, strongest variables on top."""
    from medlearn.evaluation._figures import _new_figure, _png

    heat = np.abs(np.asarray(values, dtype=float))
    order = np.argsort(-np.nansum(heat, axis=1), kind="stable")[:20]
    names = [str(variables[i]) for i in order]
    width_left = min(2.2, 0.35 + 0.065 * max((len(n) for n in names), default=4))
    fig = _new_figure(7.2, 1.1 + 0.22 * len(order), left=width_left, right=1.0, bottom=0.5)
    ax = fig.add_subplot(1, 1, 1)
    step = float(hours[1] - hours[0]) if len(hours) > 1 else 1.0
    extent = (float(hours[0]), float(hours[-1]) + step, len(order) - 0.5, -0.5)
    im = ax.imshow(heat[order], aspect="auto", cmap="viridis", extent=extent)
    ax.set_yticks(np.arange(len(order)), names)
    ax.set_xlabel("hours since admission")
    fig.colorbar(im, ax=ax, fraction=0.04, pad=0.02, label="mean |attribution|")
    return _png(fig)


def _time_heatmap_section(heat: Any) -> str:
    """The variable × time attribution heatmap of ``importance.json`` (``time_heatmap``)."""
    if not isinstance(heat, dict):
        return ""
    try:
        variables = [str(v) for v in heat["variables"]]
        hours = [float(h) for h in heat["hours"]]
        values = np.asarray(heat["values"], dtype=float)
    except (KeyError, TypeError, ValueError):
        return _p("The time attribution heatmap in importance.json is unreadable.", muted=True)
    if values.shape != (len(variables), len(hours)) or not len(hours) or not len(variables):
        return ""
    uri = _time_heatmap_png(variables, hours, values)
    return _figure(
        uri,
        "Attribution by variable and time",
        "Mean |attribution| per variable (rows, the 20 strongest) and time step (columns).",
    )
