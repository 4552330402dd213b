"""The /piecewise panel used as a person would, in headless Chromium (Playwright), against a
real `gradstep lab` process on 127.0.0.1; every number the page shows is checked against
gradstep.lab.piecewise."""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

import numpy as np
import pytest

import gradstep as gs
from gradstep.lab import piecewise as pw
from gradstep.lab.checkpoints import load_model
from gradstep.tensor import Tensor
from tests.browser import PNG_SIGNATURE, downloaded, screenshot

RELU_START = "kind=relu&w=5.3,-4.1,7.7,3.1&b=-0.4,2.3,-5.1,-1.7&c=0.45,-0.3,0.6,-0.2&c0=0.31"


def _value(page, selector: str) -> float:
    return float(page.get_attribute(selector, "data-value"))


def _units(page) -> tuple:
    k = page.locator(".unit-row.unit").count()
    return tuple(
        [_value(page, f"#{p}-{i}-value") for i in range(1, k + 1)] for p in ("w", "b", "c")
    ) + (_value(page, "#c0-value"),)


def _settled(page, loss_before: str) -> None:
    """Wait for the curve of the last slider move (the loss changes when it arrives)."""
    page.wait_for_function(
        f"() => document.querySelector('#loss').dataset.value !== '{loss_before}'"
    )


def test_sliders_draw_the_librarys_curve_and_the_exports_work(open_panel, server, tmp_path):
    p = open_panel(f"{server}/piecewise")
    page = p.page
    d = pw.default_units("sigmoid")
    assert page.locator(".unit-row.unit").count() == 3 and page.input_value("#units") == "3"
    assert _units(page) == (d["w"], d["b"], d["c"], d["c0"])
    assert _value(page, "#loss") == pw.curve("sigmoid", d["w"], d["b"], d["c"], d["c0"])["loss"]
    # a slider set to a value, then another nudged with the keyboard, as a person would
    before = page.get_attribute("#loss", "data-value")
    page.fill("#w-2", "20")
    _settled(page, before)
    before = page.get_attribute("#loss", "data-value")
    page.focus("#c-1")
    for _ in range(5):
        page.keyboard.press("ArrowRight")  # 0.01 each
    page.wait_for_function("() => document.querySelector('#c-1-value').dataset.value === '0.65'")
    page.wait_for_function("() => document.querySelector('#status').textContent === 'set by hand'")
    _settled(page, before)
    w, b, c, c0 = _units(page)
    assert w[1] == 20 and c[0] == 0.65 and b == d["b"]
    page.wait_for_timeout(300)  # any curve still on its way has landed
    assert _value(page, "#loss") == pw.curve("sigmoid", w, b, c, c0)["loss"]
    assert page.locator("#plot .scatterlayer .trace").count() == 6  # target, c0, 3 parts, sum
    query = parse_qs(urlparse(page.url).query)
    assert query["kind"] == ["sigmoid"] and query["w"] == ["12,20,12"]
    assert query["c"] == ["0.65,-0.8,0.4"] and query["lr"] == ["0.02"]
    assert downloaded(page, "#export-png").startswith(PNG_SIGNATURE)
    path = tmp_path / "piecewise.safetensors"
    path.write_bytes(downloaded(page, "#export-model"))
    assert gs.load(str(path))["settings"]["w"] == "12,20,12"
    x = np.linspace(0, 1, 21)
    out = load_model(str(path))(Tensor(x[:, None], dtype=np.float64)).data[:, 0]
    np.testing.assert_allclose(out, pw.curve("sigmoid", w, b, c, c0, x=x)["sum"], rtol=1e-14)
    screenshot(page, "piecewise", tmp_path)
    assert p.clean()


def test_two_tabs_train_and_pause_where_the_library_says(open_panel, server):
    tabs = [
        (open_panel(f"{server}/piecewise?{RELU_START}&lr=0.03"), "relu", 0.03),
        (open_panel(f"{server}/piecewise?lr=0.05"), "sigmoid", 0.05),
    ]
    starts = [_units(t.page) for t, _, _ in tabs]
    assert len(starts[0][0]) == 4 and tabs[0][0].page.input_value("#kind") == "relu"
    for t, _, _ in tabs:
        t.page.click("#train")
    for t, _, _ in tabs:
        t.page.wait_for_function("() => document.querySelector('#train').textContent === 'Pause'")
        assert t.page.text_content("#status") == "training"
    for t, _, _ in tabs:
        t.page.wait_for_function("() => +document.querySelector('#step-count').textContent >= 30")
        t.page.click("#train")  # pause
    for (t, kind, lr), start in zip(tabs, starts):
        page = t.page
        assert page.text_content("#status") == "paused" and page.text_content("#train") == "Train"
        steps = int(page.text_content("#step-count"))
        ref = list(pw.train(kind, *start, lr, steps))[-1]
        w, b, c, c0 = _units(page)
        np.testing.assert_allclose(w, ref["w"], atol=1e-6)
        np.testing.assert_allclose(b, ref["b"], atol=1e-6)
        np.testing.assert_allclose(c, ref["c"], atol=1e-6)
        assert c0 == pytest.approx(ref["c0"], abs=1e-6)
        assert _value(page, "#loss") == pytest.approx(ref["loss"], abs=1e-6)
        assert float(page.input_value("#w-1")) == pytest.approx(ref["w"][0], abs=0.01)  # moved
        assert w != start[0]
        query = parse_qs(urlparse(page.url).query)  # the trained units are in the address
        assert query["w"] == [",".join(map(repr, w))] and query["lr"] == [repr(lr)]
        assert t.clean()


def test_bad_input_is_named_and_the_controls_reset_the_units(open_panel, server):
    p = open_panel(f"{server}/piecewise?w=1,2&b=1&c=1,1&c0=0")
    page = p.page
    page.wait_for_selector("#error:not([hidden])")
    assert "b must have 2 numbers, got 1" in page.text_content("#error")
    assert page.locator(".unit-row.unit").count() == 3  # the defaults instead
    page.fill("#lr", "-1")
    page.click("#train")
    page.wait_for_function(
        "() => /greater than 0/.test(document.querySelector('#error').textContent)"
    )
    assert "lr must be greater than 0" in page.text_content("#error")
    assert page.text_content("#step-count") == "0" and page.text_content("#train") == "Train"
    page.select_option("#kind", "relu")
    page.wait_for_selector("#w-6")
    assert page.input_value("#units") == "6" and page.is_hidden("#error")
    page.select_option("#units", "4")
    page.wait_for_function("() => document.querySelectorAll('.unit-row.unit').length === 4")
    d = pw.default_units("relu", 4)
    page.wait_for_function(
        "v => document.querySelector('#loss').dataset.value === v",
        arg=repr(pw.curve("relu", d["w"], d["b"], d["c"], d["c0"])["loss"]),
    )
    assert _units(page) == (d["w"], d["b"], d["c"], d["c0"])
    page.fill("#b-2", "-3")
    page.click("#reset")
    page.wait_for_function("() => document.querySelector('#b-2-value').dataset.value === '-1'")
    assert _units(page) == (d["w"], d["b"], d["c"], d["c0"])
    assert p.outside == [] and p.problems, p.problems  # the browser logs each 400 it got ...
    assert all("status of 400" in m for m in p.problems), p.problems  # ... and nothing else
