"""`inclg app` in headless Chromium: upload the fixture photo, press "lip", press Predict and see
the before/after result and the measurement table appear; a screenshot is saved under the test's
tmp_path. The page must make no request outside 127.0.0.1.

Needs Debian's `chromium` and `chromium-driver`; with Gradio and Selenium installed but no browser
the test fails (it never passes silently) unless INCLG_SKIP_BROWSER=1 is set; without Gradio or
Selenium (a core install) it skips.
"""

from __future__ import annotations

import os
import shutil
import socket
import time
from pathlib import Path

import pytest
import torch

from inclg.config import GeneratorConfig
from inclg.model.generator import Generator

pytestmark = pytest.mark.browser

PHOTO = Path(__file__).parents[1] / "infer" / "fixtures" / "face_300x240.jpg"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
WAIT_S = 120


def _browser_or_fail() -> None:
    if CHROMIUM and DRIVER:
        return
    if os.environ.get("INCLG_SKIP_BROWSER") == "1":
        pytest.skip("INCLG_SKIP_BROWSER=1: browser test skipped")
    pytest.fail("the browser test needs Chromium and its driver: apt-get install -y chromium "
                "chromium-driver (or set INCLG_SKIP_BROWSER=1 to skip it knowingly)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_upload_lip_predict_in_chromium(tmp_path: Path) -> None:
    pytest.importorskip("gradio", reason="install the app extra: pip install 'inclg[app]'")
    webdriver = pytest.importorskip("selenium.webdriver", reason="install the dev extra: pip "
                                    "install 'inclg[dev]'")
    _browser_or_fail()
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    from inclg.app.ui import launch
    from inclg.infer import Predictor

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        tiny = Generator(GeneratorConfig(channels=8, residual_blocks=1))
    weights = tiny.save_pretrained(tmp_path / "tiny", metadata={"model_id": "tiny",
                                                                 "trained": False})
    port = free_port()
    demo = launch(Predictor.from_pretrained(weights, detector="stub"), port, block=False)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-dev-shm-usage", "--window-size=1400,1300",
                 f"--user-data-dir={tmp_path / 'chromium-profile'}",
                 "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options,
                              service=webdriver.ChromeService(executable_path=DRIVER))
    screenshot = tmp_path / "app.png"
    try:
        wait = WebDriverWait(driver, WAIT_S)
        driver.get(f"http://127.0.0.1:{port}/")
        assert "UNTRAINED" in wait.until(ec.presence_of_element_located((By.ID, "untrained"))).text
        upload = wait.until(ec.presence_of_element_located(
            (By.CSS_SELECTOR, "#photo input[type=file]")))
        upload.send_keys(str(PHOTO))
        wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#photo img")))
        wait.until(ec.element_to_be_clickable((By.ID, "mask-lip"))).click()
        time.sleep(1)  # let the click's request start before waiting for it to finish
        wait.until(lambda d: not d.find_elements(By.CSS_SELECTOR, "#editor.pending, "
                                                               "#editor .pending"))
        driver.find_element(By.ID, "predict").click()
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#json-file a, .toast-body.error"))
        driver.save_screenshot(str(screenshot))
        print(f"screenshot: {screenshot}")
        errors = driver.find_elements(By.CSS_SELECTOR, ".toast-body.error")
        assert not errors, f"the page shows an error: {errors[0].text}"
        images = driver.find_elements(By.CSS_SELECTOR, "#result img")
        assert len(images) == 2  # before and after
        assert "mouth width" in driver.find_element(By.ID, "measurements").text
        assert "UNTRAINED" in driver.find_element(By.CSS_SELECTOR, ".toast-body.warning").text
        requested = driver.execute_script(
            "return performance.getEntriesByType('resource').map(e => e.name)")
        outside = [url for url in requested
                   if not url.startswith((f"http://127.0.0.1:{port}/", "data:", "blob:"))]
        assert not outside, f"the page requested outside 127.0.0.1: {outside}"
    finally:
        if not screenshot.exists():
            driver.save_screenshot(str(screenshot))
            print(f"screenshot (failure): {screenshot}")
        driver.quit()
        demo.close()
