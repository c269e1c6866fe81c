"""``medlearn train RUNFILE.yaml [--set key=value ...] [--out DIR] [--resume]``."""

from __future__ import annotations

from pathlib import Path

import typer

from medlearn.cli._app import app, console
from medlearn.cli._summary import print_summary
from medlearn.registry import DATASETS, MODELS

_HELP = (
    "Train a model from a run file and write a run directory (config, splits, "
    "checkpoints, bundle, predictions, metrics.json, report.html)."
)


def full_help() -> str:
    """The help text with every registered model and dataset (loads the domain plugins, so
    it is computed only when ``--help`` is asked for; see ``medlearn.cli.main``)."""
    return (
        f"{_HELP}\n\nModels: {', '.join(MODELS.list())}.\n\nDatasets: {', '.join(DATASETS.list())}."
    )


@app.command("train", help=_HELP)
def train_cmd(
    runfile: Path = typer.Argument(
        ..., help="YAML run file, e.g. examples/imaging/pneumoniamnist.yaml"
    ),
    set_: list[str] = typer.Option(
        [], "--set", help="Override a key: --set training.lr=1e-4 (repeatable)."
    ),
    out: Path | None = typer.Option(
        None, "--out", help="Run directory (default runs/NAME/TIME-ID)."
    ),
    resume: bool = typer.Option(
        False, "--resume", help="Continue an interrupted run in --out from its last checkpoint."
    ),
) -> None:
    from medlearn.config import load_config
    from medlearn.pipeline import train

    cfg = load_config(runfile, overrides=set_)
    result = train(cfg, out=out, resume=resume, echo=console.print)
    print_summary(result.metrics, result.run_dir)
