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
    """Print test (and val) metrics with 95% CIs, then where the outputs are."""
    metrics = doc.get("metrics", {})
    table = Table(title=f"{doc.get('model')} on {doc.get('dataset')}  (95% bootstrap CI)")
    table.add_column("metric")
    splits = [s for s in ("test", "val") if s in metrics]
    for s in splits:
        table.add_column(f"{s} (n={doc.get('n', {}).get(s, '?')})")
    names = list(metrics.get("test", {}))
    for name in names:
        table.add_row(name, *[_fmt(metrics[s].get(name)) for s in splits])
    console.print(table)
    timing = doc.get("timing", {})
    if "fit_seconds" in timing:
        console.print(f"fit {timing['fit_seconds']:.1f} s on {timing.get('threads')} CPU threads")
    if "auroc" in metrics.get("test", {}):
        console.print(f"test AUROC {_fmt(metrics['test']['auroc'])}")
    console.print(f"run directory: {run_dir}")
    report = run_dir / "report.html"
    if report.exists():
        console.print(f"report: {report}")
