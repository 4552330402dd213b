"""The /optimizers panel used as a person would, in headless Chromium (Playwright), against a
real `gradstep lab` process on 127.0.0.1: every readout is checked against
``gradstep.lab.valley.optimizer_paths`` for the same settings."""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

import numpy as np

from gradstep.io import loads
from gradstep.lab import valley
from gradstep.lab.checkpoints import load_model
from tests.browser import PNG_SIGNATURE, downloaded, screenshot

X, Y = valley.seattle_pairs()
KEYS = {"gd": "GD", "momentum": "Momentum", "adagrad": "Adagrad", "rmsprop": "RMSProp"}
KEYS["adam"] = "Adam"
DONE = "() => document.querySelector('#status').className === 'done'"


def _library(steps=valley.STEPS, lrs=None):
    settings = valley.default_settings(X)
    for k, lr in (lrs or {}).items():
        name, kwargs = settings[KEYS[k]]
        settings[KEYS[k]] = (name, {**kwargs, "lr": lr})
    return valley.optimizer_paths(X, Y, valley.START, steps, settings)


def _value(page, selector):
    raw = page.get_attribute(selector, "data-value")
    return None if raw == "" else float(raw)


def _check_readouts(page, result):
    for k, label in KEYS.items():
        r = result["settings"][label]
        assert _value(page, f"#reach-{k}") == r["steps_to_tolerance"], k
        assert _value(page, f"#final-{k}") == r["final_loss"], k
        assert _value(page, f"#used-lr-{k}") == r["hyperparameters"]["lr"], k


def _run(page):
    page.click("#run")
    page.wait_for_function(DONE)


def test_the_panel_shows_the_librarys_optimizers(browser, server, open_panel, tmp_path):
    p = open_panel(f"{server}/optimizers")
    page = p.page
    page.wait_for_function(DONE)  # the page runs the defaults when it opens
    lo, hi = valley.hessian_eigenvalues(X)
    shown = page.get_attribute("#eigenvalues", "data-value").split(",")
    assert [float(v) for v in shown] == [lo, hi]
    assert _value(page, "#lr-limit") == 2 / hi
    _check_readouts(page, _library())
    assert page.text_content("#reach-adam") == "94" and page.text_content("#reach-gd") == "1809"
    traces = page.evaluate("document.getElementById('plot').data.length")
    assert traces == 3 + 5  # contour, start, minimum and one path per optimizer
    screenshot(page, "optimizers", tmp_path)

    # Adam slower, GD just above its stability limit, a shorter budget
    page.fill("#lr-adam", "0.3")
    page.fill("#lr-gd", "0.0036")
    page.fill("#steps", "1000")
    _run(page)
    changed = _library(1000, {"adam": 0.3, "gd": 0.0036})
    _check_readouts(page, changed)
    assert page.text_content("#final-gd") == "diverged"
    assert "diverged at step" in page.text_content("#reach-gd")
    query = parse_qs(urlparse(page.url).query)
    assert query["lr_adam"] == ["0.3"] and query["steps"] == ["1000"]
    assert query["lr_gd"] == ["0.0036"] and query["w0"] == ["-1"]

    # hide Momentum: its path and curve go, the address says so
    page.uncheck("#show-momentum")
    visible = page.evaluate(
        "[document.getElementById('plot').data[4].visible,"
        " document.getElementById('curves').data[1].visible]"
    )
    assert visible == [False, False]
    assert parse_qs(urlparse(page.url).query)["show"] == ["gd,adagrad,rmsprop,adam"]

    # the model export: the best shown optimizer's end point (Adagrad settles soonest now,
    # with Momentum hidden), then one chosen by name
    shown = {label: r for label, r in changed["settings"].items() if label != "Momentum"}
    settled = {k: r["settled_at"] for k, r in shown.items() if r["settled_at"] is not None}
    best = min(settled, key=settled.get)
    for which, label in (("best", best), ("rmsprop", "RMSProp")):
        page.select_option("#export-which", which)
        ckpt = loads(downloaded(page, "#export-model"))
        model = load_model(ckpt)
        end = changed["settings"][label]["path"][-1]
        assert ckpt["settings"]["exported"] == label
        assert float(model[0].weight.data[0, 0]) == end[0]
        assert float(model[0].bias.data[0]) == end[1]
    assert best == "Adagrad"
    png = downloaded(page, "#export-png")
    assert png.startswith(PNG_SIGNATURE) and len(png) > 10_000

    # the address reproduces the configuration
    url = page.url
    q = open_panel(url).page
    q.wait_for_function(DONE)
    assert q.input_value("#lr-adam") == "0.3" and q.input_value("#steps") == "1000"
    assert not q.is_checked("#show-momentum") and q.input_value("#export-which") == "rmsprop"
    assert _value(q, "#reach-adam") == changed["settings"]["Adam"]["steps_to_tolerance"]

    assert p.clean(), (p.problems, p.outside)

    # a bad learning rate is named in #error and changes nothing (the browser logs the 400)
    page.fill("#lr-rmsprop", "-0.1")
    page.click("#run")
    page.wait_for_selector("#error:not([hidden])")
    assert "lr_rmsprop must be greater than 0" in page.text_content("#error")
    assert _value(page, "#reach-adam") == changed["settings"]["Adam"]["steps_to_tolerance"]
    assert np.isfinite(_value(page, "#final-adam"))
    assert p.outside == [] and all("status of 400" in m for m in p.problems), p.problems
