"""``medlearn predict BUNDLE INPUT... [--explain]`` — one JSON line per input."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from medlearn.cli._app import app, console_err


@app.command("predict")
def predict_cmd(
    bundle: Path = typer.Argument(
        ..., help="A bundle directory, or a run directory holding bundle/."
    ),
    inputs: list[str] = typer.Argument(
        ...,
        help="Inputs: image files or folders (PNG, JPEG, TIFF, DICOM, NIfTI), CSV/Parquet tables.",
    ),
    explain: bool = typer.Option(
        False, "--explain", help="Write a Grad-CAM overlay PNG per input."
    ),
    explain_dir: Path = typer.Option(
        Path("explanations"), "--explain-dir", help="Where --explain writes its PNGs."
    ),
    out_dir: Path = typer.Option(
        Path("predictions"),
        "--out-dir",
        help="Where file outputs go (e.g. segmentation masks as NIfTI).",
    ),
) -> None:
    """Predict every input. Bad inputs get an error line; the exit code is 1 if any was bad."""
    from medlearn.pipeline import predict

    n_bad = 0
    n = 0
    for row in predict(
        bundle, inputs, explain=explain, explain_dir=explain_dir, output_dir=out_dir
    ):
        n += 1
        if "error" in row:
            n_bad += 1
        typer.echo(json.dumps(row))
    if n_bad:
        console_err.print(
            f"{n_bad} of {n} input(s) could not be predicted (see their error lines)."
        )
        raise typer.Exit(code=1)
