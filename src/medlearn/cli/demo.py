"""``medlearn demo`` — the imaging pipeline end to end on PneumoniaMNIST, in a few minutes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from medlearn.cli._app import app, console
from medlearn.cli._summary import print_summary

#: The demo run file. Same schema as examples/imaging/pneumoniamnist.yaml, with a shorter
#: training budget so `make demo` finishes in under 10 minutes on 2 CPU cores.
DEMO_RUN: dict[str, Any] = {
    "name": "demo-pneumoniamnist",
    "task": "binary",
    "data": {"dataset": "pneumoniamnist", "split": {"method": "given"}},
    "model": {"name": "simple_cnn", "params": {"width": 32, "depth": 4, "dropout": 0.2}},
    "training": {
        "epochs": 12,
        "batch_size": 128,
        "lr": 2.0e-3,
        "optimizer": "adamw",
        "weight_decay": 5.0e-4,
        "scheduler": "cosine",
        "ensemble": 3,
        "max_minutes": 4.0,
        "seed": 0,
    },
    "evaluation": {"bootstrap": 1000, "gallery": 6, "tta": True},
}


@app.command("demo")
def demo_cmd(
    out: Path | None = typer.Option(None, "--out", help="Run directory (default runs/demo-.../)."),
    minutes: float = typer.Option(4.0, "--minutes", help="Training time budget in minutes."),
    set_: list[str] = typer.Option(
        [], "--set", help="Override a demo key, e.g. --set training.epochs=2."
    ),
) -> None:
    """Train, calibrate, evaluate and report a pneumonia classifier on PneumoniaMNIST."""
    import copy

    from medlearn.config import apply_overrides, validate_config
    from medlearn.pipeline import train

    raw = copy.deepcopy(DEMO_RUN)
    raw["training"]["max_minutes"] = minutes
    apply_overrides(raw, set_)
    cfg = validate_config(raw, source="medlearn demo")
    console.rule(
        "medlearn demo: pneumonia vs normal chest X-rays (PneumoniaMNIST, official splits)"
    )
    result = train(cfg, out=out, echo=console.print)
    print_summary(result.metrics, result.run_dir)
