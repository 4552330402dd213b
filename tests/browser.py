"""Headless Chromium for the browser tests: Debian's ``chromium`` driven by Playwright
(``apt-get install -y chromium``; Playwright's own browser download is not used). Outside CI a
machine without them skips these tests; under ``CI=true`` they must run, and fail instead."""

from __future__ import annotations

import contextlib
import os
import shutil

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@contextlib.contextmanager
def chromium():
    """A launched headless browser, closed afterwards."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    if sync_playwright is None or not os.path.exists(CHROMIUM):
        if os.environ.get("CI"):
            pytest.fail("CI must have playwright and Debian's chromium (see .ci/run)")
        pytest.skip("needs playwright and chromium (apt-get install -y chromium)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()
