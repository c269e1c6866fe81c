"""Compare models on identical splits: ``medlearn compare RUNFILE``.

Trains ``model`` and every entry of the run file's ``compare:`` list with the same data and
split settings (so every model sees the same folds), then ranks them by the first metric in
``evaluation.metrics`` on the same rows — pooled out-of-fold predictions (split ``cv``) for
k-fold runs, else the test split — with a paired bootstrap CI of each model's difference
from the best (:func:`medlearn.evaluation.paired_bootstrap_diff`, resampling patients).
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medlearn._io import atomic_write_json, atomic_write_text
from medlearn.config import ModelConfig, RunConfig
from medlearn.errors import ConfigError, DataValidationError

__all__ = ["compare"]

Echo = Callable[[str], None]


def _labels(models: list[ModelConfig]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for m in models:
        k = seen.get(m.name, 0)
        seen[m.name] = k + 1
        out.append(m.name if k == 0 else f"{m.name}-{k + 1}")
    return out


def _scores(frame: pd.DataFrame, task: str) -> np.ndarray:
    if task == "regression":
        return frame["prediction"].to_numpy(dtype=float)
    cols = sorted(
        (c for c in frame.columns if c.startswith("prob_") and c[5:].isdigit()),
        key=lambda c: int(c[5:]),
    )
    return frame[cols].to_numpy(dtype=float)


def _threshold(frame: pd.DataFrame) -> float:
    if "threshold" in frame.columns and frame["threshold"].notna().any():
        return float(frame["threshold"].dropna().mean())
    return 0.5


def compare(
    cfg: RunConfig,
    *,
    out: str | Path | None = None,
    echo: Echo = print,
) -> dict[str, Any]:
    """Train ``cfg.model`` and each ``cfg.compare`` model on the same splits and rank them.

    Args:
        cfg: the validated run file; ``compare`` must list at least one further model.
        out: output directory (default ``runs/<name>/compare-<time>``); each model's run
            directory is ``out/<model>``.
        echo: where progress lines go.

    Returns:
        The ``compare.json`` document: ``metric``, ``higher_is_better``, ``split``, ``n``,
        ``best`` and ``models`` (ranked; each with ``value``, ``ci95`` and the paired
        ``diff_vs_best`` ``{value, ci95, p_value}``). Also written to ``out/compare.json``
        with a small self-contained ``out/compare.html``.

    Raises:
        ConfigError: when ``compare`` is empty or no metric applies to the task.
    """
    from medlearn.evaluation import paired_bootstrap_diff
    from medlearn.pipeline import train
    from medlearn.registry import METRICS

    if not cfg.compare:
        raise ConfigError(
            "The run file lists no models under 'compare:'.",
            hint="Add e.g. `compare: [{name: random_forest}, {name: svm}]`.",
        )
    models = [cfg.model, *cfg.compare]
    labels = _labels(models)
    metric = cfg.evaluation.metrics[0] if cfg.evaluation.metrics else None
    if cfg.task == "regression" and (
        metric is None or "regression" not in (METRICS.meta(metric).get("tasks") or ())
    ):
        metric = "rmse"
    if metric is None:
        raise ConfigError("evaluation.metrics is empty; compare ranks by its first metric.")
    higher = bool(METRICS.meta(metric).get("higher_is_better", True))
    root = (
        Path(out)
        if out is not None
        else Path("runs") / cfg.name / f"compare-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    )
    root.mkdir(parents=True, exist_ok=True)

    frames: dict[str, pd.DataFrame] = {}
    runs: dict[str, dict[str, Any]] = {}
    for label, model in zip(labels, models, strict=True):
        echo(f"== {label} ==")
        one = cfg.model_copy(update={"model": model, "compare": [], "name": f"{cfg.name}-{label}"})
        result = train(one, out=root / label, echo=echo)
        frame = pd.read_parquet(result.run_dir / "predictions.parquet")
        split = "cv" if (frame["split"] == "cv").any() else "test"
        frames[label] = frame[frame["split"] == split].sort_values("id").reset_index(drop=True)
        runs[label] = {
            "run_dir": str(result.run_dir),
            "split": split,
            "fit_seconds": result.metrics.get("timing", {}).get("fit_seconds"),
            "metrics": result.metrics["metrics"].get(split, {}),
        }
    split = runs[labels[0]]["split"]
    ids = frames[labels[0]]["id"].tolist()
    for label in labels[1:]:
        if frames[label]["id"].tolist() != ids:
            raise DataValidationError(
                f"Model {label!r} was scored on other rows than {labels[0]!r}; cannot pair them.",
                hint="Keep data and data.split identical for every compared model.",
            )
    base = frames[labels[0]]
    y = base["target"].to_numpy()
    groups = base["patient_id"].astype(str).to_numpy()

    def value_of(label: str) -> float | None:
        entry = runs[label]["metrics"].get(metric) or {}
        return entry.get("value")

    known = [lab for lab in labels if value_of(lab) is not None]
    if not known:
        raise DataValidationError(f"No model has a value of {metric!r} on the {split} split.")
    best = (max if higher else min)(known, key=lambda lab: float(value_of(lab)))  # type: ignore[arg-type]
    rows = []
    for label in labels:
        diff = None
        if label != best and value_of(label) is not None:
            diff = paired_bootstrap_diff(
                y,
                _scores(frames[label], cfg.task),
                _scores(frames[best], cfg.task),
                metric,
                task=cfg.task,  # type: ignore[arg-type]
                threshold=_threshold(frames[label]),
                threshold_b=_threshold(frames[best]),
                bootstrap=max(cfg.evaluation.bootstrap, 200),
                seed=cfg.training.seed,
                groups=groups,
            )
        entry = runs[label]["metrics"].get(metric) or {}
        rows.append(
            {
                "model": label,
                "name": models[labels.index(label)].name,
                "params": models[labels.index(label)].params,
                "value": entry.get("value"),
                "ci95": entry.get("ci95"),
                "diff_vs_best": None
                if diff is None
                else {k: diff[k] for k in ("value", "ci95", "p_value")},
                "fit_seconds": runs[label]["fit_seconds"],
                "run_dir": runs[label]["run_dir"],
            }
        )
    sign = -1.0 if higher else 1.0
    rows.sort(key=lambda r: (r["value"] is None, sign * (r["value"] or 0.0)))
    for rank, row in enumerate(rows, start=1):
        row["rank"] = rank
    doc = {
        "name": cfg.name,
        "task": cfg.task,
        "dataset": cfg.data.dataset or cfg.data.path,
        "metric": metric,
        "higher_is_better": higher,
        "split": split,
        "n": len(ids),
        "seed": cfg.data.split.seed,
        "best": best,
        "models": rows,
    }
    atomic_write_json(root / "compare.json", doc)
    atomic_write_text(root / "compare.html", _html(doc))
    doc["out"] = str(root)
    return doc


def _fmt(value: Any, ci: Any = None) -> str:
    if value is None:
        return "–"
    text = f"{value:.3f}"
    if ci:
        text += f" [{ci[0]:.3f}, {ci[1]:.3f}]"
    return text


def _html(doc: dict[str, Any]) -> str:
    """A small self-contained HTML table of the ranking."""
    e = html.escape
    head = (
        "<tr><th>rank</th><th>model</th><th>params</th>"
        f"<th>{e(doc['metric'])} (95% CI)</th><th>difference vs best (paired 95% CI)</th>"
        "<th>p</th><th>fit s</th></tr>"
    )
    body = []
    for r in doc["models"]:
        d = r["diff_vs_best"] or {}
        diff = "best" if r["model"] == doc["best"] else _fmt(d.get("value"), d.get("ci95"))
        p = "" if d.get("p_value") is None else f"{d['p_value']:.3f}"
        secs = "" if r["fit_seconds"] is None else str(r["fit_seconds"])
        body.append(
            f"<tr><td>{r['rank']}</td><td>{e(r['model'])}</td>"
            f"<td><code>{e(json.dumps(r['params']))}</code></td>"
            f"<td>{_fmt(r['value'], r['ci95'])}</td><td>{diff}</td><td>{p}</td>"
            f"<td>{secs}</td></tr>"
        )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>medlearn compare — {e(str(doc['name']))}</title><style>"
        "body{font:14px system-ui,sans-serif;margin:2em;color:#222}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;"
        "text-align:left}th{background:#f3f3f3}code{font-size:12px}</style></head><body>"
        f"<h1>Model comparison: {e(str(doc['name']))}</h1>"
        f"<p>{e(str(doc['dataset']))}, task {e(doc['task'])}; ranked by "
        f"<b>{e(doc['metric'])}</b> ({'higher' if doc['higher_is_better'] else 'lower'} is "
        f"better) on the same {doc['n']} rows of the <b>{e(doc['split'])}</b> split "
        f"(split seed {doc['seed']}). Differences are paired bootstrap estimates against the "
        "best model, resampling patients.</p>"
        f"<table><thead>{head}</thead><tbody>{''.join(body)}</tbody></table></body></html>\n"
    )
