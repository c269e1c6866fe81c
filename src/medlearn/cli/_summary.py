"""Summary table printed after train / evaluate / demo."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.table import Table

from medlearn.cli._app import console


def _fmt(entry: dict[str, Any] | None) -> str:
    if not entry or entry.get("value") is None:
        return "–"
    text = f"{entry['value']:.3f}"
    if entry.get("ci95"):
        lo, hi = entry["ci95"]
        text += f" [{lo:.3f}, {hi:.3f}]"
    return text


def print_summary(doc: dict[str, Any], run_dir: Path) -> None:
    """Print cross-validation, test and val metrics with 95% CIs, then where the outputs are."""
    metrics = doc.get("metrics", {})
    table = Table(title=f"{doc.get('model')} on {doc.get('dataset')}  (95% bootstrap CI)")
    table.add_column("metric")
    splits = [s for s in ("cv", "test", "val") if s in metrics]
    labels = {"cv": "cross-validation"}
    for s in splits:
        table.add_column(f"{labels.get(s, s)} (n={doc.get('n', {}).get(s, '?')})")
    names: list[str] = []
    for s in splits:  # every metric of any split, in first-seen order
        names += [
            n
            for n, v in metrics[s].items()
            if n not in names and isinstance(v, dict) and "value" in v
        ]
    for name in names:
        table.add_row(name, *[_fmt(metrics[s].get(name)) for s in splits])
    console.print(table)
    timing = doc.get("timing", {})
    if "fit_seconds" in timing:
        console.print(f"fit {timing['fit_seconds']:.1f} s on {timing.get('threads')} CPU threads")
    for s in ("cv", "test"):
        if "auroc" in metrics.get(s, {}):
            console.print(f"{labels.get(s, s)} AUROC {_fmt(metrics[s]['auroc'])}")
            break
    console.print(f"run directory: {run_dir}")
    report = run_dir / "report.html"
    if report.exists():
        console.print(f"report: {report}")
