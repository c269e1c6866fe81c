"""The root Typer app; verb modules attach their commands here."""

from __future__ import annotations

import logging
import os

import typer
from rich.console import Console

console = Console()
console_err = Console(stderr=True)

app = typer.Typer(
    name="medlearn",
    help=(
        "medlearn — deep learning for precision medicine.\n\n"
        "From medical data to a validated, calibrated, explained model: "
        "`medlearn demo` runs the imaging pipeline end to end. Add -v for tracebacks."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode="rich",
)


def _quiet_logs() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "pytorch_lightning"):
        logging.getLogger(name).setLevel(logging.ERROR)
    os.environ.setdefault("PYTHONWARNINGS", "ignore")


_quiet_logs()

# Verb modules register their commands on import (after `app` exists).
from medlearn.cli import data as _data  # noqa: E402
from medlearn.cli import demo as _demo  # noqa: E402
from medlearn.cli import evaluate as _evaluate  # noqa: E402
from medlearn.cli import models as _models  # noqa: E402
from medlearn.cli import predict as _predict  # noqa: E402
from medlearn.cli import report as _report  # noqa: E402
from medlearn.cli import train as _train  # noqa: E402

VERB_MODULES = (_demo, _train, _evaluate, _predict, _report, _models, _data)
app.add_typer(_data.app, name="data", help="Datasets: list | info NAME | fetch NAME | check PATH")
