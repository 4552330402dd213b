"""The course's homework 2-2, done with the exact Hessian: train the 1 -> 128 ReLU -> 1 network
on a one-dimensional function until the gradient is small, then ask the Hessian what kind of
point it is; and a saddle point of the same network escaped along its negative curvature.

Everything here runs in float64 on the engine and ``gradstep.lab.critical_points``; the figures
are drawn by ``gradstep.lab.figures``.
"""

from __future__ import annotations

import time

import numpy as np

import gradstep as gs
from gradstep import nn, optim
from gradstep.lab.critical_points import (
    escape_direction,
    find_critical_point,
    inspect_critical_point,
)

HIDDEN = 128  # the homework's width


def data(n: int = 100, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """x uniform on [-1, 1] and y = sin(3x), both of shape (n, 1), float64."""
    x = np.random.default_rng(seed).uniform(-1.0, 1.0, (n, 1))
    return x, np.sin(3.0 * x)


def network(seed: int = 0, hidden: int = HIDDEN, activation: str = "relu") -> nn.Module:
    """The homework's network, 1 -> hidden ReLU -> 1, in float64, initialised by ``seed``;
    ``activation`` ("relu", "tanh", "sigmoid", "leaky_relu", as ``nn.mlp``) swaps the ReLU."""
    gs.manual_seed(seed)
    return nn.mlp(1, [hidden], 1, activation).double()


def minimum_ratio_study(
    seeds=range(20),
    epochs=(250, 500, 1000, 2000),
    n: int = 100,
    hidden: int = HIDDEN,
    lr: float = 1e-2,
    grad_tol: float = 1e-4,
    max_steps: int = 30,
    tol: float = 1e-6,
    activation: str = "relu",
) -> list[dict]:
    """The homework's experiment, one training per seed: ``epochs[seed % len(epochs)]`` Adam
    steps (different budgets spread the losses reached), then minimisation of |g|^2 until
    |g| < ``grad_tol`` (or ``max_steps`` steps), then the exact Hessian's verdict and both
    minimum ratios. One row per seed, with the seconds it took. ``activation`` is the hidden
    layer's (the homework's is ReLU), as in :func:`network`."""
    X, y = data(n)
    rows = []
    for seed in seeds:
        started = time.perf_counter()
        model = network(seed, hidden, activation)
        budget = epochs[seed % len(epochs)]
        found = find_critical_point(
            model, nn.MSELoss(), X, y, budget, lr, grad_tol=grad_tol, max_steps=max_steps
        )
        r = inspect_critical_point(model, nn.MSELoss(), X, y, tol=tol, grad_tol=10 * grad_tol)
        eig = r["eigenvalues"]
        rows.append(
            {
                "seed": int(seed),
                "epochs": budget,
                "loss": r["loss"],
                "grad_norm": r["grad_norm"],
                "reached": bool(found["reached"]),
                "n_positive": r["n_positive"],
                "n_negative": r["n_negative"],
                "n_zero": r["n_zero"],
                "minimum_ratio": r["minimum_ratio"],
                "minimum_ratio_gauss_newton": r["minimum_ratio_gauss_newton"],
                "smallest_eigenvalue": float(eig[0]),
                "largest_eigenvalue": float(eig[-1]),
                "verdict": r["verdict"],
                "seconds": time.perf_counter() - started,
            }
        )
    return rows


def origin_saddle(model: nn.Module, X, y, bias: float = 0.1) -> nn.Module:
    """Put a one-hidden-layer network at a saddle point it has for any data: input and output
    weights zero, hidden biases ``bias`` > 0 (every unit active, on the same side of its kink)
    and the output bias the mean of y. The network predicts mean(y) whatever x is and every
    gradient is zero there; but a hidden unit's input weight w_j and output weight v_j couple
    through d2L/(dw_j dv_j) = 2 mean((f - y) x) = -2 Cov(x, y), and with d2L/dw_j^2 = 0 each
    such pair has one negative eigenvalue when x and y are correlated."""
    first, second = [m for m in model.modules() if isinstance(m, nn.Linear)]
    first.weight.data = np.zeros_like(first.weight.data)
    first.bias.data = np.full_like(first.bias.data, bias)
    second.weight.data = np.zeros_like(second.weight.data)
    second.bias.data = np.full_like(second.bias.data, float(np.mean(y)))
    return model


def _train(model, X, y, steps: int, lr: float) -> list[float]:
    loss_fn, opt = nn.MSELoss(), optim.SGD(model.parameters(), lr=lr)
    Xt, yt = gs.Tensor(X, dtype=np.float64), gs.Tensor(y, dtype=np.float64)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = loss_fn(model(Xt), yt)
        losses.append(float(loss.data))
        loss.backward()
        opt.step()
    return losses


def saddle_escape(
    n: int = 100, t_max: float = 1.0, points: int = 41, steps: int = 300, lr: float = 0.05
) -> dict:
    """The homework network at ``origin_saddle``: its exact Hessian's verdict; the true loss
    along theta +/- t u (u the eigenvector of the most negative eigenvalue) beside the
    second-order model; and gradient descent from theta itself (the gradient is zero: it never
    moves) against gradient descent from theta + t_max u (it leaves the saddle and trains)."""
    X, y = data(n)
    model = origin_saddle(network(0), X, y)
    r = inspect_critical_point(model, nn.MSELoss(), X, y)
    e = escape_direction(model, nn.MSELoss(), X, y, ts=np.linspace(0.0, t_max, points))
    stay = _train(origin_saddle(network(0), X, y), X, y, steps, lr)
    moved = origin_saddle(network(0), X, y)
    start, flat = 0, e["direction"]
    for p in moved.parameters():  # theta + t_max u, in the order of model.parameters()
        p.data = p.data + t_max * flat[start : start + p.size].reshape(p.shape)
        start += p.size
    escaped = _train(moved, X, y, steps, lr)
    return {
        "verdict": r["verdict"],
        "grad_norm": r["grad_norm"],
        "n_positive": r["n_positive"],
        "n_negative": r["n_negative"],
        "n_zero": r["n_zero"],
        "minimum_ratio": r["minimum_ratio"],
        "minimum_ratio_gauss_newton": r["minimum_ratio_gauss_newton"],
        "covariance": float(np.cov(X.ravel(), y.ravel(), bias=True)[0, 1]),
        **{k: e[k] for k in ("eigenvalue", "t", "loss_plus", "loss_minus")},
        **{k: e[k] for k in ("model_plus", "model_minus")},
        "gd_from_saddle": np.array(stay),
        "gd_after_escape": np.array(escaped),
        "lr": lr,
    }
