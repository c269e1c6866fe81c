"""The audit log's hash chain detects edited, deleted and reordered rows."""

from __future__ import annotations

import sqlalchemy as sa

from medlearn.serving.audit import AuditEntry, AuditLog, verify_chain
from medlearn.serving.store import make_engine, migrate


def _log(db_url: str, n: int = 5):
    engine = make_engine(db_url)
    migrate(engine)
    log = AuditLog(engine)
    for i in range(n):
        log.append(AuditEntry(key_id="k1", endpoint="POST /p", model_name="m", status=200 + i))
    return engine, log


def test_intact_chain_verifies(db_url: str) -> None:
    engine, _ = _log(db_url)
    rep = verify_chain(engine)
    assert rep.ok and rep.rows == 5


def test_edited_row_is_detected(db_url: str) -> None:
    engine, _ = _log(db_url)
    with engine.begin() as c:
        c.execute(sa.text("UPDATE audit_log SET status = 500 WHERE seq = 3"))
    rep = verify_chain(engine)
    assert not rep.ok and rep.first_bad_seq == 3 and "hash" in rep.problem


def test_deleted_row_is_detected(db_url: str) -> None:
    engine, _ = _log(db_url)
    with engine.begin() as c:
        c.execute(sa.text("DELETE FROM audit_log WHERE seq = 2"))
    rep = verify_chain(engine)
    assert not rep.ok and rep.first_bad_seq == 3


def test_reordered_rows_are_detected(db_url: str) -> None:
    engine, _ = _log(db_url)
    with engine.begin() as c:  # swap the contents of rows 2 and 4, keeping seq
        c.execute(sa.text("UPDATE audit_log SET seq = -2 WHERE seq = 2"))
        c.execute(sa.text("UPDATE audit_log SET seq = 2 WHERE seq = 4"))
        c.execute(sa.text("UPDATE audit_log SET seq = 4 WHERE seq = -2"))
    rep = verify_chain(engine)
    assert not rep.ok and rep.first_bad_seq == 2


def test_rehashing_an_edited_row_still_breaks_the_next_link(db_url: str) -> None:
    from medlearn.serving.audit import row_hash

    engine, _ = _log(db_url)
    with engine.begin() as c:
        row = c.execute(sa.text("SELECT * FROM audit_log WHERE seq = 2")).mappings().one()
        fields = dict(row)
        fields["status"] = 999
        new = row_hash(fields["prev_hash"], fields)
        c.execute(
            sa.text("UPDATE audit_log SET status = 999, row_hash = :h WHERE seq = 2"), {"h": new}
        )
    rep = verify_chain(engine)
    assert not rep.ok and rep.first_bad_seq == 3


def test_group_commit_keeps_order_and_chain(db_url: str) -> None:
    import concurrent.futures as cf

    engine, log = _log(db_url, n=0)
    log.start()
    with cf.ThreadPoolExecutor(8) as pool:
        futs = [
            pool.submit(lambda i=i: log.submit(AuditEntry(key_id=f"k{i}", endpoint="x")).result())
            for i in range(64)
        ]
        seqs = sorted(f.result() for f in futs)
    log.stop()
    assert seqs == list(range(1, 65))
    assert verify_chain(engine).ok
