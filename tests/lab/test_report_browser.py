"""The lecture report read in a real browser: headless Chromium driven by Playwright (see
tests/browser.py for where the browser comes from and when these tests may skip)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gradstep.cli.main import main
from tests.browser import chromium


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("lecture") / "report"
    assert main(["lecture", "--quick", "--out", str(out)]) == 0
    return out / "report.html"


@pytest.fixture(scope="module")
def browser():
    with chromium() as b:
        yield b


def _open(browser, report: Path, width: int):
    page = browser.new_page(viewport={"width": width, "height": 900})
    problems, requests = [], []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("request", lambda r: requests.append(r.url))
    page.goto(report.as_uri())
    page.wait_for_load_state("load")
    return page, problems, requests


@pytest.mark.parametrize("width", [360, 1600])
def test_the_report_reads_as_a_document_at_any_width(browser, report, width, tmp_path):
    page, problems, requests = _open(browser, report, width)
    assert problems == []
    # self-contained: the file itself is the only request (images are data URIs)
    assert [u for u in requests if not u.startswith("data:")] == [report.as_uri()]
    images = page.evaluate(
        "() => [...document.images].map(i => [i.complete, i.naturalWidth, i.alt])"
    )
    assert len(images) == 13
    assert all(done and w > 0 for done, w, _ in images), images
    # every entry of the table of contents leads to an <h2> of that section
    toc = page.evaluate(
        """() => [...document.querySelectorAll('nav a')].map(a => {
            const target = document.querySelector(a.getAttribute('href'));
            const h2 = target && target.querySelector('h2');
            return [a.textContent, h2 ? h2.textContent : null];
        })"""
    )
    assert len(toc) >= 7 and all(text == heading for text, heading in toc), toc
    # nothing wider than the viewport, and no sideways scrolling of the page
    wide = page.evaluate(
        """() => [...document.querySelectorAll('body *')]
            .filter(e => e.getBoundingClientRect().right > innerWidth + 0.5)
            .map(e => e.tagName)"""
    )
    assert wide == []
    assert page.evaluate("() => document.documentElement.scrollWidth") <= width
    # every figure sits inside a section, under a caption that says what to look at
    figures = page.evaluate(
        """() => [...document.querySelectorAll('figure')].map(f => [
            !!f.closest('section'), f.querySelectorAll('figcaption p').length])"""
    )
    assert figures and all(inside and notes >= 1 for inside, notes in figures)
    assert page.locator("table").count() >= 4  # tables are tables, not text in a <pre>
    assert page.locator("pre").count() == 0
    page.screenshot(path=str(tmp_path / f"report-{width}.png"))
    page.close()


def test_the_error_surface_table_and_the_2015_story_are_in_the_report(browser, report):
    page, _, _ = _open(browser, report, 1200)
    surface = page.locator("#loss table")
    verdicts = surface.locator("tbody td:last-child").all_text_contents()
    assert verdicts == ["too small", "largest stable", "diverged"]
    story = page.locator("#experiment").inner_text()
    assert "2015" in story and "linear model" in story
    page.close()
