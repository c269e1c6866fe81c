"""``medlearn report RUN_DIR`` — (re)build report.html."""

from __future__ import annotations

from pathlib import Path

import typer

from medlearn.cli._app import app, console


@app.command("report")
def report_cmd(
    run_dir: Path = typer.Argument(
        ..., help="A run directory (or an evaluation output directory)."
    ),
) -> None:
    """Write RUN_DIR/report.html from the run's saved predictions, metrics and explanations."""
    from medlearn.pipeline import report

    console.print(f"report: {report(run_dir)}")
