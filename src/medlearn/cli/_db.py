"""The ``--db`` option shared by the serving verbs."""

from __future__ import annotations

import typer

__all__ = ["DB_HELP", "db_option", "open_db"]

DB_HELP = (
    "Serving database URL: sqlite:///path.db (default: $MEDLEARN_DB or sqlite:///medlearn.db) "
    "or postgresql+psycopg://user@host/db."
)


def db_option() -> str | None:
    """A fresh ``--db`` option (Typer needs one object per command)."""
    return typer.Option(None, "--db", help=DB_HELP)


def open_db(url: str | None):  # noqa: ANN201 - returns a SQLAlchemy engine
    """An engine for ``url`` with the schema migrated to the newest revision."""
    from medlearn.serving.store import make_engine, migrate

    engine = make_engine(url)
    migrate(engine)
    return engine
