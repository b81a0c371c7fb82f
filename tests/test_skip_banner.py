"""The banner that says the browser test was skipped, so a skip never passes unnoticed."""

from __future__ import annotations

from types import SimpleNamespace

from conftest import pytest_terminal_summary


class Reporter:
    """Collects what the hook writes, in place of pytest's terminal reporter."""

    def __init__(self, skipped: list[SimpleNamespace]) -> None:
        self.stats = {"skipped": skipped}
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
