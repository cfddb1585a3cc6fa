"""Debian's Chromium for the browser tests: the report's (its command line) and the web view's (Playwright)."""

from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")


def chromium() -> Path:
    """The browser, or a failed test (never a skip) saying how to install it."""
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: the browser tests need Debian's chromium (apt-get install -y chromium)",
            pytrace=False,
        )
    return CHROMIUM
