"""The run report: one self-contained HTML file.

Every plot is a PNG drawn with matplotlib's Agg canvas (no pyplot, so no global state and no
display is needed) and embedded as a ``data:image/png;base64`` URI; the CSS is inline and there
is no JavaScript and no external URL, so the file can be mailed or archived as is.

Sections, in order: header, summary (metrics with 95% CIs), ROC and precision-recall curves,
calibration, confusion matrix, training curves, Grad-CAM gallery, model card.

Privacy: the report shows aggregate numbers, plus the record ``id`` of gallery cases only. It
never prints ``patient_id`` or any other column of the predictions table.

Example::

    inputs = ReportInputs(title="demo", metrics_doc=doc, predictions=frame,
                          classes=["normal", "pneumonia"], threshold=0.42)
    write_report("runs/demo/report.html", inputs)
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from medlearn._io import atomic_write_text
from medlearn.evaluation._figures import gallery_png, reliability_png, roc_pr_pngs, training_png
from medlearn.evaluation._report_css import CSS
from medlearn.evaluation.metrics import ECE_BINS

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["GalleryItem", "ReportInputs", "build_report", "write_report"]

_SECTIONS = (
    ("summary", "Summary"),
    ("curves", "ROC and precision-recall curves"),
    ("calibration", "Calibration"),
    ("confusion", "Confusion matrix"),
    ("training", "Training curves"),
    ("gallery", "Grad-CAM gallery"),
    ("model-card", "Model card"),
)

_METRIC_LABELS = {
    "auroc": "AUROC",
    "auprc": "AUPRC",
    "accuracy": "Accuracy",
    "balanced_accuracy": "Balanced accuracy",
    "sensitivity": "Sensitivity",
    "specificity": "Specificity",
    "f1": "F1",
    "brier": "Brier score",
    "ece": "ECE",
    "rmse": "RMSE",
    "mae": "MAE",
    "r2": "R²",
}
_SPLIT_LABELS = {"test": "Test", "val": "Validation", "train": "Train", "cv": "Cross-validation"}


@dataclass
class GalleryItem:
    """One explained test case shown in the report's gallery.

    Attributes:
        id: the record id (the only identifier the report prints).
        true_label: the true class name.
        predicted_label: the predicted class name.
        probability: the predicted class's probability.
        correct: whether the prediction is right.
        image: the input as shown to a person, ``(H, W)`` or ``(H, W, 3)`` in [0, 1].
        heatmap: attribution ``(H, W)`` in [0, 1], or ``None``.
    """

    id: str
    true_label: str
    predicted_label: str
    probability: float
    correct: bool
    image: np.ndarray
    heatmap: np.ndarray | None = None


@dataclass
class ReportInputs:
    """Everything :func:`build_report` draws.

    Attributes:
        title: the page title.
        metrics_doc: the ``metrics.json`` document (``task``, ``dataset``, ``model``, ``n``,
            ``metrics`` {split: {name: {value, ci95}}}, ``timing``, ``threshold``,
            ``calibration``, ``split``).
        config: the resolved run file as a dict.
        predictions: columns ``id, patient_id, split, target, prediction, prob_0..prob_{C-1}``
            (calibrated) and optionally ``raw_prob_0..`` (before calibration).
        classes: class names, index = class id.
        threshold: the binary decision threshold (default: ``metrics_doc["threshold"]`` or 0.5).
        history: one dict per epoch (``member``, ``epoch``, ``train_loss``, ``val_loss``,
            ``val_<metric>``).
        gallery: explained test cases.
        model_card: free-form sections (``intended_use``, ``limitations``, ``data``,
            ``training``, ...), strings or nested dicts / lists.
        notes: remarks shown under the header.
        created: the timestamp printed in the header (default: now, UTC).
        sections: extra ``(anchor, title, html_body)`` sections from the task handler,
            placed after the summary (bodies are trusted HTML built with escaping).
    """

    title: str
    metrics_doc: dict[str, Any]
    config: dict[str, Any] = field(default_factory=dict)
    predictions: pd.DataFrame | None = None
    classes: list[str] = field(default_factory=list)
    threshold: float | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    gallery: list[GalleryItem] = field(default_factory=list)
    model_card: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    created: str | None = None
    sections: list[tuple[str, str, str]] = field(default_factory=list)


# -- small helpers ------------------------------------------------------------------------------
def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    if isinstance(value, (float, np.floating)):
        if not np.isfinite(value):
            return "—"
        return f"{float(value):.{digits}f}"
    return str(value)


def _fmt_metric(entry: Any) -> str:
    """``0.951 (0.935–0.966)`` from ``{"value", "ci95"}`` (or a bare number)."""
    if isinstance(entry, Mapping):
        value, ci = entry.get("value"), entry.get("ci95")
    else:
        value, ci = entry, None
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return "—"
    text = _fmt(float(value))
    if isinstance(ci, (list, tuple)) and len(ci) == 2 and all(c is not None for c in ci):
        text += f' <span class="ci">({_fmt(float(ci[0]))}–{_fmt(float(ci[1]))})</span>'
    return text


#: what :func:`_title` treats as a field name
_FIELD_NAME = re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)*")


def _metric_label(name: str) -> str:
    return _METRIC_LABELS.get(name, name.replace("_", " ").capitalize())


def _direction(name: str) -> str:
    from medlearn.registry import METRICS

    if name in METRICS:
        hib = METRICS.meta(name).get("higher_is_better")
        if hib is True:
            return ' <span class="dir" title="higher is better">↑</span>'
        if hib is False:
            return ' <span class="dir" title="lower is better">↓</span>'
    return ""


def _title(key: str) -> str:
    """A field name as a heading (``labels_per_target`` → "Labels per target"). A key that is
    not a snake_case name is data (a target such as ``rdkit:MolWt``, a class, a column) and is
    shown as written, as is a registered model's name (``fp_kernel_ridge``)."""
    from medlearn.registry import MODELS

    text = key.strip()
    if not _FIELD_NAME.fullmatch(text) or MODELS.registered_now(text):  # data, a model
        return text
    return text.replace("_", " ").capitalize()


def _img(uri: str, alt: str, caption: str | None = None) -> str:
    out = f'<figure><img src="{uri}" alt="{_e(alt)}">'
    if caption:
        out += f"<figcaption>{caption}</figcaption>"
    return out + "</figure>"


def _note(text: str) -> str:
    return f'<p class="muted">{_e(text)}</p>'


def _section(key: str, title: str, body: str) -> str:
    return f'<section class="card" id="{key}"><h2>{_e(title)}</h2>\n{body}\n</section>'


# -- data extraction ----------------------------------------------------------------------------
@dataclass
class _Split:
    """Targets and probabilities of one split, ready for plotting."""

    y: np.ndarray
    proba: np.ndarray
    raw: np.ndarray | None


def _prob_columns(frame: pd.DataFrame, prefix: str) -> list[str]:
    cols = []
    k = 0
    while f"{prefix}{k}" in frame.columns:
        cols.append(f"{prefix}{k}")
        k += 1
    return cols


def _split_data(frame: pd.DataFrame | None, split: str, classes: list[str]) -> _Split | None:
    if frame is None or len(frame) == 0 or "target" not in frame.columns:
        return None
    part = frame[frame["split"] == split] if "split" in frame.columns else frame
    cols = _prob_columns(part, "prob_")
    if len(part) == 0 or len(cols) < 2:
        return None
    target = part["target"]
    if target.dtype == object and classes and target.isin(classes).all():
        target = target.map({c: i for i, c in enumerate(classes)})
    y = np.asarray(target, dtype=np.float64)
    keep = np.isfinite(y)
    proba = part[cols].to_numpy(dtype=np.float64)[keep]
    keep_proba = np.all(np.isfinite(proba), axis=1)
    y, proba = y[keep][keep_proba].astype(np.int64), proba[keep_proba]
    if y.size == 0 or y.min() < 0 or y.max() >= proba.shape[1]:
        return None
    raw_cols = _prob_columns(part, "raw_prob_")
    raw = None
    if len(raw_cols) == len(cols):
        raw = part[raw_cols].to_numpy(dtype=np.float64)[keep][keep_proba]
        if not np.all(np.isfinite(raw)):
            raw = None
    return _Split(y, proba, raw)


def _class_names(inputs: ReportInputs, n: int) -> list[str]:
    names = [str(c) for c in inputs.classes]
    return names + [f"class {k}" for k in range(len(names), n)]


def _threshold(inputs: ReportInputs) -> float:
    if inputs.threshold is not None:
        return float(inputs.threshold)
    t = inputs.metrics_doc.get("threshold")
    return float(t) if isinstance(t, (int, float)) else 0.5


def _labels(split: _Split, threshold: float) -> np.ndarray:
    if split.proba.shape[1] == 2:
        return (split.proba[:, 1] >= threshold).astype(np.int64)
    return split.proba.argmax(axis=1)


# -- sections -----------------------------------------------------------------------------------
def _header(inputs: ReportInputs, nav_sections: Iterable[tuple[str, str]] = _SECTIONS) -> str:
    from medlearn import __version__

    doc = inputs.metrics_doc
    created = inputs.created or datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    facts = [
        ("Dataset", doc.get("dataset")),
        ("Model", doc.get("model")),
        ("Task", doc.get("task")),
        ("Generated", created),
        ("medlearn", __version__),
    ]
    meta = "".join(f"<span><b>{_e(k)}</b> {_e(v)}</span>" for k, v in facts if v not in (None, ""))
    badges = []
    threshold = inputs.threshold if inputs.threshold is not None else doc.get("threshold")
    if isinstance(threshold, (int, float)):
        badges.append(f"threshold {threshold:.3f}")
    cal = doc.get("calibration") or {}
    if isinstance(cal, Mapping) and cal.get("method") not in (None, "none"):
        t = cal.get("temperature")
        badges.append(
            f"calibration: {cal['method']}" + (f" (T = {t:.3f})" if isinstance(t, float) else "")
        )
    split = doc.get("split") or {}
    if isinstance(split, Mapping) and split.get("method"):
        badges.append(f"split: {split['method']}, seed {split.get('seed', '—')}")
    if doc.get("seed") is not None:
        badges.append(f"seed {doc['seed']}")
    nav = "".join(f'<a href="#{k}">{_e(t)}</a>' for k, t in nav_sections)
    notes = ""
    if inputs.notes:
        notes = (
            '<div class="wrap"><div class="notes"><ul>'
            + "".join(f"<li>{_e(n)}</li>" for n in inputs.notes)
            + "</ul></div></div>"
        )
    return (
        '<header class="top"><div class="wrap">'
        f"<h1>{_e(inputs.title)}</h1>"
        f'<div class="meta">{meta}</div>'
        + (
            '<div class="badges">' + "".join(f"<span>{_e(b)}</span>" for b in badges) + "</div>"
            if badges
            else ""
        )
        + f'</div></header><nav><div class="wrap">{nav}</div></nav>{notes}'
    )


def _metric_splits(doc: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    metrics = doc.get("metrics") or {}
    if not isinstance(metrics, Mapping):
        return []
    order = ["test", "val"] + [k for k in metrics if k not in ("test", "val")]
    return [(k, metrics[k]) for k in order if isinstance(metrics.get(k), Mapping)]


def _summary(inputs: ReportInputs) -> str:
    doc = inputs.metrics_doc
    splits = _metric_splits(doc)
    names: list[str] = []
    for _, entries in splits:
        for name, entry in entries.items():
            if (
                name not in names
                and isinstance(entry, (Mapping, int, float))
                and name != "per_task"
            ):
                names.append(name)
    parts = []
    n = doc.get("n")
    if isinstance(n, Mapping) and n:
        parts.append(
            '<div class="stats">'
            + "".join(
                f'<div class="stat"><div class="v">{_fmt(v)}</div>'
                f'<div class="k">{_e(_SPLIT_LABELS.get(k, k))}</div></div>'
                for k, v in n.items()
            )
            + "</div>"
        )
    if not names:
        parts.append(_note("No metrics were recorded for this run."))
    else:
        head = "".join(f"<th>{_e(_SPLIT_LABELS.get(s, s))}</th>" for s, _ in splits)
        rows = []
        for name in names:
            cells = "".join(f'<td class="num">{_fmt_metric(e.get(name))}</td>' for _, e in splits)
            rows.append(f"<tr><th>{_e(_metric_label(name))}{_direction(name)}</th>{cells}</tr>")
        parts.append(
            '<table class="metrics"><thead><tr><th>Metric</th>'
            f"{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
            '<p class="muted small">Point estimates with bootstrap 95% confidence intervals '
            "(percentile method; patients resampled when patient ids are known).</p>"
        )
    timing = doc.get("timing")
    if isinstance(timing, Mapping) and timing:
        parts.append(
            '<p class="muted small">Timing: '
            + ", ".join(f"{_e(_title(k).lower())} {_e(_fmt(v, 2))}" for k, v in timing.items())
            + "</p>"
        )
    return "".join(parts)


def _curves(inputs: ReportInputs, test: _Split | None) -> str:
    if test is None:
        return _note("No labelled test predictions are available.")
    n_classes = test.proba.shape[1]
    names = _class_names(inputs, n_classes)
    if n_classes == 2:
        series = [(names[1], test.y == 1, test.proba[:, 1])]
    else:
        series = [(names[k], test.y == k, test.proba[:, k]) for k in range(n_classes)]
    series = [s for s in series if 0 < s[1].sum() < len(s[1])]
    if not series:
        return _note("The test set has a single class, so ROC and PR curves are undefined.")
    roc, pr = roc_pr_pngs(series, binary=n_classes == 2)
    scope = (
        f"positive class: {_e(names[1])}" if n_classes == 2 else "one-vs-rest, one line per class"
    )
    caption = f"Test set (n = {len(test.y):,}); {scope}."
    return (
        '<div class="grid">'
        + _img(roc, "ROC curve of the test set", caption)
        + _img(pr, "Precision-recall curve of the test set", caption)
        + "</div>"
    )


def _calibration(inputs: ReportInputs, test: _Split | None) -> str:
    if test is None:
        return _note("No labelled test predictions are available.")
    if test.raw is not None:
        probas = [("before calibration", test.raw), ("after calibration", test.proba)]
    else:
        probas = [("model", test.proba)]
    binary = test.proba.shape[1] == 2
    text = f"Test set (n = {len(test.y):,}), {ECE_BINS} equal-width bins. " + (
        "Binary: the positive-class probability against the label. "
        if binary
        else "Multiclass: the top-label confidence against whether the top label is right. "
    )
    cal = inputs.metrics_doc.get("calibration") or {}
    if isinstance(cal, Mapping) and cal.get("method") not in (None, "none"):
        t = cal.get("temperature")
        text += f"Calibration: {_e(cal['method'])}" + (
            f" with T = {t:.3f}, fitted on the validation set." if isinstance(t, float) else "."
        )
    uri = reliability_png(test.y, probas)
    return (
        '<div class="grid narrow">'
        + _img(uri, "Reliability diagram of the test set", text)
        + "</div>"
    )


def _confusion(inputs: ReportInputs, test: _Split | None) -> str:
    if test is None:
        return _note("No labelled test predictions are available.")
    n_classes = test.proba.shape[1]
    names = _class_names(inputs, n_classes)
    threshold = _threshold(inputs)
    pred = _labels(test, threshold)
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (test.y, pred), 1)
    head = "".join(f"<th>{_e(names[j])}</th>" for j in range(n_classes))
    rows = []
    for i in range(n_classes):
        total = cm[i].sum()
        cells = []
        for j in range(n_classes):
            share = cm[i, j] / total if total else 0.0
            rgb = "37,99,235" if i == j else "220,38,38"
            style = f"background: rgba({rgb},{0.08 + 0.6 * share:.3f})" if cm[i, j] else ""
            pct = f"{100 * share:.1f}%" if total else "—"
            cells.append(
                f'<td class="cm" style="{style}"><b>{cm[i, j]:,}</b>'
                f'<span class="pct">{pct}</span></td>'
            )
        rows.append(
            f'<tr><th>{_e(names[i])}</th>{"".join(cells)}<td class="num">{total:,}</td></tr>'
        )
    rule = (
        f"positive when p({_e(names[1])}) ≥ {threshold:.3f}"
        if n_classes == 2
        else "the class with the highest probability"
    )
    return (
        '<div class="scroll"><table class="confusion"><thead>'
        f'<tr><th class="corner">true ↓ / predicted →</th>{head}<th>total</th></tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div>"
        f'<p class="muted small">Test set (n = {len(test.y):,}); prediction = {rule}. '
        "Each cell shows the count and the percentage of its row (true class).</p>"
    )


def _monitored(inputs: ReportInputs, keys: Iterable[str]) -> str | None:
    keys = list(keys)
    training = inputs.config.get("training") if isinstance(inputs.config, Mapping) else None
    monitor = training.get("monitor") if isinstance(training, Mapping) else None
    if monitor and f"val_{monitor}" in keys and monitor != "loss":
        return f"val_{monitor}"
    candidates = [k for k in keys if k.startswith("val_") and k != "val_loss"]
    return candidates[0] if candidates else None


def _training(inputs: ReportInputs) -> str:
    rows = [r for r in inputs.history if isinstance(r, Mapping)]
    if not rows:
        return _note(
            "No training history was recorded (e.g. a classical model or an evaluation "
            "of an existing model)."
        )
    keys: list[str] = []
    for r in rows:
        keys.extend(k for k in r if k not in keys)
    monitored = _monitored(inputs, keys)
    title = _metric_label(monitored[4:]) + " (validation)" if monitored else ""
    members = {int(r.get("member", 0) or 0) for r in rows}
    caption = (
        f"{len(members)} ensemble member{'s' if len(members) != 1 else ''}; "
        "solid: training loss, dashed: validation loss."
    )
    uri = training_png(rows, monitored, title)
    return _img(uri, "Training and validation curves per epoch", caption)


def _gallery(inputs: ReportInputs) -> str:
    if not inputs.gallery:
        return _note("No explanations were computed for this run.")
    parts = [
        '<p class="muted small">Test cases with their Grad-CAM heat map overlaid (jet colour '
        "map, 40% opacity): red regions contributed most to the predicted class. Heat maps "
        "show where the model looked, not why it is right.</p>"
    ]
    for correct, heading in ((True, "Correct predictions"), (False, "Incorrect predictions")):
        items = [g for g in inputs.gallery if bool(g.correct) == correct]
        parts.append(f"<h3>{heading} ({len(items)})</h3>")
        if not items:
            parts.append(_note("None among the explained cases."))
            continue
        cards = []
        for g in items:
            caption = (
                f'<div class="id">{_e(g.id)}</div>'
                + (
                    '<div class="small">input · Grad-CAM overlay</div>'
                    if g.heatmap is not None
                    else ""
                )
                + f"true: <b>{_e(g.true_label)}</b> · pred: <b>{_e(g.predicted_label)}</b>"
                f" · p = {_fmt(float(g.probability))}"
            )
            klass = "case" if correct else "case wrong"
            alt = f"Test case, true {g.true_label}, predicted {g.predicted_label}"
            try:
                figure = _img(gallery_png(g.image, g.heatmap), alt, caption)
            except ValueError as exc:  # a malformed array: say so in place of the picture
                figure = f'<p class="muted small">Image not drawn: {_e(exc)}</p>{caption}'
            cards.append(f'<div class="{klass}">{figure}</div>')
        parts.append(f'<div class="gallery">{"".join(cards)}</div>')
    return "".join(parts)


def _fmt_general(value: Any) -> str:
    if isinstance(value, (float, np.floating)) and not isinstance(value, bool):
        return f"{float(value):.4g}" if np.isfinite(value) else "—"
    return _fmt(value)


#: rows of a long mapping shown before the rest is folded into a <details> block
_KV_SHOWN = 20
#: nested tables drawn before a deeper mapping is shown as JSON (a refitted blend's search
#: per target sits five levels down the training table)
_KV_DEPTH = 6


def _render_value(value: Any, depth: int = 0) -> str:
    """Generic HTML for strings, numbers, lists and nested dicts (all escaped)."""
    if value is None or value == "" or value == [] or value == {}:
        return '<span class="muted">—</span>'
    if isinstance(value, Mapping):
        if depth >= 4 and all(isinstance(v, (str, int, float, np.number)) for v in value.values()):
            # deep leaves (e.g. a search's chosen parameters per target) read inline
            return _e(", ".join(f"{k} {_fmt_general(v)}" for k, v in value.items()))
        if depth >= _KV_DEPTH:
            return f"<code>{_e(json.dumps(value, default=str))}</code>"
        rows = [
            f"<tr><th>{_e(_title(str(k)))}</th><td>{_render_value(v, depth + 1)}</td></tr>"
            for k, v in value.items()
        ]
        if len(rows) <= _KV_SHOWN + 5:
            return f'<table class="kv">{"".join(rows)}</table>'
        # long mappings (e.g. hundreds of targets): the first rows, the rest one click away
        return (
            f'<table class="kv">{"".join(rows[:_KV_SHOWN])}</table>'
            f"<details><summary>{len(rows) - _KV_SHOWN} more</summary>"
            f'<table class="kv">{"".join(rows[_KV_SHOWN:])}</table></details>'
        )
    if isinstance(value, (list, tuple)):
        # Short tokens (numbers, class names) read best inline; sentences as a list.
        if len(value) <= 20 and all(
            isinstance(v, (int, float, np.number))
            or (isinstance(v, str) and len(v) <= 40 and not any(c.isspace() for c in v))
            for v in value
        ):
            return _e(", ".join(_fmt_general(v) for v in value))
        return "<ul>" + "".join(f"<li>{_render_value(v, depth + 1)}</li>" for v in value) + "</ul>"
    if isinstance(value, str):
        paragraphs = [p.strip() for p in value.split("\n\n") if p.strip()]
        if depth == 0:
            return "".join(f"<p>{_e(p)}</p>" for p in paragraphs)
        return "<br>".join(_e(p) for p in paragraphs)
    return _e(_fmt_general(value))


def _config_yaml(config: Mapping[str, Any]) -> str:
    try:
        import yaml

        return yaml.safe_dump(dict(config), sort_keys=False, default_flow_style=False)
    except Exception:  # any value yaml cannot represent: fall back to JSON
        return json.dumps(config, indent=2, default=str)


def _model_card(inputs: ReportInputs) -> str:
    doc = inputs.metrics_doc
    card = dict(inputs.model_card or {})
    out = []

    # Data and splits: the card's own ``data`` section if it has one, else facts from the doc.
    out.append("<h3>Data and splits</h3>")
    split_table = _split_table(inputs)
    data = card.pop("data", None)
    facts: dict[str, Any] = {"task": card.pop("task", None) or doc.get("task")}
    if isinstance(data, Mapping):
        facts.update({k: v for k, v in data.items() if not (k == "counts" and split_table)})
    else:
        facts["dataset"] = doc.get("dataset")
        if inputs.classes:
            facts["classes"] = list(inputs.classes)
        split = doc.get("split")
        if isinstance(split, Mapping):
            facts["split"] = ", ".join(f"{k} {v}" for k, v in split.items())
    out.append(_render_value({k: v for k, v in facts.items() if v is not None}, depth=1))
    if data is not None and not isinstance(data, Mapping):
        out.append(_render_value(data))
    out.append(split_table)

    # Performance, from the metrics document (the card's copies are left out).
    out.append("<h3>Performance</h3>")
    splits = _metric_splits(doc)
    if splits:
        split_name, entries = splits[0]
        items = "".join(
            f"<li>{_e(_metric_label(k))}: {_fmt_metric(v)}</li>"
            for k, v in entries.items()
            if isinstance(v, (Mapping, int, float)) and k != "per_task"
        )
        out.append(
            f'<p class="muted small">{_e(_SPLIT_LABELS.get(split_name, split_name))} set, '
            f"with bootstrap 95% CIs.</p><ul>{items}</ul>"
        )
        card.pop("metrics", None)
        card.pop("test_metrics", None)
    elif "metrics" in card or "test_metrics" in card:
        out.append(_render_value(card.pop("metrics", None) or card.pop("test_metrics")))
    else:
        out.append(_note("No metrics were recorded."))

    # Intended use and limitations.
    for key, title, default in (
        ("intended_use", "Intended use", "Not stated for this run."),
        ("limitations", "Limitations", "Not stated for this run."),
    ):
        out.append(f"<h3>{title}</h3>")
        out.append(_render_value(card.pop(key)) if key in card else _note(default))

    # Training details: the model, the card's training section, then what the run recorded.
    out.append("<h3>Training details</h3>")
    details: dict[str, Any] = {"model": card.pop("model", None) or doc.get("model")}
    training = card.pop("training", None)
    if isinstance(training, Mapping):
        details.update(training)
    elif training is not None:
        details["summary"] = training
    recorded = doc.get("training")
    if isinstance(recorded, Mapping):
        for key, value in recorded.items():
            details.setdefault("epochs_completed" if key == "epochs" else key, value)
    for key in ("calibration", "timing"):
        value = card.pop(key, None) or doc.get(key)
        if value:
            details[key] = value
    threshold = inputs.threshold if inputs.threshold is not None else doc.get("threshold")
    if threshold is not None:
        details["decision_threshold"] = threshold
    details = {k: v for k, v in details.items() if v is not None}
    out.append(_render_value(details) if details else _note("Not recorded."))

    # Anything else the card holds.
    for key, value in card.items():
        out.append(f"<h3>{_e(_title(str(key)))}</h3>{_render_value(value)}")

    if inputs.config:
        out.append(
            "<details><summary>Resolved run configuration</summary>"
            f"<pre>{_e(_config_yaml(inputs.config))}</pre></details>"
        )
    return "".join(out)


def _split_table(inputs: ReportInputs) -> str:
    """Rows per split and class (from the predictions) or the counts in ``n``."""
    n = inputs.metrics_doc.get("n")
    counts = dict(n) if isinstance(n, Mapping) else {}
    frame = inputs.predictions
    per_class: dict[str, dict[int, int]] = {}
    if frame is not None and len(frame) and {"split", "target"} <= set(frame.columns):
        for split, part in frame.groupby("split", sort=False):
            target = part["target"]
            if target.dtype == object and inputs.classes:
                target = target.map({c: i for i, c in enumerate(inputs.classes)})
            values = np.asarray(target, dtype=np.float64)
            values = values[np.isfinite(values)].astype(np.int64)
            per_class[str(split)] = {
                int(k): int(v) for k, v in zip(*np.unique(values, return_counts=True), strict=True)
            }
    if not counts and not per_class:
        return ""
    n_classes = len(inputs.classes)
    show_classes = n_classes > 0 and bool(per_class) and n_classes <= 20
    head = "<th>Split</th><th>Rows</th>" + (
        "".join(f"<th>{_e(c)}</th>" for c in inputs.classes) if show_classes else ""
    )
    rows = []
    for split in list(counts) + [s for s in per_class if s not in counts]:
        total = counts.get(split, sum(per_class.get(split, {}).values()))
        cells = f'<th>{_e(_SPLIT_LABELS.get(split, split))}</th><td class="num">{_fmt(total)}</td>'
        if show_classes:
            pc = per_class.get(split)
            cells += "".join(
                f'<td class="num">{_fmt(pc.get(k, 0)) if pc is not None else "—"}</td>'
                for k in range(n_classes)
            )
        rows.append(f"<tr>{cells}</tr>")
    note = (
        '<p class="muted small">Class counts are shown for the splits whose predictions are '
        "in the run directory.</p>"
        if show_classes
        else ""
    )
    return (
        f'<table class="splits"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>{note}"
    )


def _quality_rows(quality: Mapping[str, Any], prefix: str = "") -> list[str]:
    rows = []
    for key, value in quality.items():
        label = f"{prefix}{key}"
        if isinstance(value, Mapping):
            rows.extend(_quality_rows(value, prefix=f"{label} — "))
        else:
            rows.append(
                f"<tr><td>{_e(label.replace('_', ' '))}</td><td>{_e(_fmt_general(value))}</td></tr>"
            )
    return rows


def _with_quality_section(inputs: ReportInputs, quality: Mapping[str, Any]) -> ReportInputs:
    """Add a "Data quality" section listing the reader's problem counts."""
    from dataclasses import replace

    body = (
        '<p class="muted small">What the reader found and how it was handled; every record '
        "is accounted for (nothing is dropped silently).</p>"
        '<table class="metrics"><thead><tr><th>Check</th><th>Count</th></tr></thead>'
        f"<tbody>{''.join(_quality_rows(quality))}</tbody></table>"
    )
    return replace(inputs, sections=[*inputs.sections, ("data-quality", "Data quality", body)])


def build_report(inputs: ReportInputs) -> str:
    """Render the report as one self-contained HTML document.

    Args:
        inputs: what to draw (see :class:`ReportInputs`).

    Returns:
        The HTML text (UTF-8 safe; plots embedded as base64 PNGs, no external resources).
    """
    from medlearn import __version__

    classes = list(inputs.classes)
    test = _split_data(inputs.predictions, "test", classes)
    if test is None:  # cross-validated runs: pooled out-of-fold predictions
        test = _split_data(inputs.predictions, "cv", classes)
    # Multi-label tasks draw their own per-target curves (the task's report sections).
    classification = inputs.metrics_doc.get("task") != "multilabel" and (
        test is not None or inputs.metrics_doc.get("task") in ("binary", "multiclass")
    )
    bodies: dict[str, str | None] = {
        "summary": _summary(inputs),
        "curves": _curves(inputs, test) if classification else None,
        "calibration": _calibration(inputs, test) if classification else None,
        "confusion": _confusion(inputs, test) if classification else None,
        "training": _training(inputs),
        "gallery": _gallery(inputs) if inputs.gallery else None,
        "model-card": _model_card(inputs),
    }
    order = [(k, t) for k, t in _SECTIONS if bodies[k] is not None]
    quality = inputs.metrics_doc.get("data_quality")
    if quality:
        inputs = _with_quality_section(inputs, quality)
    extra = [(k, t) for k, t, _ in inputs.sections]
    extra_bodies = {k: b for k, _, b in inputs.sections}
    order = order[:1] + extra + order[1:]
    sections = "\n".join(
        _section(key, title, extra_bodies[key] if key in extra_bodies else str(bodies[key]))
        for key, title in order
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="generator" content="medlearn">'
        f"<title>{_e(inputs.title)}</title><style>{CSS}</style></head><body>"
        f'{_header(inputs, order)}<main class="wrap">{sections}</main>'
        f"<footer>Generated by medlearn {_e(__version__)}. This report is self-contained: "
        "it loads no external resources. Metrics describe the listed splits only; "
        "validate on local data before clinical use.</footer></body></html>\n"
    )


def write_report(path: str | Path, inputs: ReportInputs) -> Path:
    """Build the report and write it to ``path`` atomically.

    The HTML is written to a temporary file in the same directory and moved into place with
    :func:`os.replace`, so a reader sees the old report or the new one, never a partial file.

    Args:
        path: destination, e.g. ``run_dir / "report.html"``; parent folders are created.
        inputs: what to draw.

    Returns:
        The path written.
    """
    path = Path(path)
    text = build_report(inputs)  # build first: a failure leaves any old report untouched
    atomic_write_text(path, text)
    return path
