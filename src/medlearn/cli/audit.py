"""``medlearn audit verify | export`` — check and export the hash-chained audit log."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import typer

from medlearn.cli._db import DB_HELP, open_db

__all__ = ["app"]

app = typer.Typer(help="Audit log: verify the hash chain, export rows.", no_args_is_help=True)


@app.command("verify")
def verify_cmd(db: str | None = typer.Option(None, "--db", help=DB_HELP)) -> None:
    """Check every row's hash and link; exit 1 naming the first bad row."""
    from medlearn.serving.audit import verify_chain

    rep = verify_chain(open_db(db))
    if rep.ok:
        typer.echo(f"audit log OK: {rep.rows} row(s), hash chain intact")
        return
    typer.echo(f"audit log FAILED at seq {rep.first_bad_seq}: {rep.problem}", err=True)
    raise typer.Exit(code=1)


@app.command("export")
def export_cmd(
    out: Path | None = typer.Option(None, "--out", help="File to write (default stdout)."),
    fmt: str = typer.Option("jsonl", "--format", help="jsonl | csv"),
    db: str | None = typer.Option(None, "--db", help=DB_HELP),
) -> None:
    """Export every audit row with its hashes (for archiving or an external check)."""
    from medlearn.errors import ConfigError
    from medlearn.serving.audit import export_rows

    if fmt not in ("jsonl", "csv"):
        raise ConfigError(f"--format {fmt!r} is not supported.", hint="Use jsonl or csv.")
    fh = out.open("w", newline="") if out else sys.stdout
    try:
        rows = export_rows(open_db(db))
        if fmt == "jsonl":
            for r in rows:
                fh.write(json.dumps(r) + "\n")
        else:
            writer = None
            for r in rows:
                if writer is None:
                    writer = csv.DictWriter(fh, fieldnames=list(r))
                    writer.writeheader()
                writer.writerow(r)
    finally:
        if out:
            fh.close()
