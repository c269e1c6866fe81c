"""Schemathesis against the service's OpenAPI spec: no input makes the server answer 5xx."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.e2e]


def _fuzz(
    operation: Any,
    key: str,
    failures: list[tuple[str, int, str]],
    statuses: dict[str, list[int]],
    *,
    model: str | None = None,
) -> None:
    """Fuzz one operation; with ``model``, its model path parameter is the registered model."""
    from hypothesis import HealthCheck, given, settings

    label = operation.label + (f" [{model}]" if model else "")

    @settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(case=operation.as_strategy())
    def check(case: Any) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {key}"}
        if model is not None:
            for param in ("name", "service_id"):
                if param in (case.path_parameters or {}):
                    case.path_parameters[param] = model
        response = case.call()
        statuses.setdefault(label, []).append(response.status_code)
        if response.status_code >= 500:
            failures.append((label, response.status_code, response.text[:200]))

    check()


def test_openapi_fuzz_has_no_5xx(tmp_path: Path, serving_bundle: Path) -> None:
    import schemathesis
    from fastapi.testclient import TestClient

    from medlearn.serving import KeyStore, ModelRegistry, ServeSettings, create_app, make_engine
    from medlearn.serving.store import migrate

    db = f"sqlite:///{tmp_path / 'fuzz.db'}"
    engine = make_engine(db)
    migrate(engine)
    # A registered model, so the predict and model routes are exercised past 404; the fuzzer
    # draws path names from the schema, so the model is also reachable by the name it tries.
    reg = ModelRegistry(engine)
    reg.push(serving_bundle, name="pneumo")
    reg.promote("pneumo", "1")
    key = KeyStore(engine).create("admin")[1]
    app = create_app(ServeSettings(db_url=db))
    failures: list[tuple[str, int, str]] = []
    statuses: dict[str, list[int]] = {}
    with TestClient(app):  # runs startup (migrations)
        schema = schemathesis.openapi.from_asgi("/openapi.json", app)
        ops = [op.ok() for op in schema.get_all_operations()]
        assert len(ops) >= 12
        for operation in ops:
            _fuzz(operation, key, failures, statuses)
            if "{name}" in operation.path or "{service_id}" in operation.path:
                _fuzz(operation, key, failures, statuses, model="pneumo")
    assert failures == []
    # The registered model was really reached: its predict route answered with something
    # other than 404 (a prediction, or a 4xx about the fuzzed body/query).
    predict = statuses["POST /v1/models/{name}/predict [pneumo]"]
    assert any(code != 404 for code in predict), predict
