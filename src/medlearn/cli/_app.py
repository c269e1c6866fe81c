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
from medlearn.cli import audit as _audit  # noqa: E402
from medlearn.cli import compare as _compare  # noqa: E402
from medlearn.cli import data as _data  # noqa: E402
from medlearn.cli import demo as _demo  # noqa: E402
from medlearn.cli import evaluate as _evaluate  # noqa: E402
from medlearn.cli import keys as _keys  # noqa: E402
from medlearn.cli import models as _models  # noqa: E402
from medlearn.cli import monitor as _monitor  # noqa: E402
from medlearn.cli import predict as _predict  # noqa: E402
from medlearn.cli import registry_cmd as _registry_cmd  # noqa: E402
from medlearn.cli import report as _report  # noqa: E402
from medlearn.cli import sample as _sample  # noqa: E402
from medlearn.cli import serve as _serve  # noqa: E402
from medlearn.cli import train as _train  # noqa: E402

VERB_MODULES = (
    _demo,
    _train,
    _evaluate,
    _predict,
    _report,
    _sample,
    _models,
    _data,
    _serve,
    _registry_cmd,
    _keys,
    _audit,
    _monitor,
    _compare,
)
app.add_typer(_data.app, name="data", help="Datasets: list | info NAME | fetch NAME | check PATH")
app.add_typer(
    _registry_cmd.app,
    name="registry",
    help="Model registry: push | list | promote | rollback | verify | migrate",
)
app.add_typer(_keys.app, name="keys", help="API keys: create --role R | list | revoke KEY_ID")
app.add_typer(_audit.app, name="audit", help="Audit log: verify | export")
app.add_typer(_monitor.app, name="monitor", help="Monitoring: report (drift, shadow)")
