"""Headless Chromium for the browser tests: Debian's ``chromium`` driven by Playwright
(``apt-get install -y chromium``; Playwright's own browser download is not used). Outside CI a
machine without them skips these tests; under ``CI=true`` they must run, and fail instead."""

from __future__ import annotations

import contextlib
import os
import shutil

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


_SHARED: dict = {}


class _Pages:
    """The shared browser as one caller sees it: its pages are its own and closed after it."""

    def __init__(self, browser):
        self._browser, self._contexts = browser, []

    def new_page(self, **kwargs):
        context = self._browser.new_context(**kwargs)  # what Browser.new_page does, kept
        self._contexts.append(context)
        return context.new_page()

    def close(self) -> None:
        for context in self._contexts:
            context.close()
        self._contexts.clear()

    def __getattr__(self, name):
        return getattr(self._browser, name)


@contextlib.contextmanager
def chromium():
    """A headless browser (one per test session, shared: Playwright's sync API allows one
    instance at a time on a thread, and the lab's session fixture holds one open); the pages
    a caller opens are closed when its block ends."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    if sync_playwright is None or not os.path.exists(CHROMIUM):
        if os.environ.get("CI"):
            pytest.fail("CI must have playwright and Debian's chromium (see .ci/run)")
        pytest.skip("needs playwright and chromium (apt-get install -y chromium)")
    if "browser" not in _SHARED:
        _SHARED["playwright"] = sync_playwright().start()
        _SHARED["browser"] = _SHARED["playwright"].chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox"]
        )
    pages = _Pages(_SHARED["browser"])
    try:
        yield pages
    finally:
        pages.close()


def close_shared() -> None:
    """Stop the session's browser (tests/conftest.py calls this when the session ends)."""
    browser, playwright = _SHARED.pop("browser", None), _SHARED.pop("playwright", None)
    if browser is not None:
        browser.close()
    if playwright is not None:
        playwright.stop()


class PanelPage:
    """A page of the lab opened in Chromium, recording console errors and any request that
    leaves 127.0.0.1 (there must be none of either)."""

    def __init__(self, browser, url, ready: str = "#plot .main-svg", width: int = 1100):
        self.page = browser.new_page(
            viewport={"width": width, "height": 900}, accept_downloads=True
        )
        self.problems, self.outside = [], []
        self.page.on(
            "console", lambda m: self.problems.append(m.text) if m.type == "error" else None
        )
        self.page.on("pageerror", lambda e: self.problems.append(str(e)))
        self.page.on(
            "request",
            lambda r: self.outside.append(r.url) if "127.0.0.1" not in r.url else None,
        )
        self.page.goto(url)
        self.page.wait_for_selector(ready)

    def clean(self) -> bool:
        return self.problems == [] and self.outside == []


def screenshot(page, name: str, tmp_path) -> str:
    """Save the panel's screenshot: into $GRADSTEP_SCREENSHOTS when set (docs/lab.md's images
    are made by ``GRADSTEP_SCREENSHOTS=docs/images pytest tests/lab/web``), else a temp dir."""
    folder = os.environ.get("GRADSTEP_SCREENSHOTS") or str(tmp_path)
    path = os.path.join(folder, f"lab-{name}.png")
    page.screenshot(path=path, full_page=True)
    return path


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def downloaded(page, selector: str) -> bytes:
    """Click ``selector`` and return the bytes of the file the page offers for download."""
    with page.expect_download() as d:
        page.click(selector)
    with open(d.value.path(), "rb") as f:
        return f.read()
