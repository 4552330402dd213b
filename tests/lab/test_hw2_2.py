"""The course's HW2-2 with the exact Hessian: a constructed saddle point of the 1 -> 128 ReLU -> 1
network with known negative curvature, its escape, a trained minimum, and the study's rows."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import gradstep as gs
from gradstep import nn
from gradstep.lab import hw2_2
from gradstep.lab.critical_points import find_critical_point, inspect_critical_point

X, Y = hw2_2.data()


def test_the_origin_saddle_has_the_negative_curvature_the_algebra_gives():
    model = hw2_2.origin_saddle(hw2_2.network(0), X, Y)
    r = inspect_critical_point(model, nn.MSELoss(), X, Y)
    assert r["grad_norm"] < 1e-12
    assert r["verdict"] == "saddle point"
    # each hidden unit's (w_j, v_j) pair couples by -2 Cov(x, y) with zero diagonal: one
    # eigenvalue -2|Cov| per unit; the hidden biases have no curvature at all
    cov = np.cov(X.ravel(), Y.ravel(), bias=True)[0, 1]
    assert r["eigenvalues"][0] == pytest.approx(-2 * abs(cov), rel=1e-9)
    assert r["n_negative"] == hw2_2.HIDDEN and r["n_zero"] == hw2_2.HIDDEN
    # PyTorch's Hessian of the same point agrees on the most negative eigenvalue
    theta = torch.zeros(3 * hw2_2.HIDDEN + 1, dtype=torch.float64)
    theta[hw2_2.HIDDEN : 2 * hw2_2.HIDDEN] = 0.1
    theta[-1] = float(Y.mean())
    x, y = torch.from_numpy(X), torch.from_numpy(Y)
    h = hw2_2.HIDDEN

    def loss(t):
        w, b, v, c = t[:h].reshape(h, 1), t[h : 2 * h], t[2 * h : 3 * h].reshape(1, h), t[-1]
        return ((torch.relu(x @ w.T + b) @ v.T + c - y) ** 2).mean()

    H = torch.autograd.functional.hessian(loss, theta).numpy()
    assert np.linalg.eigvalsh(H)[0] == pytest.approx(r["eigenvalues"][0], rel=1e-9)
    # the course's Gauss-Newton matrix sees no negative direction at all
    assert r["minimum_ratio_gauss_newton"] > 0 and r["minimum_ratio"] < 1


def test_the_saddle_is_escaped_along_the_negative_eigenvector():
    e = hw2_2.saddle_escape(points=11, steps=100)
    assert e["verdict"] == "saddle point"
    for side in ("plus", "minus"):
        loss = e[f"loss_{side}"]
        assert np.all(loss[1:] < loss[0])  # the loss falls on both sides
        # near theta it follows the second-order model L0 + lambda t^2 / 2 (g = 0)
        assert loss[1] == pytest.approx(e[f"model_{side}"][1], rel=1e-3)
    stay, escaped = e["gd_from_saddle"], e["gd_after_escape"]
    assert np.all(stay == stay[0])  # zero gradient: gradient descent never moves
    assert escaped[-1] < 0.5 * stay[0]


def test_a_trained_small_network_is_a_local_minimum():
    noisy = Y + 0.1 * np.random.default_rng(1).standard_normal(Y.shape)
    gs.manual_seed(0)
    model = nn.mlp(1, [1], 1, "tanh")
    found = find_critical_point(model, nn.MSELoss(), X, noisy, epochs=1500, lr=1e-2, grad_tol=1e-8)
    assert found["reached"]
    r = inspect_critical_point(model, nn.MSELoss(), X, noisy, grad_tol=1e-6)
    assert r["verdict"] == "local minimum" and r["n_negative"] == 0 and r["n_zero"] == 0
    assert r["eigenvalues"][0] > r["tol"] * r["eigenvalues"][-1]


def test_the_study_rows_are_what_inspect_says():
    rows = hw2_2.minimum_ratio_study(seeds=[3], epochs=(500,), hidden=16, max_steps=5)
    (row,) = rows
    model = hw2_2.network(3, 16)
    find_critical_point(model, nn.MSELoss(), X, Y, 500, 1e-2, grad_tol=1e-4, max_steps=5)
    r = inspect_critical_point(model, nn.MSELoss(), X, Y, grad_tol=1e-3)
    assert row["minimum_ratio"] == r["minimum_ratio"] == r["n_positive"] / 49
    assert row["n_negative"] == r["n_negative"] and row["verdict"] == r["verdict"]
    assert row["loss"] == pytest.approx(r["loss"], rel=1e-12)
    assert row["minimum_ratio_gauss_newton"] == r["minimum_ratio_gauss_newton"]
