"""Schemathesis against the service's OpenAPI spec: no input makes the server answer 5xx."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _fuzz(operation: Any, key: str, failures: list[tuple[str, int, str]]) -> None:
    from hypothesis import HealthCheck, given, settings

    label = operation.label

    @settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(case=operation.as_strategy())
    def check(case: Any) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {key}"}
        response = case.call()
        if response.status_code >= 500:
            failures.append((label, response.status_code, response.text[:200]))

    check()


def test_openapi_fuzz_has_no_5xx(tmp_path: Path) -> None:
    import schemathesis
    from fastapi.testclient import TestClient

    from medlearn.serving import KeyStore, ServeSettings, create_app, make_engine
    from medlearn.serving.store import migrate

    db = f"sqlite:///{tmp_path / 'fuzz.db'}"
    engine = make_engine(db)
    migrate(engine)
    key = KeyStore(engine).create("admin")[1]
    app = create_app(ServeSettings(db_url=db))
    failures: list[tuple[str, int, str]] = []
    with TestClient(app):  # runs startup (migrations)
        schema = schemathesis.openapi.from_asgi("/openapi.json", app)
        ops = [op.ok() for op in schema.get_all_operations()]
        assert len(ops) >= 12
        for operation in ops:
            _fuzz(operation, key, failures)
    assert failures == []
