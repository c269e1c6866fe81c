"""The serving verbs end to end: keys, registry, a real server process, kill -9, audit, monitor."""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from medlearn.cli import main

pytestmark = [pytest.mark.e2e]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _png(seed: int) -> bytes:
    img = np.random.default_rng(seed).normal(90, 20, size=(16, 16))
    buf = io.BytesIO()
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture()
def bundle(serving_bundle: Path) -> Path:
    return serving_bundle


def test_cli_verbs_and_killed_server(
    bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = f"sqlite:///{tmp_path / 'serve.db'}"
    assert main(["registry", "push", str(bundle), "--name", "pneumo", "--db", db]) == 0
    assert main(["registry", "promote", "pneumo", "1", "--alias", "production", "--db", db]) == 0
    assert main(["registry", "verify", "--db", db]) == 0
    capsys.readouterr()
    assert main(["keys", "create", "--role", "clinician", "--db", db]) == 0
    key = capsys.readouterr().out.strip().splitlines()[-1]  # the key is the LAST line
    assert key.startswith("mlk_")
    assert main(["keys", "create", "--role", "bogus", "--db", db]) == 2

    port = _free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from medlearn.cli import main; import sys; sys.exit(main(sys.argv[1:]))",
            "serve",
            "--port",
            str(port),
            "--db",
            db,
            "--threads",
            "1",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        h = {"Authorization": f"Bearer {key}"}
        answered = 0
        for i in range(5):
            r = httpx.post(
                f"{base}/v1/models/pneumo/predict?format=fhir",
                headers=h,
                files={"file": ("a.png", _png(i))},
                timeout=30,
            )
            assert r.status_code == 200 and r.json()["resourceType"] == "RiskAssessment"
            answered += 1
        # kill -9 while requests are in flight
        import threading

        def fire() -> None:
            for j in range(50):
                try:
                    httpx.post(
                        f"{base}/v1/models/pneumo/predict",
                        headers=h,
                        files={"file": ("a.png", _png(100 + j))},
                        timeout=5,
                    )
                except httpx.HTTPError:
                    return

        t = threading.Thread(target=fire)
        t.start()
        time.sleep(0.3)
        proc.send_signal(signal.SIGKILL)
        t.join()
    finally:
        proc.kill()
        proc.wait()
    capsys.readouterr()
    assert main(["audit", "verify", "--db", db]) == 0
    assert "hash chain intact" in capsys.readouterr().out
    out = tmp_path / "audit.jsonl"
    assert main(["audit", "export", "--out", str(out), "--db", db]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) >= answered and all(r["status"] == 200 for r in rows[:answered])

    assert main(["monitor", "report", "--json", "--db", db]) == 0
    json.loads(capsys.readouterr().out)

    import sqlalchemy as sa

    from medlearn.serving.store import make_engine

    with make_engine(db).begin() as c:
        c.execute(sa.text("UPDATE audit_log SET output_summary = 'x' WHERE seq = 2"))
    assert main(["audit", "verify", "--db", db]) == 1
