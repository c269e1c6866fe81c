"""The serving database: SQLAlchemy tables, Alembic migrations and the model registry.

One database (a SQLite file by default, any PostgreSQL URL in production) holds:

* ``model_versions`` — every pushed bundle: name, version, bundle path, manifest sha256 and
  the sha256 of every bundle file as pushed (``registry verify`` re-checks them all);
* ``model_aliases`` and ``alias_events`` — movable names (``production``, ``shadow``, ...)
  pointing at versions, and their history (``rollback`` moves an alias back one step);
* ``api_keys`` — hashed API keys with a role (see :mod:`medlearn.serving.auth`);
* ``audit_log`` — the hash-chained request log (see :mod:`medlearn.serving.audit`);
* ``drift_counts`` and ``shadow_results`` — monitoring (see :mod:`medlearn.serving.monitor`).

The schema is created and upgraded only by Alembic (``medlearn registry migrate``; the server
runs it on startup).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from medlearn.errors import ChecksumError, ConfigError, DataNotFoundError

__all__ = [
    "DEFAULT_DB",
    "Alias",
    "AliasEvent",
    "ApiKey",
    "AuditRow",
    "Base",
    "DriftCount",
    "ModelRegistry",
    "ModelVersion",
    "ShadowResult",
    "VersionInfo",
    "default_db_url",
    "make_engine",
    "migrate",
]

DEFAULT_DB = "sqlite:///medlearn.db"


def default_db_url() -> str:
    """``$MEDLEARN_DB`` or a SQLite file ``medlearn.db`` in the working directory."""
    return os.environ.get("MEDLEARN_DB") or DEFAULT_DB


def _now() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    """Declarative base of every serving table."""


class ModelVersion(Base):
    """One pushed bundle."""

    __tablename__ = "model_versions"
    __table_args__ = (sa.UniqueConstraint("name", "version", name="uq_model_version"),)

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(sa.String(128), index=True)
    version: Mapped[str] = mapped_column(sa.String(64))
    bundle_path: Mapped[str] = mapped_column(sa.Text)
    manifest_sha256: Mapped[str] = mapped_column(sa.String(64))
    files_json: Mapped[str] = mapped_column(sa.Text)
    task: Mapped[str] = mapped_column(sa.String(64))
    domain: Mapped[str] = mapped_column(sa.String(64))
    created: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=_now)


class Alias(Base):
    """A movable name pointing at one version of a model."""

    __tablename__ = "model_aliases"

    name: Mapped[str] = mapped_column(sa.String(128), primary_key=True)
    alias: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    version: Mapped[str] = mapped_column(sa.String(64))
    updated: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=_now)


class AliasEvent(Base):
    """History of alias moves (what ``rollback`` walks back)."""

    __tablename__ = "alias_events"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(sa.String(128))
    alias: Mapped[str] = mapped_column(sa.String(64))
    version: Mapped[str | None] = mapped_column(sa.String(64), nullable=True)
    previous: Mapped[str | None] = mapped_column(sa.String(64), nullable=True)
    time: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=_now)


class ApiKey(Base):
    """An API key: public id, role and the sha256 of its secret part (never the secret)."""

    __tablename__ = "api_keys"

    key_id: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    role: Mapped[str] = mapped_column(sa.String(16))
    secret_sha256: Mapped[str] = mapped_column(sa.String(64))
    label: Mapped[str] = mapped_column(sa.String(128), default="")
    created: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=_now)
    revoked: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True), nullable=True)


class AuditRow(Base):
    """One request in the append-only, hash-chained audit log."""

    __tablename__ = "audit_log"

    seq: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=False)
    time: Mapped[str] = mapped_column(sa.String(40))
    key_id: Mapped[str] = mapped_column(sa.String(32))
    endpoint: Mapped[str] = mapped_column(sa.String(200))
    model_name: Mapped[str] = mapped_column(sa.String(128))
    model_version: Mapped[str] = mapped_column(sa.String(64))
    input_sha256: Mapped[str] = mapped_column(sa.String(64))
    output_summary: Mapped[str] = mapped_column(sa.Text)
    latency_ms: Mapped[float] = mapped_column(sa.Float)
    status: Mapped[int] = mapped_column(sa.Integer)
    prev_hash: Mapped[str] = mapped_column(sa.String(64))
    row_hash: Mapped[str] = mapped_column(sa.String(64))


class DriftCount(Base):
    """Binned live-input counts of one model version over one flush interval (no values)."""

    __tablename__ = "drift_counts"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    model_name: Mapped[str] = mapped_column(sa.String(128), index=True)
    model_version: Mapped[str] = mapped_column(sa.String(64))
    time: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=_now)
    n_inputs: Mapped[int] = mapped_column(sa.Integer)
    counts_json: Mapped[str] = mapped_column(sa.Text)


class ShadowResult(Base):
    """A shadow (candidate) version's score of a request, compared with production's."""

    __tablename__ = "shadow_results"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    model_name: Mapped[str] = mapped_column(sa.String(128), index=True)
    version: Mapped[str] = mapped_column(sa.String(64))
    candidate: Mapped[str] = mapped_column(sa.String(64))
    time: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=_now)
    n: Mapped[int] = mapped_column(sa.Integer)
    agree: Mapped[int] = mapped_column(sa.Integer)
    max_abs_diff: Mapped[float] = mapped_column(sa.Float)
    mean_abs_diff: Mapped[float] = mapped_column(sa.Float)


def make_engine(url: str | None = None) -> Engine:
    """An engine for ``url`` (default :func:`default_db_url`); SQLite gets WAL and a busy timeout.

    Raises:
        ConfigError: the URL is not a SQLAlchemy database URL.
    """
    url = url or default_db_url()
    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError:
        raise ConfigError(
            "--db is not a database URL.",
            hint="Use sqlite:///path/to/file.db or postgresql+psycopg://user@host/dbname.",
        ) from None
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(parsed, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    return sa.create_engine(parsed, pool_pre_ping=True, pool_size=10, max_overflow=10)


def migrate(engine: Engine, revision: str = "head") -> str | None:
    """Upgrade the schema with Alembic; returns the revision the database is now at."""
    from alembic import command
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


@dataclass(frozen=True)
class VersionInfo:
    """A registered model version, as the registry reports it."""

    name: str
    version: str
    bundle_path: str
    task: str
    domain: str
    created: str
    aliases: tuple[str, ...]


class ModelRegistry:
    """Model versions and aliases in the serving database.

    Args:
        engine: from :func:`make_engine`; the schema must be migrated (:func:`migrate`).
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- push / list ------------------------------------------------------------------------
    def push(self, bundle: str | Path, *, name: str, version: str | None = None) -> VersionInfo:
        """Register a bundle (its checksums are verified first) as ``name``/``version``.

        ``version`` defaults to one more than the highest integer version of ``name``.

        Raises:
            ChecksumError: a bundle file fails its checksum.
            ConfigError: ``name``/``version`` exists already or is not a valid name.
        """
        from medlearn._io import sha256_file
        from medlearn.bundle import MANIFEST, read_manifest

        _check_name(name, "name")
        manifest = read_manifest(bundle)  # verifies every file
        root = Path(manifest["_dir"]).resolve()
        with sa.orm.Session(self.engine) as s, s.begin():
            if version is None:
                existing = s.scalars(
                    sa.select(ModelVersion.version).where(ModelVersion.name == name)
                ).all()
                nums = [int(v) for v in existing if v.isdigit()]
                version = str(max(nums, default=0) + 1)
            _check_name(version, "version")
            dup = s.scalar(
                sa.select(ModelVersion).where(
                    ModelVersion.name == name, ModelVersion.version == version
                )
            )
            if dup is not None:
                raise ConfigError(
                    f"Model {name!r} already has a version {version!r}.",
                    hint="Pass another --version, or leave it out to use the next number.",
                )
            row = ModelVersion(
                name=name,
                version=version,
                bundle_path=str(root),
                manifest_sha256=sha256_file(root / MANIFEST),
                files_json=json.dumps(manifest.get("files", {}), sort_keys=True),
                task=str(manifest.get("task", "")),
                domain=str(manifest.get("domain", "")),
            )
            s.add(row)
        return self.get(name, version)

    def list(self, name: str | None = None) -> list[VersionInfo]:
        """Every registered version (of ``name`` if given), oldest first."""
        with sa.orm.Session(self.engine) as s:
            q = sa.select(ModelVersion).order_by(ModelVersion.name, ModelVersion.id)
            if name:
                q = q.where(ModelVersion.name == name)
            rows = s.scalars(q).all()
            aliases = s.scalars(sa.select(Alias)).all()
        by = {}
        for a in aliases:
            by.setdefault((a.name, a.version), []).append(a.alias)
        return [_info(r, by.get((r.name, r.version), [])) for r in rows]

    def names(self) -> list[str]:
        """Registered model names, sorted."""
        with sa.orm.Session(self.engine) as s:
            return sorted(set(s.scalars(sa.select(ModelVersion.name)).all()))

    def get(self, name: str, version: str) -> VersionInfo:
        """One version. Raises :class:`DataNotFoundError` when it is not registered."""
        matches = [v for v in self.list(name) if v.version == version]
        if not matches:
            known = ", ".join(v.version for v in self.list(name)) or "none"
            raise DataNotFoundError(
                f"Model {name!r} has no version {version!r} (registered: {known}).",
                hint="Run `medlearn registry list` to see models, versions and aliases.",
            )
        return matches[0]

    def aliases(self, name: str) -> dict[str, str]:
        """``{alias: version}`` of a model."""
        with sa.orm.Session(self.engine) as s:
            rows = s.scalars(sa.select(Alias).where(Alias.name == name)).all()
            return {a.alias: a.version for a in rows}

    def resolve(self, name: str, ref: str | None = None) -> VersionInfo:
        """A version for ``ref``: an alias, a version, or (``None``) ``production`` if set,
        else the newest version.

        Raises:
            DataNotFoundError: unknown model, alias or version.
        """
        versions = self.list(name)
        if not versions:
            raise DataNotFoundError(
                f"No model named {name!r} is registered.",
                hint="Run `medlearn registry list`, or push one with `medlearn registry push`.",
            )
        aliases = self.aliases(name)
        if ref is None:
            ref = "production" if "production" in aliases else versions[-1].version
        if ref in aliases:
            ref = aliases[ref]
        for v in versions:
            if v.version == ref:
                return v
        raise DataNotFoundError(
            f"Model {name!r} has no version or alias {ref!r}.",
            hint=f"Versions: {', '.join(v.version for v in versions)}; "
            f"aliases: {', '.join(sorted(aliases)) or 'none'}.",
        )

    # -- aliases ----------------------------------------------------------------------------
    def promote(self, name: str, version: str, *, alias: str = "production") -> str | None:
        """Point ``alias`` at ``version``; returns the version it pointed at before."""
        _check_name(alias, "alias")
        self.get(name, version)
        with sa.orm.Session(self.engine) as s, s.begin():
            row = s.get(Alias, (name, alias))
            previous = row.version if row else None
            if row is None:
                s.add(Alias(name=name, alias=alias, version=version, updated=_now()))
            else:
                row.version, row.updated = version, _now()
            s.add(AliasEvent(name=name, alias=alias, version=version, previous=previous))
        return previous

    def remove_alias(self, name: str, alias: str) -> None:
        """Delete an alias (e.g. stop a shadow deployment)."""
        with sa.orm.Session(self.engine) as s, s.begin():
            row = s.get(Alias, (name, alias))
            if row is None:
                raise DataNotFoundError(f"Model {name!r} has no alias {alias!r}.")
            s.add(AliasEvent(name=name, alias=alias, version=None, previous=row.version))
            s.delete(row)

    def rollback(self, name: str, *, alias: str = "production") -> str:
        """Move ``alias`` back to the version it pointed at before its last promotion.

        Raises:
            DataNotFoundError: the alias has no earlier version to go back to.
        """
        with sa.orm.Session(self.engine) as s, s.begin():
            row = s.get(Alias, (name, alias))
            events = s.scalars(
                sa.select(AliasEvent)
                .where(AliasEvent.name == name, AliasEvent.alias == alias)
                .order_by(AliasEvent.id.desc())
            ).all()
            last = next((e for e in events if e.version is not None), None)
            if row is None or last is None or last.previous is None:
                raise DataNotFoundError(
                    f"Alias {alias!r} of model {name!r} has no earlier version to roll back to.",
                    hint="Use `medlearn registry promote NAME VERSION --alias ALIAS` instead.",
                )
            target = last.previous
            # The event that last moved the alias to ``target`` tells where to go after it,
            # so repeated rollbacks walk back through history (v3 → v2 → v1).
            earlier = next((e for e in events if e.version == target and e.id < last.id), None)
            s.add(
                AliasEvent(
                    name=name,
                    alias=alias,
                    version=target,
                    previous=earlier.previous if earlier else None,
                )
            )
            row.version, row.updated = target, _now()
        return target

    # -- verification -----------------------------------------------------------------------
    def verify(self, name: str | None = None) -> list[tuple[VersionInfo, str | None]]:
        """Re-check the sha256 of every file of every version (of ``name``).

        Returns:
            ``(version, problem)`` pairs; ``problem`` is ``None`` when all files match the
            checksums recorded at push time.
        """
        from medlearn._io import sha256_file
        from medlearn.bundle import MANIFEST

        out = []
        with sa.orm.Session(self.engine) as s:
            q = sa.select(ModelVersion).order_by(ModelVersion.name, ModelVersion.id)
            if name:
                q = q.where(ModelVersion.name == name)
            rows = s.scalars(q).all()
        for r in rows:
            info = _info(r, [])
            root = Path(r.bundle_path)
            problem = None
            try:
                if sha256_file(root / MANIFEST) != r.manifest_sha256:
                    problem = f"{MANIFEST} changed since push"
                else:
                    for rel, expected in json.loads(r.files_json).items():
                        f = root / rel
                        if not f.is_file():
                            problem = f"{rel} is missing"
                            break
                        if sha256_file(f) != expected:
                            problem = f"{rel} fails its sha256"
                            break
            except OSError as exc:
                problem = f"unreadable ({type(exc).__name__})"
            out.append((info, problem))
        return out

    def verified_bundle(self, info: VersionInfo) -> Path:
        """The bundle directory of ``info`` after checking its manifest against the push.

        Raises:
            ChecksumError: the manifest changed since the bundle was pushed.
        """
        problems = [p for v, p in self.verify(info.name) if v.version == info.version and p]
        if problems:
            raise ChecksumError(
                f"Model {info.name!r} version {info.version!r}: {problems[0]}.",
                hint="Restore the bundle directory or push it again as a new version.",
            )
        return Path(info.bundle_path)


def _check_name(value: str, what: str) -> None:
    import re

    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", value or ""):
        raise ConfigError(
            f"Model {what} {value!r} is not valid.",
            hint="Use letters, digits, '.', '_' and '-' (at most 64, starting with a letter "
            "or digit).",
        )


def _info(r: ModelVersion, aliases: list[str]) -> VersionInfo:
    return VersionInfo(
        name=r.name,
        version=r.version,
        bundle_path=r.bundle_path,
        task=r.task,
        domain=r.domain,
        created=r.created.isoformat(timespec="seconds") if r.created else "",
        aliases=tuple(sorted(aliases)),
    )
