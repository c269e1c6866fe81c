"""The clinician web page in real headless Chromium (Playwright): sign in, upload, see result.

Every wait is on a real condition of the page (text present, element visible), with generous
explicit timeouts, so a slow, shared machine makes the test slower, not flaky.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

pytestmark = [pytest.mark.e2e]
CHROMIUM = "/usr/bin/chromium"
WAIT_MS = 90_000  # per condition; generous for a loaded 2-core machine


@pytest.fixture(scope="module")
def server(serving_bundle: Path, tmp_path_factory: pytest.TempPathFactory):
    import uvicorn

    from medlearn.serving import KeyStore, ModelRegistry, ServeSettings, create_app, make_engine
    from medlearn.serving.store import migrate

    work = tmp_path_factory.mktemp("browser")
    db = f"sqlite:///{work / 'ui.db'}"
    engine = make_engine(db)
    migrate(engine)
    ModelRegistry(engine).push(serving_bundle, name="pneumo")
    key = KeyStore(engine).create("clinician")[1]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = uvicorn.Server(
        uvicorn.Config(create_app(ServeSettings(db_url=db)), port=port, log_level="warning")
    )
    t = threading.Thread(target=srv.run, daemon=True)
    t.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:  # ready means: database migrated and the model loaded
        try:
            if srv.started and httpx.get(base + "/readyz", timeout=5).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert t.is_alive(), "the server thread died while starting"
        assert time.monotonic() < deadline, "the server was not ready within 120 s"
        time.sleep(0.1)
    png = work / "scan.png"
    img = np.random.default_rng(0).normal(90, 20, size=(16, 16))
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(png)
    yield base, key, png
    srv.should_exit = True
    t.join(timeout=30)
    engine.dispose()


def test_sign_in_upload_and_see_prediction(server) -> None:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium")
    from playwright.sync_api import expect, sync_playwright

    base, key, png = server
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            timeout=WAIT_MS,
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        try:
            page = browser.new_page()
            page.set_default_timeout(WAIT_MS)
            page.set_default_navigation_timeout(WAIT_MS)
            page.goto(base + "/", wait_until="load")

            # A wrong key is refused on the page.
            page.fill("#key", "mlk_00000000_wrong")
            page.click("#signin-btn")
            expect(page.locator("#signin-error")).to_contain_text("Invalid", timeout=WAIT_MS)

            # The right key: the work area, the model list and the model card all load
            # (asynchronously, one after the other) before anything is uploaded.
            page.fill("#key", key)
            page.click("#signin-btn")
            expect(page.locator("#work")).to_be_visible(timeout=WAIT_MS)
            expect(page.locator("#model")).to_contain_text("pneumo", timeout=WAIT_MS)
            expect(page.locator("#card")).to_contain_text("version 1", timeout=WAIT_MS)
            expect(page.locator("#card")).to_contain_text("Not a medical device")
            expect(page.locator("#image-form")).to_be_visible(timeout=WAIT_MS)

            page.set_input_files("#file", str(png))
            page.click("#predict-btn")
            # Either the result shows or the page reports an error: wait for one of the two
            # and fail with the page's message in the second case.
            page.wait_for_function(
                "() => !document.getElementById('result').hidden || "
                "document.getElementById('predict-error').textContent.trim() !== ''",
                timeout=WAIT_MS,
            )
            assert page.inner_text("#predict-error").strip() == ""
            expect(page.locator("#prediction")).to_have_text(re.compile("^(normal|pneumonia)$"))
            assert 0.0 <= float(page.inner_text("#probability")) <= 1.0
            assert 0.0 <= float(page.inner_text("#uncertainty")) <= 1.0
            overlay = page.locator("#overlay")
            expect(overlay).to_have_attribute("src", re.compile(r"^data:image/png;base64,"))
            page.wait_for_function(
                "() => document.getElementById('overlay').complete && "
                "document.getElementById('overlay').naturalWidth > 0",
                timeout=WAIT_MS,
            )
        finally:
            browser.close()
