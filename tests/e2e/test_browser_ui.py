"""The clinician web page in real headless Chromium (Playwright): sign in, upload, see result."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def server(png_dataset: Path, tmp_path_factory: pytest.TempPathFactory):
    import uvicorn

    from medlearn.cli import main
    from medlearn.serving import KeyStore, ModelRegistry, ServeSettings, create_app, make_engine
    from medlearn.serving.store import migrate

    work = tmp_path_factory.mktemp("browser")
    runfile = work / "run.yaml"
    runfile.write_text(
        yaml.safe_dump(
            {
                "name": "tiny",
                "task": "binary",
                "data": {
                    "path": str(png_dataset),
                    "split": {"method": "stratified", "fractions": [0.5, 0.25, 0.25], "seed": 1},
                },
                "model": {"name": "simple_cnn", "params": {"width": 8}},
                "training": {"epochs": 1, "batch_size": 16, "progress": False},
                "evaluation": {"bootstrap": 10, "gallery": 0},
            }
        )
    )
    assert main(["train", str(runfile), "--out", str(work / "run")]) == 0
    db = f"sqlite:///{work / 'ui.db'}"
    engine = make_engine(db)
    migrate(engine)
    ModelRegistry(engine).push(work / "run" / "bundle", name="pneumo")
    key = KeyStore(engine).create("clinician")[1]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = uvicorn.Server(
        uvicorn.Config(create_app(ServeSettings(db_url=db)), port=port, log_level="warning")
    )
    t = threading.Thread(target=srv.run, daemon=True)
    t.start()
    while not srv.started:
        time.sleep(0.05)
    png = work / "scan.png"
    img = np.random.default_rng(0).normal(90, 20, size=(16, 16))
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(png)
    yield f"http://127.0.0.1:{port}", key, png
    srv.should_exit = True
    t.join(timeout=10)


def test_sign_in_upload_and_see_prediction(server) -> None:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium")
    from playwright.sync_api import sync_playwright

    base, key, png = server
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        page = browser.new_page()
        page.goto(base + "/")
        page.fill("#key", "mlk_00000000_wrong")
        page.click("#signin-btn")
        page.wait_for_selector("#signin-error:has-text('Invalid')")
        page.fill("#key", key)
        page.click("#signin-btn")
        page.wait_for_selector("#work:not([hidden])")
        assert "pneumo" in page.inner_text("#model")
        page.wait_for_selector("#card:has-text('version 1')")
        assert "Not a medical device" in page.inner_text("#card")
        page.set_input_files("#file", str(png))
        page.click("#predict-btn")
        page.wait_for_selector("#result:not([hidden])", timeout=30000)
        assert page.inner_text("#prediction") in ("normal", "pneumonia")
        assert 0.0 <= float(page.inner_text("#probability")) <= 1.0
        assert 0.0 <= float(page.inner_text("#uncertainty")) <= 1.0
        src = page.get_attribute("#overlay", "src")
        assert src and src.startswith("data:image/png;base64,")
        assert page.evaluate("document.getElementById('overlay').naturalWidth") > 0
        browser.close()
