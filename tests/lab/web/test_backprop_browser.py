"""The /backprop panel used as a person would, in headless Chromium (Playwright), against a real
`gradstep lab` process: click weights and biases, take a step, reload, export; every number the
page shows is checked against the library and against PyTorch in float64."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gradstep.io import loads
from gradstep.lab import backprop as bp
from gradstep.lab.checkpoints import load_model
from gradstep.tensor import Tensor
from tests.browser import PNG_SIGNATURE, downloaded, screenshot

READY = "#network-svg .weight"
TORCH_ACT = {"sigmoid": torch.sigmoid, "relu": torch.relu, "tanh": torch.tanh}


def _page_weights(page) -> dict[str, np.ndarray]:
    """The network as the page draws it: every weight and bias from its exact data-value."""
    items = page.eval_on_selector_all(
        "#network-svg [data-param]",
        "els => els.map(e => [e.dataset.param, e.dataset.index, e.dataset.value])",
    )
    shapes = {"0.weight": (3, 2), "0.bias": (3,), "2.weight": (2, 3), "2.bias": (2,)}
    shapes |= {"4.weight": (1, 2), "4.bias": (1,)}
    params = {name: np.full(shape, np.nan) for name, shape in shapes.items()}
    for name, index, value in items:
        params[name][tuple(int(i) for i in index.split(","))] = float(value)
    assert len(items) == 20 and all(np.isfinite(p).all() for p in params.values())
    return params


def _torch_grads(params: dict, activation: str) -> dict[str, np.ndarray]:
    """dC/dw for every parameter by PyTorch in float64, C = MSE on the panel's data."""
    t = {n: torch.tensor(v, dtype=torch.float64, requires_grad=True) for n, v in params.items()}
    a = torch.tensor(bp.PANEL_X)
    for k, name in enumerate(("0", "2", "4")):
        a = a @ t[f"{name}.weight"].T + t[f"{name}.bias"]
        a = a if k == 2 else TORCH_ACT[activation](a)
    ((a - torch.tensor(bp.PANEL_Y).reshape(-1, 1)) ** 2).mean().backward()
    return {n: v.grad.numpy() for n, v in t.items()}


def _value(page, selector: str) -> float:
    return float(page.get_attribute(selector, "data-value"))


def _click(page, element: str, label: str) -> None:
    page.click(f"#{element}")
    page.wait_for_function(
        "label => document.querySelector('#chosen-name').textContent.includes(label)", arg=label
    )


def _check_selected(page, param: str, index: tuple, activation: str, steps: list) -> float:
    """The page's explanation of param[index] against explain_gradient and PyTorch."""
    weights = _page_weights(page)
    model = bp.panel_network(activation, 3, steps)
    for name, p in model.named_parameters():  # the page draws the library's network
        np.testing.assert_array_equal(weights[name], p.data, err_msg=name)
    total, engine = _value(page, "#sum"), _value(page, "#engine-grad")
    expected = _torch_grads(weights, activation)[param][index]
    assert abs(total - engine) <= 1e-12
    assert total == pytest.approx(expected, abs=1e-12) and engine == pytest.approx(
        expected, abs=1e-12
    )
    e = bp.explain_gradient(model, bp.PANEL_X, bp.PANEL_Y, param, index)
    rows = page.eval_on_selector_all(
        "#terms tbody tr", "rows => rows.map(r => [...r.cells].slice(1).map(c => c.dataset.value))"
    )
    got = np.array(rows, dtype=float)
    assert got.shape == (len(bp.PANEL_X), 3)
    np.testing.assert_array_equal(got[:, 0], e["forward"])
    np.testing.assert_array_equal(got[:, 1], e["backward"])
    np.testing.assert_array_equal(got[:, 2], e["forward"] * e["backward"])
    assert total == e["product"] and engine == e["engine"]
    assert "selected" in page.get_attribute(_element_id(param, index), "class")
    return total


def _element_id(param: str, index: tuple) -> str:
    layer = "024".index(param[0])
    if param.endswith("weight"):
        return f"#weight-{layer}-{index[0]}-{index[1]}"
    return f"#bias-{layer}-{index[0]}"


def test_clicked_weights_are_explained_as_pytorch_computes_them(open_panel, server, tmp_path):
    p = open_panel(f"{server}/backprop?activation=tanh&seed=3", ready=READY)
    page = p.page
    assert page.input_value("#activation") == "tanh" and page.input_value("#seed") == "3"
    cases = [  # a first-layer weight, a hidden-layer weight, a hidden bias, the output bias
        ("weight-0-1-0", "0.weight[1, 0]", "0.weight", (1, 0)),
        ("weight-1-0-2", "2.weight[0, 2]", "2.weight", (0, 2)),
        ("bias-1-1", "2.bias[1]", "2.bias", (1,)),
        ("bias-2-0", "4.bias[0]", "4.bias", (0,)),
    ]
    for element, label, param, index in cases:
        _click(page, element, label)
        _check_selected(page, param, index, "tanh", [])
        assert f"param={param}" in page.url
    # the backward route of a first-layer weight runs through every later neuron
    _click(page, "weight-0-1-0", "0.weight[1, 0]")
    route = page.eval_on_selector_all("#network-svg .neuron.route", "els => els.map(e => e.id)")
    assert sorted(route) == ["neuron-1-1", "neuron-2-0", "neuron-2-1", "neuron-3-0"]
    assert "back through ŷ → h2.1 → h2.0 → h1.1" in page.text_content("#route")

    # one gradient-descent step: the page draws the stepped network, and the sum still equals
    # .grad and PyTorch
    page.fill("#lr", "0.3")
    page.click("#step")
    page.wait_for_function("() => document.querySelector('#step-count').textContent === '1'")
    after = _check_selected(page, "0.weight", (1, 0), "tanh", [0.3])
    assert "steps=0.3" in page.url and "lr=0.3" in page.url
    assert _value(page, "#loss") == bp.mse_loss(
        bp.panel_network("tanh", 3, [0.3]), bp.PANEL_X, bp.PANEL_Y
    )

    # a reload (or a shared link) restores the network, the steps and the selection
    page.reload()
    page.wait_for_selector("#network-svg .weight.selected")
    assert page.text_content("#step-count") == "1" and page.input_value("#lr") == "0.3"
    assert "0.weight[1, 0]" in page.text_content("#chosen-name")
    assert _check_selected(page, "0.weight", (1, 0), "tanh", [0.3]) == after
    screenshot(page, "backprop", tmp_path)

    assert downloaded(page, "#export-png").startswith(PNG_SIGNATURE)
    ckpt = loads(downloaded(page, "#export-model"))
    assert ckpt["panel"] == "backprop" and ckpt["architecture"]["activation"] == "tanh"
    x = Tensor(bp.PANEL_X, dtype=np.float64)
    expected = bp.panel_network("tanh", 3, [0.3])(x).data
    np.testing.assert_array_equal(load_model(ckpt)(x).data, expected)
    assert p.clean(), (p.problems, p.outside)


def test_settings_and_bad_input(open_panel, server):
    p = open_panel(f"{server}/backprop", ready=READY)
    page = p.page
    page.select_option("#activation", "relu")
    page.wait_for_function("() => location.search.includes('activation=relu')")
    page.fill("#seed", "5")
    page.press("#seed", "Enter")
    page.wait_for_function("() => location.search.includes('seed=5')")
    weights = _page_weights(page)
    for name, w in bp.panel_network("relu", 5).named_parameters():
        np.testing.assert_array_equal(weights[name], w.data, err_msg=name)
    assert p.clean(), (p.problems, p.outside)  # (a 400 below is logged by Chromium itself)
    page.fill("#lr", "-1")
    page.click("#step")
    page.wait_for_selector("#error:not([hidden])")
    assert "lr must be greater than 0" in page.text_content("#error")
    assert page.text_content("#step-count") == "0"
    page.fill("#seed", "x")
    page.press("#seed", "Enter")
    page.wait_for_function(
        "() => /seed must be a number/.test(document.querySelector('#error').textContent)"
    )
    assert p.outside == []
    # a link to a weight that is not there says so, and the network is drawn all the same
    bad = open_panel(f"{server}/backprop?param=9.weight&index=0,0", ready=READY)
    bad.page.wait_for_selector("#error:not([hidden])")
    assert "param must be one of" in bad.page.text_content("#error")
    assert bad.page.locator("#network-svg .weight").count() == 14
