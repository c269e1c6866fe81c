"""Cached alias lookups and API-key checks are refreshed in the background, within limits.

Covered: a version lookup past its time to live is still answered while one background thread
looks it up again (the request's thread never queries the database); past twice the time to
live the request looks it up itself; a background refresh that fails drops the cached value,
so the next request gets the database's answer (404 for a deleted alias). An API key checked
in the second half of its cache time is accepted while a background thread checks it again;
a key revoked by another process is refused after that recheck, and at once past the cache
time.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from medlearn.errors import MedlearnError
from medlearn.serving import KeyStore, ModelRegistry, ServeSettings, make_engine
from medlearn.serving.service import _LOOKUP_TTL, Service
from medlearn.serving.store import ApiKey, migrate


def _age(cache: dict[Any, tuple[float, Any]], key: Any, seconds: float) -> None:
    stamp, value = cache[key]
    cache[key] = (time.monotonic() - seconds, value)


def test_stale_lookups_are_answered_while_one_background_refresh_runs(
    db_url: str, tiny_bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = make_engine(db_url)
    migrate(engine)
    reg = ModelRegistry(engine)
    reg.push(tiny_bundle, name="cxr")
    reg.promote("cxr", "1", alias="production")
    svc = Service(ServeSettings(db_url=db_url))
    calls: list[str] = []
    original = svc.registry.resolve

    def spy(name: str, ref: str | None = None) -> Any:
        calls.append(threading.current_thread().name)
        return original(name, ref)

    monkeypatch.setattr(svc.registry, "resolve", spy)
    key = ("resolve", "cxr", "production")
    assert svc.resolve("cxr", "production").version == "1"
    assert calls == [threading.current_thread().name]  # first lookup: asked at once

    reg.push(tiny_bundle, name="cxr")
    reg.promote("cxr", "2", alias="production")  # as another process would
    _age(svc._lookups, key, 1.5 * _LOOKUP_TTL)
    assert svc.resolve("cxr", "production").version == "1"  # stale, answered at once
    svc._refresher.submit(lambda: None).result()  # the refresh has run
    assert calls[1].startswith("medlearn-lookup")
    assert svc.resolve("cxr", "production").version == "2"
    assert len(calls) == 2

    _age(svc._lookups, key, 2.5 * _LOOKUP_TTL)  # too old to answer: asked again
    assert svc.resolve("cxr", "production").version == "2"
    assert calls[2] == threading.current_thread().name

    with engine.begin() as con:  # the alias is deleted behind the server's back
        con.execute(sa.text("DELETE FROM model_aliases"))
    _age(svc._lookups, key, 1.5 * _LOOKUP_TTL)
    svc.resolve("cxr", "production")  # stale answer; the refresh fails and drops it
    svc._refresher.submit(lambda: None).result()
    assert key not in svc._lookups
    with pytest.raises(MedlearnError):
        svc.resolve("cxr", "production")
    svc._refresher.shutdown()
    svc.engine.dispose()
    engine.dispose()


def test_keys_are_rechecked_in_the_background_and_revocation_holds(db_url: str) -> None:
    engine = make_engine(db_url)
    migrate(engine)
    keys = KeyStore(engine, cache_seconds=4.0)
    key_id, token = keys.create("clinician")
    digest = next(iter(keys._cache), None)
    assert digest is None  # creating does not remember the key
    assert keys.check(token).role == "clinician"
    (digest,) = keys._cache

    _age(keys._cache, digest, 3.0)  # second half: accepted, rechecked in the background
    assert keys.check(token) is not None
    keys._rechecker.submit(lambda: None).result()
    assert time.monotonic() - keys._cache[digest][0] < 1.0  # renewed by the recheck

    with engine.begin() as con:  # revoked by another process (`medlearn keys revoke`)
        con.execute(sa.update(ApiKey).values(revoked=sa.func.current_timestamp()))
    _age(keys._cache, digest, 3.0)
    assert keys.check(token) is not None  # still inside the 4 s the cache promises
    keys._rechecker.submit(lambda: None).result()
    assert digest not in keys._cache and keys.check(token) is None

    other_id, other = keys.create("admin")
    assert keys.check(other) is not None
    (other_digest,) = [d for d, (_, p) in keys._cache.items() if p.key_id == other_id]
    with engine.begin() as con:
        con.execute(
            sa.update(ApiKey)
            .where(ApiKey.key_id == other_id)
            .values(revoked=sa.func.current_timestamp())
        )
    _age(keys._cache, other_digest, 4.5)  # past the cache time: refused at once
    assert keys.check(other) is None
    engine.dispose()
