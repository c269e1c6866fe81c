"""``medlearn evaluate RUN_DIR --data PATH_OR_RUNFILE [--out DIR]``."""

from __future__ import annotations

from pathlib import Path

import typer

from medlearn.cli._app import app, console
from medlearn.cli._summary import print_summary


@app.command("evaluate")
def evaluate_cmd(
    run_dir: Path = typer.Argument(..., help="A run directory written by `medlearn train`."),
    data: str = typer.Option(
        ..., "--data", help="Data to score: a path, a run file (its test split) or a catalog name."
    ),
    out: Path | None = typer.Option(
        None, "--out", help="Output directory (default RUN_DIR/evaluations/TIME)."
    ),
) -> None:
    """Score a trained model on other data: metrics.json (under metrics.test) and a report."""
    from medlearn.pipeline import evaluate

    result = evaluate(run_dir, data, out=out, echo=console.print)
    print_summary(result.metrics, result.run_dir)
