"""``medlearn compare RUNFILE.yaml [--set key=value ...] [--out DIR]``."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from medlearn.cli._app import app, console


@app.command("compare")
def compare_cmd(
    runfile: Path = typer.Argument(
        ...,
        help="YAML run file with a `compare:` list, e.g. examples/clinical/heart_cleveland.yaml",
    ),
    set_: list[str] = typer.Option(
        [], "--set", help="Override a key: --set data.split.seed=1 (repeatable)."
    ),
    out: Path | None = typer.Option(
        None, "--out", help="Output directory (default runs/NAME/compare-TIME)."
    ),
) -> None:
    """Train `model` and every `compare:` model on identical splits; rank them with paired
    bootstrap CIs of the differences (compare.json, compare.html, one run directory each)."""
    from medlearn.compare import compare
    from medlearn.config import load_config

    cfg = load_config(runfile, overrides=set_)
    doc = compare(cfg, out=out, echo=console.print)
    table = Table(
        title=f"{doc['metric']} on the {doc['split']} split (n={doc['n']}), paired 95% CIs"
    )
    for col in ("rank", "model", doc["metric"], "diff vs best", "p", "fit s"):
        table.add_column(col)

    def fmt(v, ci=None) -> str:
        if v is None:
            return "–"
        return f"{v:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")

    for r in doc["models"]:
        d = r["diff_vs_best"] or {}
        table.add_row(
            str(r["rank"]),
            r["model"],
            fmt(r["value"], r["ci95"]),
            "best" if r["model"] == doc["best"] else fmt(d.get("value"), d.get("ci95")),
            "" if d.get("p_value") is None else f"{d['p_value']:.3f}",
            "" if r["fit_seconds"] is None else f"{r['fit_seconds']:.2f}",
        )
    console.print(table)
    console.print(f"comparison: {Path(doc['out']) / 'compare.html'}")
