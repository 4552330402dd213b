"""The /critical panel used as a person would, in headless Chromium (Playwright), against a real
`gradstep lab` process on 127.0.0.1: a saddle point inspected, escaped and left; a trained
network's gradient driven down; both exports; a bad input shown. Every number the page shows
is checked against ``gradstep.lab.critical_points`` on the same network."""

from __future__ import annotations

import numpy as np
import pytest

import gradstep as gs
from gradstep import nn
from gradstep.io import loads
from gradstep.lab import hw2_2
from gradstep.lab.checkpoints import load_model
from gradstep.lab.critical_points import (
    escape_direction,
    find_critical_point,
    inspect_critical_point,
)
from gradstep.lab.network_hessian import LossFunction
from tests.browser import PNG_SIGNATURE, downloaded, screenshot

X, Y = hw2_2.data()


def value(page, selector: str) -> str:
    return page.get_attribute(selector, "data-value")


def wait_value(page, selector: str, expected: str) -> None:
    page.wait_for_function(
        f"() => document.querySelector('{selector}').dataset.value === '{expected}'"
    )


def theta(model) -> np.ndarray:
    return np.concatenate([p.data.ravel() for p in model.parameters()])


def test_a_saddle_is_named_escaped_and_left(open_panel, server, tmp_path):
    p = open_panel(
        f"{server}/critical?start=saddle&hidden=16&t=0.5&max_steps=10", ready="#norms .main-svg"
    )
    page = p.page
    assert page.input_value("#start") == "saddle" and page.input_value("#t") == "0.5"
    page.click("#inspect")
    wait_value(page, "#verdict", "saddle point")
    saddle = hw2_2.origin_saddle(hw2_2.network(0, 16), X, Y)
    ref = inspect_critical_point(saddle, nn.MSELoss(), X, Y, tol=1e-6, grad_tol=1e-3)
    for rid, key in (("n-positive", "n_positive"), ("n-negative", "n_negative")):
        assert int(value(page, f"#{rid}")) == ref[key], rid
    assert int(value(page, "#n-zero")) == ref["n_zero"] == 16
    assert float(value(page, "#ratio-exact")) == ref["minimum_ratio"]
    assert float(value(page, "#ratio-gn")) == ref["minimum_ratio_gauss_newton"]
    assert float(value(page, "#loss")) == ref["loss"]
    assert "= 1e-6 \u00b7 max|" in page.text_content("#zero-tol")  # the tolerance is shown
    assert "saddle point" in page.text_content("#verdict-explain")
    assert "cannot see the 16 negative" in page.text_content("#gn-explain")
    page.wait_for_selector("#spectrum .main-svg")
    assert page.evaluate("document.getElementById('spectrum').data.length") == 3

    page.click("#escape")
    page.wait_for_selector("#escape-plot .main-svg")
    e = escape_direction(saddle, nn.MSELoss(), X, Y, ts=np.linspace(0, 1.0, 21))
    shown = page.evaluate("document.getElementById('escape-plot').data[0].y")
    assert shown[20:] == e["loss_plus"].tolist() and max(shown[19], shown[21]) < shown[20]
    before = float(value(page, "#loss"))
    page.click("#step-along-u")
    page.wait_for_function("() => /moved/.test(document.querySelector('#escape-note').textContent)")
    after = float(value(page, "#loss"))
    moved = LossFunction(saddle, nn.MSELoss(), X, Y, freeze=False)
    expected_theta = moved.theta + 0.5 * e["direction"]
    assert after == pytest.approx(moved.value(expected_theta), rel=1e-12)
    assert after < before
    page.click("#inspect")  # the moved network is no longer a critical point
    wait_value(page, "#verdict", "not a critical point")
    assert float(value(page, "#loss")) == pytest.approx(after, rel=1e-12)
    page.click("#run")  # and training goes on from there: the loss falls
    page.wait_for_function("() => document.querySelector('#status').dataset.stop !== undefined")
    first = page.evaluate("document.getElementById('norms').data[0]")
    assert first["x"][0] == 0 and len(first["y"]) == 100  # 200 epochs, every other one drawn
    assert float(value(page, "#run-loss")) < 0.5 * after
    page.wait_for_function("() => document.querySelector('#verdict').dataset.value !== ''")
    screenshot(page, "critical", tmp_path)

    assert downloaded(page, "#export-png").startswith(PNG_SIGNATURE)
    exported = load_model(loads(downloaded(page, "#export-model")))  # trained from theta + t u
    model = hw2_2.origin_saddle(hw2_2.network(0, 16), X, Y)
    moved.move_to(expected_theta)
    moved.write_back(model)
    find_critical_point(model, nn.MSELoss(), X, Y, 200, 0.01, grad_tol=1e-3, max_steps=10)
    np.testing.assert_array_equal(theta(exported), theta(model))
    assert "start=saddle" in page.url and "t=0.5" in page.url and "hidden=16" in page.url
    assert p.clean(), (p.problems, p.outside)


def test_a_trained_network_drives_its_gradient_down(open_panel, server):
    p = open_panel(f"{server}/critical?hidden=8&epochs=200&max_steps=20", ready="#norms .main-svg")
    page = p.page
    page.click("#run")
    page.wait_for_function("() => document.querySelector('#status').dataset.stop !== undefined")
    model = hw2_2.network(0, 8)
    ref = find_critical_point(model, nn.MSELoss(), X, Y, 200, 0.01, grad_tol=1e-3, max_steps=20)
    first = page.evaluate("document.getElementById('norms').data[0].y[0]")
    last = float(value(page, "#run-grad"))
    assert last == ref["grad_norm"] and last < first
    shown = page.evaluate("document.getElementById('norms').data[1].y")
    assert shown == ref["grad_norm_history"]  # every step of the |g|^2 phase is drawn
    page.wait_for_function("() => document.querySelector('#verdict').dataset.value !== ''")
    r = inspect_critical_point(model, nn.MSELoss(), X, Y, tol=1e-6, grad_tol=1e-3)
    assert value(page, "#verdict") == r["verdict"]
    assert int(value(page, "#n-negative")) == r["n_negative"]
    exported = load_model(loads(downloaded(page, "#export-model")))
    np.testing.assert_array_equal(theta(exported), theta(model))
    xt = gs.Tensor(X, dtype=np.float64)
    np.testing.assert_array_equal(exported(xt).data, model(xt).data)
    assert "hidden=8" in page.url and "epochs=200" in page.url

    page.fill("#hidden", "200")
    page.click("#run")
    page.wait_for_selector("#error:not([hidden])")
    assert "hidden must be at most 128" in page.text_content("#error")
    page.fill("#hidden", "8")
    page.fill("#grad-tol", "-1")
    page.click("#inspect")
    page.wait_for_function(
        "() => /grad_tol must be greater than 0/.test(document.querySelector('#error').textContent)"
    )
    # the 400s show as Chromium's "Failed to load resource" lines; nothing else went wrong
    assert all("400" in m for m in p.problems) and p.outside == []


def test_the_landscape_and_the_minimum_ratio_study(open_panel, server, tmp_path):
    from gradstep.lab.landscape import (
        direction_landscape,
        filter_normalized_directions,
        weight_landscape,
    )

    p = open_panel(f"{server}/critical?hidden=16&seed=1&span=0.5", ready="#norms .main-svg")
    page = p.page
    page.click("#landscape")
    page.wait_for_selector("#landscape-plot .main-svg")
    model = hw2_2.network(1, 16)
    unit = int(np.argmax(np.abs(model[2].weight.data[0])))
    first, second = f"0.weight[{unit}, 0]", f"2.weight[0, {unit}]"
    ref = weight_landscape(model, nn.MSELoss(), X, Y, first, second, 0.5, 31)
    assert float(value(page, "#landscape-center")) == ref["center_loss"]
    plot = page.evaluate("document.getElementById('landscape-plot').data")
    assert plot[0]["type"] == "contour" and plot[0]["x"] == ref["first_grid"].tolist()
    np.testing.assert_allclose(np.array(plot[0]["z"]), np.log10(ref["loss"]), rtol=1e-12)
    assert [plot[1]["x"][0], plot[1]["y"][0]] == list(ref["center"])  # the current point
    assert (
        page.evaluate("document.getElementById('landscape-plot').layout.xaxis.title.text") == first
    )

    page.select_option("#plane", "random")  # Li et al.'s plane, drawn with the panel's seed
    page.click("#landscape")
    page.wait_for_function(
        "() => document.getElementById('landscape-plot').data[0].x[0] === -0.5"
        " && /alpha/.test(document.getElementById('landscape-plot').layout.xaxis.title.text)"
    )
    d1, d2 = filter_normalized_directions(model, seed=1)
    grid = 0.5 * np.linspace(-1, 1, 31)
    grid[15] = 0.0
    rand = direction_landscape(model, nn.MSELoss(), X, Y, d1, d2, grid, grid)
    z = page.evaluate("document.getElementById('landscape-plot').data[0].z")
    np.testing.assert_allclose(np.array(z), np.log10(rand["loss"]), rtol=1e-12)
    assert float(value(page, "#landscape-center")) == rand["center_loss"]
    screenshot(page, "critical-landscape", tmp_path)
    assert "plane=random" in page.url and "span=0.5" in page.url

    page.fill("#first", "0.weight[99, 0]")  # a name the network does not have
    page.select_option("#plane", "weights")
    page.click("#landscape")
    page.wait_for_selector("#error:not([hidden])")
    assert "first: index 99" in page.text_content("#error")
    page.fill("#first", "")

    page.fill("#hidden", "8")
    page.dispatch_event("#hidden", "change")
    page.fill("#max-steps", "3")
    page.fill("#study-seeds", "2")
    page.click("#study")
    wait_value(page, "#study-count", "2")
    rows = hw2_2.minimum_ratio_study(seeds=[1, 2], hidden=8, max_steps=3)
    shown = page.evaluate("document.getElementById('study-plot').data")
    assert shown[0]["x"] == [r["loss"] for r in rows] == shown[1]["x"]  # 2 points each
    assert shown[0]["y"] == [r["minimum_ratio"] for r in rows]
    assert shown[1]["y"] == [r["minimum_ratio_gauss_newton"] for r in rows]
    assert page.text_content("#study-count") == "2 of 2" and "study_seeds=2" in page.url
    page.wait_for_function("() => document.querySelector('#study').textContent === 'Study'")
    assert all("400" in m for m in p.problems) and p.outside == []
