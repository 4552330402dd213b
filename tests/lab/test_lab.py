from __future__ import annotations

import numpy as np
import pytest

import gradstep as gs
import gradstep.functional as F
from gradstep import nn
from gradstep.lab import (
    classify_critical_point,
    error_surface,
    explain_gradient,
    gradient_descent_path,
    least_squares_line,
)
from gradstep.lab.critical import EXAMPLES


def line_data():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(300)
    return x, 0.7 * x - 1.3 + 0.2 * rng.standard_normal(300)


def test_surface_minimum_matches_least_squares_within_grid_resolution():
    x, y = line_data()
    ws, bs = least_squares_line(x, y)
    w_grid, b_grid = np.linspace(-2, 2, 201), np.linspace(-3, 1, 161)
    L = error_surface(x, y, w_grid, b_grid)
    i, j = np.unravel_index(np.argmin(L), L.shape)
    assert abs(w_grid[j] - ws) <= (w_grid[1] - w_grid[0]) / 2 + 1e-12
    assert abs(b_grid[i] - bs) <= (b_grid[1] - b_grid[0]) / 2 + 1e-12


@pytest.mark.parametrize("loss", ["mse", "mae"])
def test_vectorized_surface_equals_the_engine_point_by_point(loss):
    x, y = line_data()
    w_grid, b_grid = np.linspace(-1, 2, 7), np.linspace(-2, 0, 5)
    L = error_surface(x, y, w_grid, b_grid, loss)
    fn = F.mse_loss if loss == "mse" else F.l1_loss
    for i, b in enumerate(b_grid):
        for j, w in enumerate(w_grid):
            ref = fn(gs.tensor(b + w * x, dtype=np.float64), y).item()
            np.testing.assert_allclose(L[i, j], ref, rtol=1e-12)


def test_gradient_descent_path_ends_at_least_squares():
    x, y = line_data()
    path = gradient_descent_path(x, y, w0=-2.0, b0=2.0, lr=0.3, steps=300)
    ws, bs = least_squares_line(x, y)
    assert abs(path[-1, 0] - ws) < 1e-4 and abs(path[-1, 1] - bs) < 1e-4
    assert np.all(np.diff(path[:, 2]) <= 1e-12)  # the loss never goes up at this lr


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("x^2 + y^2", "local minimum"),
        ("-(x^2 + y^2)", "local maximum"),
        ("x^2 - y^2", "saddle point"),
    ],
)
def test_critical_point_classifier(name, kind):
    r = classify_critical_point(EXAMPLES[name], [0.0, 0.0])
    assert r["kind"] == kind
    np.testing.assert_allclose(np.sort(np.abs(r["eigenvalues"])), [2, 2], rtol=1e-6)
    assert classify_critical_point(EXAMPLES[name], [0.5, 0.1])["kind"] == "not a critical point"


def test_backprop_explainer_equals_engine_for_every_weight_of_two_hidden_layers():
    gs.manual_seed(3)
    with gs.default_dtype(np.float64):
        net = nn.Sequential(
            nn.Linear(3, 4), nn.Sigmoid(), nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 1)
        )
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((8, 3)), rng.standard_normal(8)
    checked = 0
    for name, p in net.named_parameters():
        for idx in np.ndindex(p.shape):
            e = explain_gradient(net, x, y, name, idx)
            assert abs(e["product"] - e["engine"]) <= 1e-10 * max(1.0, abs(e["engine"]))
            checked += 1
    assert checked == net.num_parameters()
