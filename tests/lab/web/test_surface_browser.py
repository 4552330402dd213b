"""The /surface panel used as a person would, in headless Chromium (Playwright), against a
real `gradstep lab` process on 127.0.0.1 that the test starts and stops by its PID."""

from __future__ import annotations

import time

import numpy as np
import pytest

from gradstep.lab.experiments import load_series
from gradstep.lab.surface import gradient_descent_path
from tests.browser import PanelPage, screenshot


def _page(browser, url):
    p = PanelPage(browser, url)
    return p.page, p.problems, p.outside


def _data():
    series, _ = load_series()
    x, y = series[:-1][:365], series[1:][:365]
    return (x - x.mean()) / x.std(), y


def test_fifty_steps_land_where_the_library_says(browser, server, tmp_path):
    page, problems, outside = _page(browser, f"{server}/surface?lr=0.001&w0=2&b0=-3")
    assert page.input_value("#lr") == "0.001"
    for k in range(1, 51):
        page.click("#step")
        page.wait_for_function(f"() => document.querySelector('#step-count').textContent === '{k}'")
    w = float(page.get_attribute("#w", "data-value"))
    b = float(page.get_attribute("#b", "data-value"))
    x, y = _data()
    ref = gradient_descent_path(x, y, 2.0, -3.0, 0.001, 50)
    assert abs(w - ref[-1, 0]) < 1e-6 and abs(b - ref[-1, 1]) < 1e-6
    assert "lr=0.001" in page.url and "w0=2" in page.url  # the state is in the address
    assert problems == [] and outside == []
    screenshot(page, "surface", tmp_path)
    page.close()


def test_run_streams_at_least_30_updates_a_second_and_names_divergence(browser, server):
    page, problems, _ = _page(browser, f"{server}/surface?lr=0.0001")
    page.click("#run")
    time.sleep(2.0)
    page.click("#run")  # pause
    count = int(page.text_content("#step-count"))
    rate = count / 2.0
    print(f"\n/surface streamed {rate:.0f} updates per second")
    assert rate >= 30, rate
    assert page.text_content("#status").startswith("paused")
    page.fill("#lr", "1.5")  # x is standardised: stable only below 1
    page.click("#reset")
    page.click("#run")
    page.wait_for_function("() => /diverged/.test(document.querySelector('#status').textContent)")
    page.fill("#lr", "0.5")
    page.click("#reset")
    page.click("#run")
    page.wait_for_function("() => /converged/.test(document.querySelector('#status').textContent)")
    assert problems == []
    page.close()


def test_bad_input_is_shown_and_two_tabs_are_independent(browser, server):
    page, _, _ = _page(browser, f"{server}/surface")
    page.fill("#lr", "-1")
    page.click("#step")
    page.wait_for_selector("#error:not([hidden])")
    assert "greater than 0" in page.text_content("#error")
    assert page.text_content("#step-count") == "0"
    other, _, _ = _page(browser, f"{server}/surface?lr=0.3")
    page.fill("#lr", "0.05")
    page.click("#step")
    other.click("#step")
    page.wait_for_function("() => document.querySelector('#step-count').textContent === '1'")
    other.wait_for_function("() => document.querySelector('#step-count').textContent === '1'")
    x, y = _data()
    for p, lr in ((page, 0.05), (other, 0.3)):
        ref = gradient_descent_path(x, y, 0.0, 0.0, lr, 1)
        assert float(p.get_attribute("#w", "data-value")) == pytest.approx(ref[-1, 0], abs=1e-9)
    page.close()
    other.close()
    assert np.isfinite(ref).all()
