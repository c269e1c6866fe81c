"""build_report / write_report on small synthetic runs."""

from __future__ import annotations

import os
import re

import numpy as np
import pandas as pd
import pytest

from medlearn.evaluation import (
    GalleryItem,
    ReportInputs,
    build_report,
    evaluate_predictions,
    softmax,
    write_report,
)

HEADINGS = [
    "Summary",
    "ROC and precision-recall curves",
    "Calibration",
    "Confusion matrix",
    "Training curves",
    "Grad-CAM gallery",
    "Model card",
]
SECRET = "PATIENT-SECRET-"


def _inputs(n_classes: int, *, gallery: bool, raw: bool = True) -> ReportInputs:
    rng = np.random.default_rng(n_classes)
    n = 120
    y = rng.integers(0, n_classes, n)
    logits = rng.normal(size=(n, n_classes))
    logits[np.arange(n), y] += 2.0
    proba, raw_proba = softmax(logits), softmax(2.0 * logits)
    split = np.where(np.arange(n) < 40, "val", "test")
    frame = pd.DataFrame(
        {
            "id": [f"rec-{i:03d}" for i in range(n)],
            "patient_id": [f"{SECRET}{i // 2:03d}" for i in range(n)],
            "split": split,
            "target": y,
            "prediction": proba.argmax(1),
        }
    )
    for k in range(n_classes):
        frame[f"prob_{k}"] = proba[:, k]
        if raw:
            frame[f"raw_prob_{k}"] = raw_proba[:, k]
    task = "binary" if n_classes == 2 else "multiclass"
    metrics = ["auroc", "accuracy", "ece"]
    test, val = split == "test", split == "val"
    doc = {
        "task": task,
        "dataset": "synthetic",
        "model": "tiny_cnn",
        "n": {"train": 200, "val": int(val.sum()), "test": int(test.sum())},
        "metrics": {
            "test": evaluate_predictions(
                y[test], proba[test], task=task, metrics=metrics, bootstrap=50
            ),
            "val": evaluate_predictions(
                y[val], proba[val], task=task, metrics=metrics, bootstrap=0
            ),
        },
        "timing": {"fit_seconds": 3.2, "predict_seconds": 0.1, "device": "cpu", "threads": 2},
        "threshold": 0.4 if task == "binary" else None,
        "calibration": {"method": "temperature", "temperature": 1.7},
        "split": {"method": "stratified", "seed": 0},
    }
    history = [
        {
            "member": m,
            "epoch": e,
            "train_loss": 1 / (e + 1),
            "val_loss": 1.1 / (e + 1),
            "val_auroc": 0.7 + e / 50,
        }
        for m in range(2)
        for e in range(4)
    ]
    items = []
    if gallery:
        for i, correct in enumerate([True, False, True]):
            image = rng.random((16, 16)) if i != 2 else rng.random((16, 16, 3))
            items.append(
                GalleryItem(
                    id=f"rec-{i:03d}",
                    true_label="a",
                    predicted_label="a" if correct else "b",
                    probability=0.8,
                    correct=correct,
                    image=image,
                    heatmap=rng.random((16, 16)) if i != 1 else None,
                )
            )
    return ReportInputs(
        title="Synthetic <run> & report",
        metrics_doc=doc,
        config={"name": "synthetic", "training": {"monitor": "auroc", "epochs": 4}},
        predictions=frame,
        classes=[f"class_{k}" for k in range(n_classes)],
        threshold=doc["threshold"],
        history=history,
        gallery=items,
        model_card={
            "intended_use": "Research only.",
            "limitations": ["Synthetic data only.", "Small test set."],
            "training": {"optimizer": "adam", "lr": 1e-4},
            "ethics_review": "Not applicable.",
        },
        notes=["Built by the unit tests."],
        created="2024-01-01 00:00 UTC",
    )


def _check_self_contained(html: str) -> None:
    assert html.startswith("<!DOCTYPE html>")
    assert "data:image/png;base64," in html
    for attr in re.findall(r'(?:src|href)\s*=\s*"([^"]*)"', html):
        assert not attr.startswith(("http://", "https://", "//")), attr
    assert "http://" not in html and "https://" not in html
    assert "<script" not in html.lower()
    assert SECRET not in html  # patient ids never printed


@pytest.mark.parametrize(("n_classes", "gallery"), [(2, True), (2, False), (4, True), (3, False)])
def test_report_has_every_section(n_classes, gallery):
    html = build_report(_inputs(n_classes, gallery=gallery))
    _check_self_contained(html)
    headings = [h for h in HEADINGS if gallery or h != "Grad-CAM gallery"]
    assert ("<h2>Grad-CAM gallery</h2>" in html) == gallery  # no empty gallery section
    positions = [html.find(f"<h2>{h}</h2>") for h in headings]
    assert all(p > 0 for p in positions), dict(zip(headings, positions, strict=True))
    assert positions == sorted(positions)  # in the documented order
    assert "Synthetic &lt;run&gt; &amp; report" in html  # escaped title
    assert "Built by the unit tests." in html
    assert "Research only." in html and "Small test set." in html
    assert "Ethics review" in html  # extra card keys are rendered generically
    if gallery:
        assert "Correct predictions (2)" in html and "Incorrect predictions (1)" in html
        assert "rec-001" in html
    else:
        assert "Grad-CAM" not in html
    # Summary table: value and CI of the test AUROC.
    auroc = _inputs(n_classes, gallery=False).metrics_doc["metrics"]["test"]["auroc"]
    assert f"{auroc['value']:.3f}" in html and f"{auroc['ci95'][0]:.3f}" in html


def test_confusion_matrix_uses_the_threshold():
    inputs = _inputs(2, gallery=False)
    frame = inputs.predictions
    test = frame[frame["split"] == "test"]
    for threshold in (0.2, 0.8):
        inputs.threshold = threshold
        html = build_report(inputs)
        pred = (test["prob_1"] >= threshold).astype(int)
        tp = int(((pred == 1) & (test["target"] == 1)).sum())
        assert f"≥ {threshold:.3f}" in html
        cells = re.findall(r'<td class="cm"[^>]*><b>([\d,]+)</b>', html)
        assert int(cells[3]) == tp  # row "class_1", column "class_1"


def test_minimal_inputs_still_build():
    html = build_report(ReportInputs(title="empty", metrics_doc={"task": "binary"}))
    for heading in HEADINGS[:-2] + HEADINGS[-1:]:  # all but the (empty) gallery
        assert f"<h2>{heading}</h2>" in html
    assert "No labelled test predictions are available." in html
    assert "No training history was recorded" in html


def test_non_classification_report_has_task_sections_instead_of_roc():
    inputs = ReportInputs(
        title="survival",
        metrics_doc={"task": "survival", "metrics": {"test": {"c_index": {"value": 0.7}}}},
        sections=[("km", "Kaplan-Meier curves", "<p>KM body</p>")],
    )
    html = build_report(inputs)
    assert "<h2>Kaplan-Meier curves</h2>" in html and "<p>KM body</p>" in html
    assert '<a href="#km">' in html
    assert "ROC and precision-recall curves" not in html
    assert html.index("<h2>Summary</h2>") < html.index("<h2>Kaplan-Meier curves</h2>")
    assert html.index("<h2>Kaplan-Meier curves</h2>") < html.index("<h2>Model card</h2>")


def test_write_report_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "run" / "report.html"
    inputs = ReportInputs(title="first", metrics_doc={"task": "binary"})
    assert write_report(path, inputs) == path
    first = path.read_text(encoding="utf-8")
    assert "<h2>Summary</h2>" in first
    assert [p.name for p in path.parent.iterdir()] == ["report.html"]

    # A crash while moving the file into place leaves the old report and no temp file.
    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    inputs.title = "second"
    with pytest.raises(OSError, match="disk full"):
        write_report(path, inputs)
    assert path.read_text(encoding="utf-8") == first
    assert [p.name for p in path.parent.iterdir()] == ["report.html"]


def test_data_quality_counts_get_their_own_section():
    doc = {
        "task": "binary",
        "data_quality": {"unknown_variable": 3, "set-b": {"out_of_window": 12}},
    }
    html = build_report(ReportInputs(title="q", metrics_doc=doc))
    assert "<h2>Data quality</h2>" in html and '<a href="#data-quality">' in html
    assert "<td>unknown variable</td><td>3</td>" in html
    assert "set-b — out of window" in html


def test_long_mappings_fold_their_tail_into_details():
    from medlearn.evaluation.report import _KV_SHOWN, _render_value

    short = _render_value({f"t{i}": i for i in range(_KV_SHOWN + 5)})
    assert "<details>" not in short and short.count("<tr>") == _KV_SHOWN + 5
    html = _render_value({f"t{i}": i for i in range(202)})
    shown, folded = html.split("<details>")
    assert shown.count("<tr>") == _KV_SHOWN
    assert f"<summary>{202 - _KV_SHOWN} more</summary>" in folded
    assert folded.count("<tr>") == 202 - _KV_SHOWN  # nothing is dropped


def test_field_names_become_headings_and_data_keys_stay_as_written():
    import medlearn.molecules  # noqa: F401  (registers fp_kernel_ridge, as a molecule run has)
    from medlearn.evaluation.report import _render_value

    html = _render_value(
        {"labels_per_target": {"rdkit:MolWt": 3, "NR-AR": 4, "measured log solubility": 5}}
    )
    assert "<th>Labels per target</th>" in html
    for name in ("rdkit:MolWt", "NR-AR", "measured log solubility"):
        assert f"<th>{name}</th>" in html
    assert "Rdkit:molwt" not in html and "Nr-ar" not in html
    html = _render_value({"val_rmse": {"fp_kernel_ridge": 0.8, "network": 0.9}})
    assert "<th>fp_kernel_ridge</th>" in html and "<th>Network</th>" in html


def test_deep_flat_mappings_read_inline_and_deeper_ones_stay_json():
    from medlearn.evaluation.report import _render_value

    search = {"alpha": 0.003, "gamma": 0.0003, "cv_rmse": 0.976315}
    # depth as in a run's training table: blend, search, model, target
    html = _render_value({"blend": {"search": {"fp_kernel_ridge": {"expt": search}}}})
    assert "alpha 0.003, gamma 0.0003, cv_rmse 0.9763" in html
    assert "<code>" not in html
    # a refitted blend's search, one level further down, still reads as tables
    html = _render_value({"blend": {"refit": {"search": {"fp_kernel_ridge": {"expt": search}}}}})
    assert "alpha 0.003, gamma 0.0003, cv_rmse 0.9763" in html and "<code>" not in html
    nested = {"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": 1}}}}}}}}
    assert "<code>{&quot;g&quot;: {&quot;h&quot;: 1}}</code>" in _render_value(nested)
