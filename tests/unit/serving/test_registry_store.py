"""The model registry and API keys on SQLite and, when configured, on a real PostgreSQL."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from medlearn.errors import ConfigError, DataNotFoundError
from medlearn.serving.auth import KeyStore
from medlearn.serving.store import ModelRegistry, make_engine, migrate


def _pg_url() -> str:
    url = os.environ.get("MEDLEARN_TEST_PG_URL")
    if not url:
        if os.environ.get("CI"):
            pytest.fail("CI is set but MEDLEARN_TEST_PG_URL is not: .ci/run must start PostgreSQL")
        pytest.skip("MEDLEARN_TEST_PG_URL is not set (set it to test against PostgreSQL)")
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path):
    if request.param == "sqlite":
        eng = make_engine(f"sqlite:///{tmp_path / 'r.db'}")
        migrate(eng)
        yield eng
        eng.dispose()
        return
    base = make_engine(_pg_url())
    schema = f"t_{uuid.uuid4().hex[:10]}"  # an isolated schema per test
    with base.begin() as c:
        c.execute(sa.text(f"CREATE SCHEMA {schema}"))
    base.dispose()
    eng = make_engine(_pg_url()).execution_options(schema_translate_map=None)
    eng = sa.create_engine(
        eng.url, connect_args={"options": f"-csearch_path={schema}"}, pool_pre_ping=True
    )
    migrate(eng)
    yield eng
    eng.dispose()
    with base.begin() as c:
        c.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
    base.dispose()


def test_push_list_promote_rollback(engine, tiny_bundle: Path, tiny_bundle_b: Path) -> None:
    reg = ModelRegistry(engine)
    assert reg.push(tiny_bundle, name="m").version == "1"
    assert reg.push(tiny_bundle_b, name="m").version == "2"
    assert reg.push(tiny_bundle_b, name="m", version="2024.1").version == "2024.1"
    with pytest.raises(ConfigError, match="already has a version"):
        reg.push(tiny_bundle, name="m", version="1")
    assert reg.resolve("m").version == "2024.1"  # newest when no production alias
    reg.promote("m", "1")
    reg.promote("m", "2")
    reg.promote("m", "2024.1")
    assert reg.resolve("m", "production").version == "2024.1"
    assert [v.aliases for v in reg.list("m")] == [(), (), ("production",)]
    assert reg.rollback("m") == "2"
    assert reg.rollback("m") == "1"
    with pytest.raises(DataNotFoundError, match="no earlier version"):
        reg.rollback("m")
    with pytest.raises(DataNotFoundError):
        reg.resolve("m", "staging")


def test_verify_detects_changed_bundle_files(engine, tiny_bundle: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, copy)
    reg = ModelRegistry(engine)
    reg.push(copy, name="m")
    assert [p for _, p in reg.verify()] == [None]
    pre = copy / "preprocessing.json"
    doc = json.loads(pre.read_text())
    doc["mean"] = [0.9]
    pre.write_text(json.dumps(doc))
    (problem,) = [p for _, p in reg.verify()]
    assert problem == "preprocessing.json fails its sha256"


def test_keys_are_hashed_and_revocable(engine) -> None:
    store = KeyStore(engine, cache_seconds=0)
    key_id, key = store.create("clinician", label="ward 3")
    assert key.startswith(f"mlk_{key_id}_") and len(key) > 40
    with engine.connect() as c:
        stored = c.execute(sa.text("SELECT secret_sha256 FROM api_keys")).scalar_one()
    assert key.split("_", 2)[2] not in stored and len(stored) == 64
    assert store.check(key).role == "clinician"
    assert store.check(key[:-1] + ("A" if key[-1] != "A" else "B")) is None
    store.revoke(key_id)
    assert store.check(key) is None
    with pytest.raises(ConfigError, match="Unknown role"):
        store.create("nurse")
