"""``medlearn registry push | list | promote | rollback | verify | migrate`` (model registry)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from medlearn.cli._db import DB_HELP, open_db

__all__ = ["app"]

_out = Console()
app = typer.Typer(
    help="Model registry: push bundles, list versions, move aliases, verify checksums.",
    no_args_is_help=True,
)


def _registry(db: str | None):  # noqa: ANN202
    from medlearn.serving.store import ModelRegistry

    return ModelRegistry(open_db(db))


@app.command("push")
def push_cmd(
    bundle: Path = typer.Argument(..., help="A bundle directory or a run directory."),
    name: str = typer.Option(..., "--name", help="Model name in the registry."),
    version: str | None = typer.Option(None, "--version", help="Default: next integer."),
    db: str | None = typer.Option(None, "--db", help=DB_HELP),
) -> None:
    """Register a bundle (its checksums are verified first)."""
    info = _registry(db).push(bundle, name=name, version=version)
    typer.echo(f"pushed {info.name} version {info.version} ({info.task}, {info.domain})")


@app.command("list")
def list_cmd(
    name: str | None = typer.Argument(None, help="Only this model."),
    db: str | None = typer.Option(None, "--db", help=DB_HELP),
) -> None:
    """List models, versions and aliases."""
    table = Table(title="medlearn registry")
    for col in ("name", "version", "aliases", "task", "domain", "created", "bundle"):
        table.add_column(col, overflow="fold")
    for v in _registry(db).list(name):
        table.add_row(
            v.name, v.version, ", ".join(v.aliases), v.task, v.domain, v.created, v.bundle_path
        )
    _out.print(table)


@app.command("promote")
def promote_cmd(
    name: str = typer.Argument(..., help="Model name."),
    version: str = typer.Argument(..., help="Version to point the alias at."),
    alias: str = typer.Option("production", "--alias", help="Alias to move (e.g. shadow)."),
    db: str | None = typer.Option(None, "--db", help=DB_HELP),
) -> None:
    """Point an alias (default production) at a version."""
    prev = _registry(db).promote(name, version, alias=alias)
    typer.echo(f"{name}@{alias} → {version}" + (f" (was {prev})" if prev else ""))


@app.command("rollback")
def rollback_cmd(
    name: str = typer.Argument(..., help="Model name."),
    alias: str = typer.Option("production", "--alias", help="Alias to move back."),
    db: str | None = typer.Option(None, "--db", help=DB_HELP),
) -> None:
    """Move an alias back to the version it pointed at before its last move."""
    version = _registry(db).rollback(name, alias=alias)
    typer.echo(f"{name}@{alias} → {version}")


@app.command("verify")
def verify_cmd(
    name: str | None = typer.Argument(None, help="Only this model."),
    db: str | None = typer.Option(None, "--db", help=DB_HELP),
) -> None:
    """Re-check the sha256 of every file of every registered version (exit 1 on a mismatch)."""
    bad = 0
    results = _registry(db).verify(name)
    for v, problem in results:
        typer.echo(f"{v.name} {v.version}: {'ok' if problem is None else 'FAILED: ' + problem}")
        bad += problem is not None
    typer.echo(f"{len(results) - bad} of {len(results)} version(s) verified")
    if bad:
        raise typer.Exit(code=1)


@app.command("migrate")
def migrate_cmd(db: str | None = typer.Option(None, "--db", help=DB_HELP)) -> None:
    """Create or upgrade the serving database schema (Alembic)."""
    from medlearn.serving.store import make_engine, migrate

    rev = migrate(make_engine(db))
    typer.echo(f"database at revision {rev}")
