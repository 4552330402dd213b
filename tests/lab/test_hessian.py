"""The exact Hessian of network losses against PyTorch's (torch.autograd.functional.hessian)
on the same weights and data, float64; the course's HW2-2 network included."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import gradstep as gs
from gradstep import functional as F
from gradstep import nn
from gradstep.lab.critical_points import (
    escape_direction,
    find_critical_point,
    inspect_critical_point,
)
from gradstep.lab.network_hessian import LossFunction, hvp, model_hessian

RNG = np.random.default_rng(0)
X = RNG.uniform(-1, 1, (100, 1))
Y = np.sin(3 * X)
TORCH_ACT = {
    "relu": torch.relu,
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "leaky_relu": lambda z: torch.nn.functional.leaky_relu(z, 0.01),
}


def _torch_loss(model, act, X, y, loss="mse"):
    params = [torch.tensor(p.data.astype(np.float64)) for p in model.parameters()]
    shapes, sizes = [p.shape for p in params], [p.numel() for p in params]
    Xt, yt = torch.tensor(X), torch.tensor(y)

    def f(theta):
        ps = [p.reshape(s) for p, s in zip(torch.split(theta, sizes), shapes)]
        h = Xt
        for i in range(len(ps) // 2):
            h = h @ ps[2 * i].T + ps[2 * i + 1]
            if i < len(ps) // 2 - 1:
                h = TORCH_ACT[act](h)
        if loss == "ce":
            return torch.nn.functional.cross_entropy(h, yt)
        return ((h - yt) ** 2).mean()

    return f, torch.cat([p.ravel() for p in params])


def _rel(a, b) -> float:
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


@pytest.mark.parametrize(
    "act, hidden", [("relu", [128]), ("sigmoid", [16, 8]), ("tanh", [10]), ("leaky_relu", [12, 6])]
)
def test_hessian_equals_pytorchs(act, hidden):
    gs.manual_seed(1)
    model = nn.mlp(1, hidden, 1, act)
    before = [p.data.copy() for p in model.parameters()]
    H = model_hessian(model, nn.MSELoss(), X, Y)
    f, theta = _torch_loss(model, act, X, Y)
    T = torch.autograd.functional.hessian(f, theta).numpy()
    assert H.shape == T.shape == (theta.numel(),) * 2
    assert _rel(H, T) < 1e-6
    # a ReLU network has negative curvature PyTorch sees too (not a rounding artefact)
    assert (np.linalg.eigvalsh(H) < -1e-8).sum() == (np.linalg.eigvalsh(T) < -1e-8).sum() > 0
    assert all(np.array_equal(a, p.data) for a, p in zip(before, model.parameters()))


def test_hvp_and_cross_entropy_equal_pytorchs():
    gs.manual_seed(2)
    model = nn.mlp(3, [20], 4, "relu")
    X3 = RNG.standard_normal((64, 3))
    labels = RNG.integers(0, 4, 64)
    v = RNG.standard_normal(model.num_parameters())
    got = hvp(model, nn.CrossEntropyLoss(), X3, labels, v)
    f, theta = _torch_loss(model, "relu", X3, labels, loss="ce")
    _, want = torch.autograd.functional.hvp(f, theta, torch.tensor(v))
    assert _rel(got, want.numpy()) < 1e-6


def test_a_kink_outside_a_module_is_refused():
    class Functional(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(1, 4), nn.Linear(4, 1)

        def forward(self, x):
            return self.b(F.relu(self.a(x)))

    with pytest.raises(ValueError, match="ReLU outside an nn.ReLU"):
        model_hessian(Functional(), nn.MSELoss(), X, Y)
    with pytest.raises(ValueError, match="L1"):
        model_hessian(nn.mlp(1, [3], 1), nn.L1Loss(), X, Y)


def test_inspect_counts_and_the_gauss_newton_ratio():
    gs.manual_seed(0)
    model = nn.mlp(1, [16], 1)
    r = inspect_critical_point(model, nn.MSELoss(), X, Y, grad_tol=1e9)
    eig = r["eigenvalues"]
    assert r["n_positive"] + r["n_negative"] + r["n_zero"] == r["parameters"] == eig.size
    assert r["minimum_ratio"] == r["n_positive"] / r["parameters"]
    zero = r["tol"] * np.abs(eig).max()
    assert r["n_negative"] == (eig < -zero).sum()
    assert r["verdict"] == ("saddle point" if r["n_negative"] else "local minimum")
    assert 0 < r["minimum_ratio_gauss_newton"] <= 1
    assert inspect_critical_point(model, nn.MSELoss(), X, Y)["verdict"] == "not a critical point"


def test_a_convex_problem_is_a_local_minimum():
    model = nn.mlp(1, [], 1)  # linear regression: the Hessian is 2 E[x x^T], positive
    find_critical_point(model, nn.MSELoss(), X, Y, epochs=3000, lr=0.05, grad_tol=1e-9)
    r = inspect_critical_point(model, nn.MSELoss(), X, Y, grad_tol=1e-6)
    assert r["verdict"] == "local minimum" and r["minimum_ratio"] == 1.0
    xb = np.hstack([X, np.ones_like(X)])
    np.testing.assert_allclose(
        np.sort(r["eigenvalues"]), np.linalg.eigvalsh(2 * xb.T @ xb / len(X)), rtol=1e-9
    )


def test_gradient_norm_descent_reaches_a_small_gradient_and_escape_is_reported():
    gs.manual_seed(0)
    model = nn.mlp(1, [8], 1, "tanh")
    r = find_critical_point(model, nn.MSELoss(), X, Y, epochs=300, lr=1e-2, grad_tol=1e-4)
    assert r["reached"] and r["grad_norm"] < 1e-4
    assert r["gradient_norm_steps"] > 0  # Adam alone had not got there
    assert r["grad_norm"] == pytest.approx(
        np.linalg.norm(LossFunction(model, nn.MSELoss(), X, Y).grad())
    )
    e = escape_direction(model, nn.MSELoss(), X, Y, ts=np.linspace(0, 1e-3, 5))
    lam = e["eigenvalue"]
    assert lam == pytest.approx(np.linalg.eigvalsh(model_hessian(model, nn.MSELoss(), X, Y))[0])
    # near theta the loss follows the second-order model on both sides (to third order)
    for side in ("plus", "minus"):
        change = np.abs(e[f"model_{side}"] - e[f"model_{side}"][0]).max()
        np.testing.assert_allclose(e[f"loss_{side}"], e[f"model_{side}"], atol=1e-3 * change)


@pytest.mark.parametrize(
    "lo, hi, n_zero, verdict",
    [
        (-1.0, 1.0, None, "saddle point"),
        (0.0, 1.0, None, "flat (undetermined)"),  # only the extremes known, the lowest zero
        (-1.0, 0.0, None, "flat (undetermined)"),
        (1.0, 2.0, 0, "local minimum"),
        (-2.0, -1.0, 0, "local maximum"),
        (0.5, 2.0, 3, "flat (undetermined)"),
    ],
)
def test_the_verdict_from_the_extreme_eigenvalues(lo, hi, n_zero, verdict):
    from gradstep.lab.critical_points import _verdict

    assert _verdict(0.0, lo, hi, n_zero, 1e-3) == verdict
    assert _verdict(1.0, lo, hi, n_zero, 1e-3) == "not a critical point"


def test_above_the_full_limit_only_the_extremes_by_lanczos(monkeypatch):
    from gradstep.lab import critical_points

    gs.manual_seed(0)
    model = nn.mlp(1, [8], 1, "tanh")  # 25 parameters, made "large" by a lower limit
    full = np.linalg.eigvalsh(model_hessian(model, nn.MSELoss(), X, Y))
    monkeypatch.setattr(critical_points, "FULL_LIMIT", 20)
    r = inspect_critical_point(model, nn.MSELoss(), X, Y, grad_tol=1e9)
    eig = r["eigenvalues"]
    assert eig.size == 20 and r["minimum_ratio"] is None and r["n_positive"] is None
    np.testing.assert_allclose(eig[:10], full[:10], atol=1e-9 * np.abs(full).max())
    np.testing.assert_allclose(eig[10:], full[-10:], atol=1e-9 * np.abs(full).max())
    assert full[0] < 0 < full[-1] and r["verdict"] == "saddle point"  # at initialisation
