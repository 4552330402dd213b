"""/one-parameter used as a person would, in headless Chromium against a real lab process."""

from __future__ import annotations

import numpy as np
import pytest

from gradstep.io import loads
from gradstep.lab import one_parameter as lib
from tests.browser import PNG_SIGNATURE, downloaded, screenshot


def _value(page, sel) -> float:
    return float(page.get_attribute(sel, "data-value"))


def _wait_steps(page, k):
    page.wait_for_function(f"() => document.querySelector('#step-count').textContent === '{k}'")


def test_steps_tangent_and_the_local_minimum(open_panel, server, tmp_path):
    p = open_panel(f"{server}/one-parameter?w0=-0.3&lr=0.05")
    page = p.page
    page.wait_for_function("() => document.querySelector('#slope').dataset.value !== undefined")
    value, slope = lib.loss_and_slope(-0.3)
    assert _value(page, "#slope") == pytest.approx(slope, rel=1e-12)
    for k in range(1, 11):
        page.click("#step")
        _wait_steps(page, k)
    ref = list(lib.descend(-0.3, 0.05, 10))[-1]
    assert _value(page, "#w") == pytest.approx(ref["w"], rel=1e-12)
    assert _value(page, "#slope") == pytest.approx(ref["slope"], rel=1e-12)
    # the tangent drawn at w has the slope shown
    tx, ty = page.evaluate("() => [plot.data[1].x, plot.data[1].y]")
    assert (ty[1] - ty[0]) / (tx[1] - tx[0]) == pytest.approx(ref["slope"], rel=1e-9)
    page.click("#run")
    page.wait_for_function("() => /converged/.test(document.querySelector('#status').textContent)")
    assert "local minimum" in page.text_content("#status")
    assert _value(page, "#w") == pytest.approx(lib.minima()["local"][0], abs=1e-5)
    assert "w0=-0.3" in page.url and "lr=0.05" in page.url
    screenshot(page, "one-parameter", tmp_path)
    # started right of the bump, it reaches the global minimum
    page.fill("#w0", "2.5")
    page.press("#w0", "Enter")
    page.wait_for_function("() => document.querySelector('#step-count').textContent === '0'")
    page.click("#run")
    page.wait_for_function(
        "() => /global minimum/.test(document.querySelector('#status').textContent)"
    )
    assert _value(page, "#w") == pytest.approx(lib.minima()["global"], abs=1e-5)
    # the figure as PNG and w as a checkpoint
    assert downloaded(page, "#export-png").startswith(PNG_SIGNATURE)
    ckpt = loads(downloaded(page, "#export-model"))
    assert ckpt["model"]["w"][0] == pytest.approx(_value(page, "#w"), rel=1e-12)
    assert np.isfinite(ckpt["model"]["w"]).all()
    assert p.clean(), (p.problems, p.outside)


def test_a_bad_rate_is_shown_and_a_large_one_diverges(open_panel, server):
    p = open_panel(f"{server}/one-parameter")
    page = p.page
    page.fill("#lr", "zero")
    page.click("#step")
    page.wait_for_selector("#error:not([hidden])")
    assert "lr must be a number" in page.text_content("#error")
    page.fill("#lr", "3")
    page.click("#run")
    page.wait_for_function("() => /diverged/.test(document.querySelector('#status').textContent)")
    assert p.problems == [] or all("400" in m for m in p.problems), p.problems
