"""API keys: created once, stored hashed, checked on every request, each with one role.

A key looks like ``mlk_<key_id>_<secret>``: ``key_id`` (8 hex characters) is public and
appears in the audit log; ``secret`` is 32 random bytes (URL-safe base64) shown once at
creation. The database stores only ``sha256(secret)`` — with 256 bits of randomness a fast
hash is enough (no dictionary to brute-force) — and compares in constant time.

Roles: ``clinician`` (predict, CDS Hooks, the web page), ``admin`` (the registry) and
``auditor`` (read and verify the audit log). Each endpoint names the roles it accepts.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Literal

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from medlearn.errors import ConfigError, DataNotFoundError
from medlearn.serving.store import ApiKey

__all__ = ["ROLES", "KeyStore", "Principal", "Role"]

Role = Literal["clinician", "admin", "auditor"]
ROLES: tuple[str, ...] = ("admin", "auditor", "clinician")
_PREFIX = "mlk"


@dataclass(frozen=True)
class Principal:
    """Who made a request: the key's public id and role (``dev`` when auth is off)."""

    key_id: str
    role: str


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class KeyStore:
    """Create, list, revoke and check API keys.

    Args:
        engine: the serving database (migrated).
        cache_seconds: how long a successful check is remembered in memory (a revoked key
            stops working within this time). In its second half a remembered key is still
            accepted while one background thread checks it again, so a busy client never
            waits for the database.
    """

    def __init__(self, engine: Engine, *, cache_seconds: float = 5.0) -> None:
        self.engine = engine
        self.cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, Principal]] = {}
        self._lock = threading.Lock()
        self._rechecking: set[str] = set()
        self._rechecker: ThreadPoolExecutor | None = None

    def create(self, role: str, *, label: str = "") -> tuple[str, str]:
        """Create a key; returns ``(key_id, full_key)``. The full key is not stored.

        Raises:
            ConfigError: ``role`` is not one of :data:`ROLES`.
        """
        if role not in ROLES:
            raise ConfigError(f"Unknown role {role!r}.", hint=f"Choose one of: {', '.join(ROLES)}.")
        key_id = secrets.token_hex(4)
        secret = secrets.token_urlsafe(32)
        with Session(self.engine) as s, s.begin():
            s.add(
                ApiKey(
                    key_id=key_id,
                    role=role,
                    secret_sha256=_digest(secret),
                    label=label[:128],
                    created=datetime.now(timezone.utc),
                )
            )
        return key_id, f"{_PREFIX}_{key_id}_{secret}"

    def list(self) -> list[dict[str, str | None]]:
        """Every key's public fields (never a secret or its hash)."""
        with Session(self.engine) as s:
            rows = s.scalars(sa.select(ApiKey).order_by(ApiKey.created)).all()
            return [
                {
                    "key_id": r.key_id,
                    "role": r.role,
                    "label": r.label,
                    "created": r.created.isoformat(timespec="seconds"),
                    "revoked": r.revoked.isoformat(timespec="seconds") if r.revoked else None,
                }
                for r in rows
            ]

    def revoke(self, key_id: str) -> None:
        """Revoke a key by its public id. Raises :class:`DataNotFoundError` if unknown."""
        with Session(self.engine) as s, s.begin():
            row = s.get(ApiKey, key_id)
            if row is None:
                raise DataNotFoundError(
                    f"No API key with id {key_id!r}.", hint="Run `medlearn keys list`."
                )
            row.revoked = datetime.now(timezone.utc)
        with self._lock:
            self._cache.clear()

    def check(self, token: str) -> Principal | None:
        """The principal of a presented key, or ``None`` if it is malformed, unknown or revoked."""
        parts = token.split("_", 2)
        if len(parts) != 3 or parts[0] != _PREFIX or not parts[1] or not parts[2]:
            return None
        digest = _digest(parts[2])
        with self._lock:
            hit = self._cache.get(digest)
        if hit is not None and hit[1].key_id == parts[1]:
            age = time.monotonic() - hit[0]
            if age < self.cache_seconds / 2:
                return hit[1]
            if age < self.cache_seconds:
                self._recheck_later(parts[1], digest)
                return hit[1]
        return self._check_now(parts[1], digest)

    def _check_now(self, key_id: str, digest: str) -> Principal | None:
        """Look the key up in the database; remember it if valid, forget it otherwise."""
        now = time.monotonic()
        with Session(self.engine) as s:
            row = s.get(ApiKey, key_id)
            valid = (
                row is not None
                and row.revoked is None
                and hmac.compare_digest(row.secret_sha256, digest)
            )
            principal = Principal(key_id=row.key_id, role=row.role) if valid else None
        with self._lock:
            if principal is None:
                self._cache.pop(digest, None)
                return None
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[digest] = (now, principal)
        return principal

    def _recheck_later(self, key_id: str, digest: str) -> None:
        with self._lock:
            if digest in self._rechecking:
                return
            self._rechecking.add(digest)
            if self._rechecker is None:
                self._rechecker = ThreadPoolExecutor(
                    max_workers=1, thread_name_prefix="medlearn-keys"
                )
            pool = self._rechecker

        def job() -> None:
            try:
                self._check_now(key_id, digest)
            except Exception:  # noqa: BLE001 - the next request past the limit asks itself
                with self._lock:
                    self._cache.pop(digest, None)
            finally:
                with self._lock:
                    self._rechecking.discard(digest)

        pool.submit(job)
