"""``medlearn models list [PATTERN]`` and ``medlearn metrics list``."""

from __future__ import annotations

import typer
from rich.table import Table

from medlearn.cli._app import app, console
from medlearn.registry import METRICS, MODELS

models_app = typer.Typer(help="Registered models.", no_args_is_help=True)
metrics_app = typer.Typer(help="Registered metrics.", no_args_is_help=True)
app.add_typer(models_app, name="models")
app.add_typer(metrics_app, name="metrics")


@models_app.command("list")
def models_list(
    pattern: str = typer.Argument("*", help="Glob pattern, e.g. 'res*'."),
    domain: str | None = typer.Option(None, "--domain", help="Only this domain, e.g. imaging."),
) -> None:
    """List registered models with their domain, tasks and description."""
    where = {"domain": domain} if domain else {}
    table = Table(title="medlearn models")
    for col in ("name", "domain", "tasks", "description"):
        table.add_column(col)
    for name in MODELS.list(pattern, **where):
        meta = MODELS.meta(name)
        table.add_row(
            name,
            str(meta.get("domain", "")),
            ", ".join(meta.get("tasks", ())),
            str(meta.get("description", "")),
        )
    console.print(table)


@metrics_app.command("list")
def metrics_list() -> None:
    """List registered metrics."""
    table = Table(title="medlearn metrics")
    for col in ("name", "higher is better", "needs", "tasks"):
        table.add_column(col)
    for name in METRICS.list():
        meta = METRICS.meta(name)
        table.add_row(
            name,
            str(meta.get("higher_is_better")),
            str(meta.get("needs", "")),
            ", ".join(meta.get("tasks", ())),
        )
    console.print(table)
