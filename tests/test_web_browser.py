"""The draw-a-digit page in a real browser: Chromium driven by Playwright, drawing with the mouse.

The test starts `digitnet serve` as a subprocess on a free loopback port, draws digits the way a
person would (strokes of many small mouse moves), and reads the answer off the page.

Environment:
    DIGITNET_CHROMIUM            the browser to drive (default /usr/bin/chromium)
    DIGITNET_REQUIRE_BROWSER=1   fail, rather than skip, when that browser is missing; without
                                 it a missing browser skips the test and tests/conftest.py ends
                                 the run with a BROWSER TEST SKIPPED banner
    DIGITNET_SCREENSHOTS=DIR     save the screenshots in DIR (default: a fresh temporary folder);
                                 the run's summary names the folder either way
    DIGITNET_UPDATE_SCREENSHOT=1 also copy the desktop screenshot to docs/images/serve.png, the
                                 README's picture:
        DIGITNET_UPDATE_SCREENSHOT=1 .venv/bin/python -m pytest tests/test_web_browser.py
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
from playwright.sync_api import Browser, FilePayload, Page, expect, sync_playwright

from conftest import SCREENSHOT_FOLDER
from digitnet.data import Dataset

CHROMIUM = Path(os.environ.get("DIGITNET_CHROMIUM", "/usr/bin/chromium"))
REQUIRE_BROWSER = os.environ.get("DIGITNET_REQUIRE_BROWSER") == "1"
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
MEBIBYTE = 1024 * 1024

if not CHROMIUM.exists() and not REQUIRE_BROWSER:
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
def screenshots(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder for this run's screenshots; the summary at the end of the run names it."""
    chosen = os.environ.get("DIGITNET_SCREENSHOTS")
    folder = Path(chosen) if chosen else tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    request.config.stash[SCREENSHOT_FOLDER] = folder
    return folder


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(
            f"BROWSER TEST FAILED: no Chromium at {CHROMIUM}, and DIGITNET_REQUIRE_BROWSER=1 "
            "requires the browser test to run (apt-get install chromium)",
            pytrace=False,
        )
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
    assert box is not None
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


def seen_pixels(page: Page) -> list[int]:
    """The 784 grey levels of the page's 28x28 view of what the network sees."""
    levels: list[int] = page.evaluate(
        """() => {
            const seen = document.getElementById("seen").getContext("2d");
            const data = seen.getImageData(0, 0, 28, 28).data;
            return Array.from({ length: 784 }, (_, i) => data[4 * i]);
        }"""
    )
    return levels


def hidden_reds(page: Page) -> list[int]:
    """The red level, 0 to 255, of each cell of the hidden-unit strip as the browser paints it."""
    colours: list[str] = page.evaluate(
        """() => [...document.querySelectorAll("#hidden span")].map(
            (cell) => getComputedStyle(cell).backgroundColor)"""
    )
    return [int(colour.split("(")[1].split(",")[0]) for colour in colours]


def lit(levels: list[int]) -> int:
    return sum(level > 0 for level in levels)


def test_drawn_digits_are_recognised_and_clear_shows_no_digit(
    browser: Browser, server_url: str, screenshots: Path
) -> None:
    page = open_page(browser, server_url, 1200, 900)
    assert settled_prediction(page) == "no digit"
    expect(page.locator("#confidence")).to_have_text("Draw a digit on the pad.")

    seen = {}
    for digit, strokes in DIGITS.items():
        draw(page, strokes)
        seen[digit] = settled_prediction(page)
        # An MNIST-like digit lights roughly 100 to 200 of the 784 pixels.
        assert lit(seen_pixels(page)) > 60, f"the 28x28 view of {digit} shows almost no ink"
        assert lit(hidden_reds(page)) > 10, f"the hidden units of {digit} are almost all dark"
        page.screenshot(path=screenshots / f"digit-{digit}.png")
        page.get_by_role("button", name="Clear").click()
        assert settled_prediction(page) == "no digit"
        assert lit(seen_pixels(page)) == 0 and lit(hidden_reds(page)) == 0
    assert seen == {digit: str(digit) for digit in DIGITS}

    draw(page, DIGITS[3])
    assert settled_prediction(page) == "3"
    page.set_viewport_size({"width": 1200, "height": 720})
    page.screenshot(path=screenshots / "serve.png", full_page=True)
    if os.environ.get("DIGITNET_UPDATE_SCREENSHOT") == "1":
        shutil.copyfile(screenshots / "serve.png", README_SCREENSHOT)


@pytest.mark.parametrize("width", [390, 320])
def test_page_fits_a_phone_screen(
    browser: Browser, server_url: str, screenshots: Path, width: int
) -> None:
    page = open_page(browser, server_url, width, 844)
    draw(page, DIGITS[7])
    assert settled_prediction(page) == "7"
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    for card in page.locator(".card").all():
        box = card.bounding_box()
        assert box is not None
        left, right = box["x"], width - (box["x"] + box["width"])
        assert abs(left - right) <= 1, f"card margins {left} and {right} at {width} px"
    page.screenshot(path=screenshots / f"serve-phone-{width}.png", full_page=True)


def test_undo_button_brings_back_the_drawing_before_the_last_stroke(
    browser: Browser, server_url: str
) -> None:
    page = open_page(browser, server_url, 1200, 900)
    undo = page.get_by_role("button", name="Undo")
    expect(undo).to_be_disabled()
    first, second = DIGITS[4]

    draw(page, [first])
    before = (settled_prediction(page), seen_pixels(page))
    draw(page, [second])
    assert settled_prediction(page) == "4"
    assert seen_pixels(page) != before[1]

    undo.click()
    assert (settled_prediction(page), seen_pixels(page)) == before
    undo.click()
    assert settled_prediction(page) == "no digit"
    expect(undo).to_be_disabled()


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
    browser: Browser, server_url: str, screenshots: Path
) -> None:
    page = open_page(browser, server_url, 1200, 900)
    page.route("**/api/predict", lambda route: route.abort())
    draw(page, DIGITS[1])
    expect(page.locator("#status")).to_contain_text("Cannot reach the digitnet server")
    page.screenshot(path=screenshots / "unreachable.png")


def test_page_reports_a_server_unreachable_from_the_start(
    browser: Browser, server_url: str
) -> None:
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    page.route("**/api/health", lambda route: route.abort())
    page.goto(server_url)
    expect(page.locator("#status")).to_have_text(
        "Cannot reach the digitnet server. Is the serve command still running?"
    )


def test_a_file_too_large_to_send_is_refused_in_the_page(browser: Browser, server_url: str) -> None:
    page = open_page(browser, server_url, 1200, 900)
    sent: list[str] = []
    page.on("request", lambda request: sent.append(request.url))
    huge: FilePayload = {
        "name": "huge.png",
        "mimeType": "image/png",
        "buffer": bytes(12 * MEBIBYTE + 1),
    }
    page.set_input_files("#file", files=[huge])
    expect(page.locator("#status")).to_contain_text(
        "Picture too large (limit 16 MiB). huge.png is 12.0 MiB"
    )
    assert not [url for url in sent if url.endswith("/api/predict")]


def test_the_largest_file_the_page_sends_is_within_the_servers_limit(
    browser: Browser, server_url: str
) -> None:
    """A file just under the page's own limit reaches the application, not a 413."""
    page = open_page(browser, server_url, 1200, 900)
    largest: FilePayload = {
        "name": "big.png",
        "mimeType": "image/png",
        "buffer": bytes(12 * MEBIBYTE - 256),
    }
    page.set_input_files("#file", files=[largest])
    expect(page.locator("#status")).to_contain_text("not a supported image")


def test_a_413_in_plain_text_is_shown_as_picture_too_large(
    browser: Browser, server_url: str
) -> None:
    page = open_page(browser, server_url, 1200, 900)
    answer = {"status": 413, "content_type": "text/plain", "body": "Request Entity Too Large"}
    page.route("**/api/predict", lambda route: route.fulfill(**answer))
    draw(page, DIGITS[1])
    expect(page.locator("#status")).to_have_text("Picture too large (limit 16 MiB).")


SLOW_FETCH = """(() => {
    const fetchNow = window.fetch.bind(window);
    window.inFlight = 0;
    window.mostInFlight = 0;
    window.fetch = async (url, options) => {
        if (!String(url).endsWith("/api/predict")) return fetchNow(url, options);
        window.inFlight += 1;
        window.mostInFlight = Math.max(window.mostInFlight, window.inFlight);
        try {
            await new Promise((resolve) => setTimeout(resolve, 400));
            return await fetchNow(url, options);
        } finally {
            window.inFlight -= 1;
        }
    };
})();"""


def test_a_slow_server_still_answers_while_the_pen_moves(browser: Browser, server_url: str) -> None:
    """Every answer takes 400 ms, longer than the live interval; answers arrive before pen-up."""
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    page.add_init_script(SLOW_FETCH)
    page.goto(server_url)
    box = page.locator("#pad").bounding_box()
    assert box is not None

    page.mouse.move(box["x"] + 0.5 * box["width"], box["y"] + 0.15 * box["height"])
    page.mouse.down()
    for step in range(1, 41):
        y = 0.15 + 0.7 * step / 40
        page.mouse.move(box["x"] + 0.5 * box["width"], box["y"] + y * box["height"], steps=2)
        page.wait_for_timeout(50)
    assert page.locator("#prediction").inner_text() != "no digit"
    page.mouse.up()
    assert settled_prediction(page) == "1"
    assert page.evaluate("window.mostInFlight") == 1


def fake_answer(hidden: list[float]) -> dict[str, object]:
    """A prediction answer with the given hidden activations, padded with zeros to 128."""
    probabilities = [0.0] * 10
    probabilities[3] = 1.0
    return {
        "digit": 3,
        "probabilities": probabilities,
        "outputs": probabilities,
        "input": [[0.0] * 28] * 28,
        "hidden": hidden + [0.0] * (128 - len(hidden)),
    }


@pytest.mark.parametrize(
    ("activation", "hidden"),
    [
        ("sigmoid", [0.0, 0.25, 0.5, 1.0]),
        ("tanh", [-1.0, -0.5, 0.0, 1.0]),
        ("relu", [0.0, 1.5, 3.0, 6.0]),
    ],
)
def test_hidden_units_are_shaded_over_their_activations_range(
    browser: Browser, server_url: str, activation: str, hidden: list[float]
) -> None:
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    health = {"status": "ok", "model": "m.npz", "sizes": [784, 128, 10], "activation": activation}
    page.route("**/api/health", lambda route: route.fulfill(json=health))
    page.route("**/api/predict", lambda route: route.fulfill(json=fake_answer(hidden)))
    page.goto(server_url)
    expect(page.locator("#model-name")).to_contain_text("784-128-10")
    draw(page, DIGITS[1])
    assert settled_prediction(page) == "3"
    assert hidden_reds(page)[:4] == [0, 64, 128, 255]
    page.keyboard.press("Escape")
    assert settled_prediction(page) == "no digit"
    assert lit(hidden_reds(page)) == 0


def test_page_shows_the_servers_error_message(browser: Browser, server_url: str) -> None:
    page = open_page(browser, server_url, 1200, 900)
    answer = {"status": 422, "json": {"error": "'image' is not valid base64"}}
    page.route("**/api/predict", lambda route: route.fulfill(**answer))
    draw(page, DIGITS[1])
    expect(page.locator("#status")).to_contain_text("'image' is not valid base64")
