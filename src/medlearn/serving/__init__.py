"""Serving: the FastAPI decision-support service, its model registry, keys, audit and monitors.

Start it with ``medlearn serve --db URL``; build it in Python with :func:`create_app`.
"""

from __future__ import annotations

from medlearn.serving.app import ServeSettings, create_app
from medlearn.serving.audit import AuditLog, verify_chain
from medlearn.serving.auth import KeyStore
from medlearn.serving.store import ModelRegistry, default_db_url, make_engine, migrate

__all__ = [
    "AuditLog",
    "KeyStore",
    "ModelRegistry",
    "ServeSettings",
    "create_app",
    "default_db_url",
    "make_engine",
    "migrate",
    "verify_chain",
]
