"""The chat app in real headless Chromium: load a CT with its segmentation, ask, see, download.

Needs Debian's `chromium` (/usr/bin/chromium) and Playwright's Python client (never `playwright
install`: the browser is the system's). Screenshots are kept under artifacts/browser/.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from conftest import REPO, TOTALSEG

CT = TOTALSEG / "example_ct_sm.nii.gz"
SEG = TOTALSEG / "example_seg_fast"
STATS = json.loads((SEG / "statistics.json").read_text())
CHROMIUM = Path(os.environ.get("PROSECTOR_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = REPO / "artifacts" / "browser"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
ANSWER_TIMEOUT_MS = 240_000
LIVER_LINK = "#downloads tr:has(td[aria-label='liver.nii.gz']) a"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def app_url(isolated_home, tmp_path_factory):
    """`prosector chat` as a user starts it, on a free loopback port, allowed to open the shared scans."""
    port = _free_port()
    log = tmp_path_factory.mktemp("chat") / "server.log"
    env = {**os.environ, "PYTHONPATH": str(REPO), "GRADIO_ANALYTICS_ENABLED": "False"}
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "prosector", "chat", "--port", str(port),
                                 "--allow", str(TOTALSEG)], cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.time() + 120
        while True:
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError("the chat app did not start:\n" + log.read_text()[-3000:])
                time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.is_file():
        pytest.fail(f"Chromium not found at {CHROMIUM}: apt-get install -y chromium (see .ci/run)")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")), executable_path=str(CHROMIUM), headless=True,
            args=CHROMIUM_ARGS, viewport={"width": 1500, "height": 1100}, accept_downloads=True)
        try:
            yield context
        finally:
            context.close()


def _overlay_pixels(png: bytes) -> int:
    """Pixels of the first palette colour (crimson) blended over grey CT: red well above green and blue."""
    r, g, b = _channels(png)
    return int(np.count_nonzero((r - g > 70) & (r - b > 40) & (g < 170)))


def _green_pixels(png: bytes) -> int:
    """Pixels of the second palette colour (green) blended over grey CT."""
    r, g, b = _channels(png)
    return int(np.count_nonzero((g - r > 60) & (g - b > 40)))


def _channels(png: bytes):
    from io import BytesIO

    from PIL import Image

    rgb = np.asarray(Image.open(BytesIO(png)).convert("RGB")).astype(int)
    return rgb[..., 0], rgb[..., 1], rgb[..., 2]


@pytest.fixture(scope="module")
def conversation(app_url, browser):
    """One real session: load by server path, ask for the liver's volume, keep what the page shows."""
    page = browser.new_page()
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(app_url)
    page.wait_for_selector("#question textarea")
    empty_viewer = page.locator("#prosector-viewer").screenshot()

    page.fill("#scan-path textarea", str(CT))
    page.fill("#seg-path textarea", str(SEG))
    page.click("#load-button")
    page.wait_for_function("document.querySelector('#load-status').innerText.includes('Loaded')",
                           timeout=ANSWER_TIMEOUT_MS)
    page.wait_for_selector("#prosector-viewer img")
    loaded_viewer = page.locator("#prosector-viewer").screenshot()

    page.fill("#question textarea", "segment the liver and tell me its volume")
    page.press("#question textarea", "Enter")
    page.wait_for_function("document.querySelector('#chat').innerText.includes('mL')", timeout=ANSWER_TIMEOUT_MS)
    page.wait_for_selector(LIVER_LINK, timeout=60_000)
    time.sleep(1.0)  # let the viewer picture of the same update finish painting
    viewer_png = page.locator("#prosector-viewer").screenshot(path=str(ARTIFACTS / "viewer_liver.png"))
    page.screenshot(path=str(ARTIFACTS / "app_liver.png"), full_page=True)
    chat_text = page.locator("#chat").inner_text()
    table_text = page.locator("#structures").inner_text()

    with page.expect_download() as info:
        page.locator(LIVER_LINK).first.click()
    download = ARTIFACTS / "liver_download.nii.gz"
    info.value.save_as(download)
    return {"page": page, "requests": requests, "empty": empty_viewer, "loaded": loaded_viewer,
            "viewer": viewer_png, "chat": chat_text, "table": table_text, "download": download, "url": app_url}


def test_answer_states_the_measured_liver_volume(conversation):
    expected_ml = STATS["liver"]["volume"] / 1000.0          # TotalSegmentator's own statistics: 1062.45 mL
    numbers = [float(x) for x in re.findall(r"(\d+(?:\.\d+)?)\s*mL", conversation["chat"])]
    assert numbers, conversation["chat"]
    assert any(abs(n - expected_ml) <= 0.05 for n in numbers), (numbers, expected_ml)
    assert "liver" in conversation["table"].lower() and f"{expected_ml:.2f}" in conversation["table"]
    assert "Traceback" not in conversation["chat"]


def test_overlay_appears_in_the_viewer(conversation):
    assert _overlay_pixels(conversation["loaded"]) < 50       # the scan alone: grey, yellow markers
    assert _overlay_pixels(conversation["viewer"]) > 1000     # the liver painted over it


def test_nifti_download_matches_the_mask(conversation):
    downloaded = nib.load(conversation["download"])
    reference = nib.load(SEG / "liver.nii.gz")
    assert np.array_equal(np.asarray(downloaded.dataobj) > 0, np.asarray(reference.dataobj) > 0)
    assert np.allclose(downloaded.affine, nib.load(CT).affine)


def test_page_loads_nothing_from_outside(conversation):
    outside = [u for u in conversation["requests"]
               if not u.startswith(conversation["url"].rstrip("/")) and not u.startswith(("data:", "blob:"))]
    assert outside == []


def test_report_sentence_shows_its_evidence(conversation):
    """Drafting a report overlays its structures; selecting the spleen's sentence highlights the spleen."""
    page = conversation["page"]
    page.click("#report-button")
    page.wait_for_function("document.querySelector('#sentences').innerText.includes('Spleen')",
                           timeout=ANSWER_TIMEOUT_MS)
    time.sleep(1.0)
    page.locator("#sentences [role=gridcell]:has-text('Spleen:')").first.click()
    page.wait_for_function(
        "document.querySelector('#axial-slice input[type=number]') !== null", timeout=30_000)
    time.sleep(2.0)
    focused = page.locator("#prosector-viewer").screenshot(path=str(ARTIFACTS / "viewer_spleen_sentence.png"))
    # The spleen (second colour, green) is painted; the liver (crimson) is dimmed to a faint tint.
    assert _green_pixels(focused) > 300
    assert _overlay_pixels(focused) < 50


def test_a_second_tab_has_its_own_session_and_errors_read_as_sentences(conversation, browser):
    page = browser.new_page()
    page.goto(conversation["url"])
    page.wait_for_selector("#question textarea")
    assert "No scan loaded" in page.locator("#load-status").inner_text()
    page.fill("#question textarea", "how big is the spleen?")
    page.press("#question textarea", "Enter")
    page.wait_for_function("document.querySelector('#chat').innerText.includes('load a scan first')",
                           timeout=60_000)
    page.fill("#scan-path textarea", "/etc/passwd")
    page.click("#load-button")
    page.wait_for_function("document.querySelector('#load-status').innerText.includes('outside the allowed')",
                           timeout=60_000)
    text = page.locator("#chat").inner_text()
    assert "Traceback" not in text
    page.close()
    # The first tab still holds its scan and answer.
    assert "Loaded" in conversation["page"].locator("#load-status").inner_text()


def test_upload_through_the_browser(conversation, browser, tmp_path):
    """A file picked in the page, not a server path: a text file is refused in words, the CT loads."""
    page = browser.new_page()
    page.goto(conversation["url"])
    page.wait_for_selector("#question textarea")
    notes = tmp_path / "notes.txt"
    notes.write_text("not a scan")
    page.set_input_files("#scan-upload input[type=file]", str(notes))
    page.wait_for_selector("#scan-upload :text('notes.txt')", timeout=ANSWER_TIMEOUT_MS)  # uploads crawl on a loaded machine
    page.click("#load-button")
    page.wait_for_function("document.querySelector('#load-status').innerText.includes('is not a scan')",
                           timeout=60_000)
    page.goto(conversation["url"])          # a reloaded page is a fresh session with an empty picker
    page.wait_for_selector("#question textarea")
    page.set_input_files("#scan-upload input[type=file]", str(CT))
    page.wait_for_selector("#scan-upload :text('example_ct_sm')", timeout=ANSWER_TIMEOUT_MS)
    page.click("#load-button")
    page.wait_for_function("document.querySelector('#load-status').innerText.includes('Loaded')",
                           timeout=ANSWER_TIMEOUT_MS)
    assert "122x101x30" in page.locator("#load-status").inner_text()
    page.close()


def test_keep_a_screenshot_for_the_readme(conversation):
    """The README's picture is this test's page: written to docs/ when PROSECTOR_UPDATE_SCREENSHOT=1."""
    from PIL import Image

    shot = ARTIFACTS / "app_liver.png"
    assert shot.is_file() and shot.stat().st_size > 10_000
    small = ARTIFACTS / "screenshot_small.png"
    image = Image.open(shot).convert("RGB")
    image = image.crop((40, 0, min(image.width, 1460), min(image.height, 1250)))
    image = image.resize((1024, round(image.height * 1024 / image.width)), Image.LANCZOS)
    image.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(small, optimize=True)
    assert small.stat().st_size < 300_000
    if os.environ.get("PROSECTOR_UPDATE_SCREENSHOT") == "1":
        shutil.copy(small, REPO / "docs" / "screenshot.png")
