"""Alembic environment for the serving database.

medlearn runs migrations programmatically (:func:`medlearn.serving.store.migrate`), passing
an open connection in ``config.attributes["connection"]``; there is no ``alembic.ini``.
"""

from __future__ import annotations

from alembic import context

from medlearn.serving.store import Base

target_metadata = Base.metadata


def run_migrations_online() -> None:
    """Run the migrations on the connection medlearn passed in."""
    connection = context.config.attributes.get("connection")
    if connection is None:  # pragma: no cover - only reachable through the alembic CLI
        raise RuntimeError("Run migrations with `medlearn registry migrate --db URL`.")
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations_online()
