"""The draw-a-digit page in a real browser: Chromium driven by Playwright, drawing with the mouse.

The test starts `digitnet serve` as a subprocess on a free loopback port, draws digits the way a
person would (strokes of many small mouse moves), and reads the answer off the page. Without
Chromium it is skipped, and tests/conftest.py prints a banner saying so.
"""

from __future__ import annotations

import base64
import math
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import Browser, Page, expect, sync_playwright

from digitnet.data import Dataset

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ROOT = Path(__file__).resolve().parents[1]
README_SCREENSHOT = ROOT / "docs" / "images" / "serve.png"

if not CHROMIUM.exists():
    pytest.skip(
        f"BROWSER TEST SKIPPED: no Chromium at {CHROMIUM} (apt-get install chromium)",
        allow_module_level=True,
    )

Point = tuple[float, float]
Stroke = list[Point]


def arc(cx: float, cy: float, rx: float, ry: float, start: float, end: float) -> Stroke:
    """Points along an elliptic arc; angles in degrees, y pointing down as on screen."""
    steps = max(6, int(abs(end - start) / 12))
    angles = np.radians(np.linspace(start, end, steps))
    return [(cx + rx * math.cos(t), cy + ry * math.sin(t)) for t in angles]


# Digits as a person draws them, in a unit box: a list of strokes, each a polyline.
DIGITS: dict[int, list[Stroke]] = {
    0: [arc(0.5, 0.5, 0.2, 0.32, -100, 270)],
    1: [[(0.45, 0.25), (0.55, 0.16), (0.53, 0.5), (0.51, 0.84)]],
    2: [[*arc(0.5, 0.34, 0.18, 0.16, -170, 20), (0.3, 0.82), (0.74, 0.8)]],
    3: [arc(0.47, 0.34, 0.17, 0.16, -160, 90) + arc(0.47, 0.66, 0.19, 0.16, -90, 160)],
    4: [[(0.38, 0.16), (0.3, 0.58), (0.74, 0.58)], [(0.62, 0.2), (0.61, 0.86)]],
    7: [[(0.28, 0.2), (0.72, 0.19), (0.5, 0.55), (0.42, 0.84)]],
}


@pytest.fixture(scope="module")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The address of `digitnet serve` with the bundled model, on a free loopback port."""
    log = tmp_path_factory.mktemp("serve") / "stderr.txt"
    with log.open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "digitnet", "serve", "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
    assert process.stdout is not None
    line = process.stdout.readline()
    assert " at http://127.0.0.1:" in line, f"unexpected first line {line!r}; {log.read_text()}"
    yield line.rsplit(" at ", 1)[1].strip()
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


def open_page(browser: Browser, url: str, width: int, height: int) -> Page:
    page = browser.new_page(viewport={"width": width, "height": height})
    page.goto(url)
    expect(page.locator("#model-name")).to_contain_text("784-128-10")
    return page


def draw(page: Page, strokes: list[Stroke]) -> None:
    """Draw strokes on the pad with the mouse, scaled to the pad's size on screen."""
    box = page.locator("#pad").bounding_box()
    for stroke in strokes:
        points = [(box["x"] + x * box["width"], box["y"] + y * box["height"]) for x, y in stroke]
        page.mouse.move(*points[0])
        page.mouse.down()
        for point in points[1:]:
            page.mouse.move(*point, steps=4)
        page.mouse.up()


def settled_prediction(page: Page) -> str:
    """The prediction on the page once no request is pending."""
    expect(page.locator("body")).to_have_attribute("data-busy", "false")
    text: str = page.locator("#prediction").inner_text()
    return text.strip()


def test_drawn_digits_are_recognised_and_clear_shows_no_digit(
    browser: Browser, server_url: str, tmp_path: Path
) -> None:
    page = open_page(browser, server_url, 1200, 900)
    assert settled_prediction(page) == "no digit"

    seen = {}
    for digit, strokes in DIGITS.items():
        draw(page, strokes)
        seen[digit] = settled_prediction(page)
        page.screenshot(path=tmp_path / f"digit-{digit}.png")
        page.get_by_role("button", name="Clear").click()
        assert settled_prediction(page) == "no digit"
    assert seen == {digit: str(digit) for digit in DIGITS}

    draw(page, DIGITS[3])
    assert settled_prediction(page) == "3"
    page.set_viewport_size({"width": 1200, "height": 720})
    page.screenshot(path=tmp_path / "serve.png", full_page=True)
    if os.environ.get("DIGITNET_UPDATE_SCREENSHOT") == "1":
        shutil.copyfile(tmp_path / "serve.png", README_SCREENSHOT)


def test_page_fits_a_phone_screen(browser: Browser, server_url: str, tmp_path: Path) -> None:
    page = open_page(browser, server_url, 390, 844)
    draw(page, DIGITS[7])
    assert settled_prediction(page) == "7"
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.screenshot(path=tmp_path / "serve-phone.png", full_page=True)


def test_keys_undo_a_stroke_and_clear_the_pad(browser: Browser, server_url: str) -> None:
    page = open_page(browser, server_url, 1200, 900)
    draw(page, DIGITS[4])
    assert settled_prediction(page) == "4"
    page.keyboard.press("Control+z")
    assert settled_prediction(page) != "4"
    page.keyboard.press("Escape")
    assert settled_prediction(page) == "no digit"


DROP_FILE = """(encoded) => {
    const bytes = Uint8Array.from(atob(encoded), (c) => c.charCodeAt(0));
    const transfer = new DataTransfer();
    transfer.items.add(new File([bytes], "digit.png", { type: "image/png" }));
    return transfer;
}"""


@pytest.mark.parametrize("how", ["choose", "drop"])
def test_image_file_is_read_by_the_server(
    browser: Browser, server_url: str, tmp_path: Path, mnist: Dataset, how: str
) -> None:
    path = tmp_path / "digit.png"
    Image.fromarray(255 - mnist.test_images[0]).resize((200, 200)).save(path)
    page = open_page(browser, server_url, 1200, 900)
    if how == "choose":
        page.set_input_files("#file", path)
    else:
        encoded = base64.b64encode(path.read_bytes()).decode("ascii")
        transfer = page.evaluate_handle(DROP_FILE, encoded)
        page.dispatch_event("#pad", "drop", {"dataTransfer": transfer})
    expect(page.locator("#prediction")).to_have_text(str(mnist.test_labels[0]))


def test_page_reports_an_unreachable_server(
    browser: Browser, server_url: str, tmp_path: Path
) -> None:
    page = open_page(browser, server_url, 1200, 900)
    page.route("**/api/predict", lambda route: route.abort())
    draw(page, DIGITS[1])
    expect(page.locator("#status")).to_contain_text("Cannot reach the digitnet server")
    page.screenshot(path=tmp_path / "unreachable.png")


def test_page_shows_the_servers_error_message(browser: Browser, server_url: str) -> None:
    page = open_page(browser, server_url, 1200, 900)
    answer = {"status": 422, "json": {"error": "'image' is not valid base64"}}
    page.route("**/api/predict", lambda route: route.fulfill(**answer))
    draw(page, DIGITS[1])
    expect(page.locator("#status")).to_contain_text("'image' is not valid base64")
