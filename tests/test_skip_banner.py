"""The browser test without a browser, and the summary's lines about it: the banner that says it
was skipped, so a skip never passes unnoticed, the failure DIGITNET_REQUIRE_BROWSER=1 turns the
skip into, and the folder of its screenshots."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

from conftest import SCREENSHOT_FOLDER, pytest_terminal_summary

TESTS = Path(__file__).resolve().parent


class Reporter:
    """Collects what the hook writes, in place of pytest's terminal reporter."""

    def __init__(
        self, skipped: list[SimpleNamespace], stash: dict[object, object] | None = None
    ) -> None:
        self.stats = {"skipped": skipped}
        self.config = SimpleNamespace(stash=stash or {})
        self.lines: list[str] = []

    def write_sep(self, sep: str, title: str, **markup: bool) -> None:
        self.lines.append(title)


def skip_report(reason: str) -> SimpleNamespace:
    return SimpleNamespace(longrepr=("tests/test_web_browser.py", 30, f"Skipped: {reason}"))


def test_banner_names_the_reason_the_browser_test_was_skipped() -> None:
    reporter = Reporter([skip_report("BROWSER TEST SKIPPED: no Chromium at /usr/bin/chromium")])
    pytest_terminal_summary(reporter)  # type: ignore[arg-type]
    assert reporter.lines == ["BROWSER TEST SKIPPED: no Chromium at /usr/bin/chromium"]


def test_no_banner_for_other_skips() -> None:
    reporter = Reporter([skip_report("needs a GPU")])
    pytest_terminal_summary(reporter)  # type: ignore[arg-type]
    assert reporter.lines == []


def test_summary_names_the_screenshot_folder() -> None:
    reporter = Reporter([], stash={SCREENSHOT_FOLDER: Path("shots")})
    pytest_terminal_summary(reporter)  # type: ignore[arg-type]
    assert reporter.lines == ["browser test screenshots in shots"]


def run_browser_test_without_chromium(require: bool) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DIGITNET_CHROMIUM": "/nonexistent/chromium"}
    env.pop("DIGITNET_REQUIRE_BROWSER", None)
    if require:
        env["DIGITNET_REQUIRE_BROWSER"] = "1"
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider"]
    return subprocess.run(
        [*command, str(TESTS / "test_web_browser.py")],
        cwd=TESTS.parent,
        env=env,
        capture_output=True,
        text=True,
    )


def test_a_missing_browser_skips_the_test_with_a_banner() -> None:
    result = run_browser_test_without_chromium(require=False)
    assert result.returncode == 5, result.stdout  # pytest's "no tests ran": only the skip
    assert "BROWSER TEST SKIPPED: no Chromium at /nonexistent/chromium" in result.stdout


def test_a_missing_browser_fails_the_test_when_it_is_required() -> None:
    result = run_browser_test_without_chromium(require=True)
    assert result.returncode == 1, result.stdout
    assert "BROWSER TEST FAILED: no Chromium at /nonexistent/chromium" in result.stdout
    assert "SKIPPED" not in result.stdout
