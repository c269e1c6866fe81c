"""``medlearn keys create --role R | list | revoke KEY_ID`` — API keys for the service."""

from __future__ import annotations

import typer

from medlearn.cli._db import DB_HELP, open_db

__all__ = ["app"]

app = typer.Typer(help="API keys: create (shown once), list, revoke.", no_args_is_help=True)


@app.command("create")
def create_cmd(
    role: str = typer.Option(..., "--role", help="clinician | admin | auditor"),
    label: str = typer.Option("", "--label", help="A note for whom the key is (no patient data)."),
    db: str | None = typer.Option(None, "--db", help=DB_HELP),
) -> None:
    """Create a key. The key is the LAST line of output and is never shown again."""
    from medlearn.serving.auth import KeyStore

    key_id, key = KeyStore(open_db(db)).create(role, label=label)
    typer.echo(f"created {role} key {key_id}; store it now, it is not shown again:")
    typer.echo(key)


@app.command("list")
def list_cmd(db: str | None = typer.Option(None, "--db", help=DB_HELP)) -> None:
    """List keys (ids, roles, labels; never secrets)."""
    from medlearn.serving.auth import KeyStore

    for k in KeyStore(open_db(db)).list():
        state = f"revoked {k['revoked']}" if k["revoked"] else "active"
        typer.echo(f"{k['key_id']}  {k['role']:<9}  {state:<8}  {k['created']}  {k['label']}")


@app.command("revoke")
def revoke_cmd(
    key_id: str = typer.Argument(..., help="The key's id (`medlearn keys list`)."),
    db: str | None = typer.Option(None, "--db", help=DB_HELP),
) -> None:
    """Revoke a key (servers stop accepting it within seconds)."""
    from medlearn.serving.auth import KeyStore

    KeyStore(open_db(db)).revoke(key_id)
    typer.echo(f"revoked {key_id}")
