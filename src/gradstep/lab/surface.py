"""The error surface of y = b + w x over a grid of (w, b), and gradient descent walking on it."""

from __future__ import annotations

import numpy as np

from gradstep import functional as F
from gradstep.backend import default_dtype
from gradstep.tensor import Tensor

_CHUNK = 2_000_000  # grid points x data points per block: bounded memory, still vectorized


def error_surface(x, y, w_grid, b_grid, loss: str = "mse") -> np.ndarray:
    """L(w, b) for every grid point, as an array of shape (len(b_grid), len(w_grid)).

    The whole grid at once, never a Python loop over grid points. The MSE needs no pass over
    the data per point: with centred statistics,
    L(w, b) = (b + w mean(x) - mean(y))^2 + w^2 Var(x) - 2 w Cov(x, y) + Var(y),
    exact and O(grid + n). The MAE has no such form: blocks of (b, w, data point) broadcast.
    """
    x, y = np.asarray(x, np.float64).ravel(), np.asarray(y, np.float64).ravel()
    w, b = np.asarray(w_grid, np.float64), np.asarray(b_grid, np.float64)
    if loss not in ("mse", "mae"):
        raise ValueError(f"loss must be 'mse' or 'mae', got {loss!r}")
    if loss == "mse":
        dx, dy = x - x.mean(), y - y.mean()
        vx, vy, cxy = dx @ dx / x.size, dy @ dy / x.size, dx @ dy / x.size
        offset = b[:, None] + w[None, :] * x.mean() - y.mean()
        return offset * offset + (w * w * vx - 2 * w * cxy + vy)[None, :]
    out = np.empty((b.size, w.size))
    rows = max(1, _CHUNK // max(1, w.size * x.size))
    for start in range(0, b.size, rows):
        e = b[start : start + rows, None, None] + w[None, :, None] * x - y
        out[start : start + rows] = (e * e if loss == "mse" else np.abs(e)).mean(axis=-1)
    return out


def least_squares_line(x, y) -> tuple[float, float]:
    """The closed-form minimiser (w*, b*) of the MSE."""
    w, b = np.polyfit(np.asarray(x, np.float64).ravel(), np.asarray(y, np.float64).ravel(), 1)
    return float(w), float(b)


def gradient_descent_path(
    x, y, w0: float, b0: float, lr: float, steps: int, loss: str = "mse"
) -> np.ndarray:
    """(w, b, L) after each update of plain gradient descent, computed by the engine.

    Row 0 is the start; each update is w <- w - lr dL/dw, b <- b - lr dL/db.
    """
    fn = F.mse_loss if loss == "mse" else F.l1_loss
    with default_dtype(np.float64):
        xt, yt = Tensor(np.ravel(x)), Tensor(np.ravel(y))
        w, b = Tensor(float(w0), requires_grad=True), Tensor(float(b0), requires_grad=True)
    path = []
    for _ in range(steps + 1):
        L = fn(b + w * xt, yt)
        path.append((w.item(), b.item(), L.item()))
        if len(path) > steps or not np.isfinite(path[-1][2]):
            break
        w.grad = b.grad = None
        L.backward()
        w.data = w.data - lr * w._grad
        b.data = b.data - lr * b._grad
    return np.array(path)


def plot_error_surface(
    x, y, lrs, path, w0=-1.0, b0=-1.0, steps=50, loss="mse", resolution=200, format=None
) -> dict:
    """Contour map of L(w, b) with a GD path per learning rate, side by side; returns numbers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ws, bs = least_squares_line(x, y)
    paths = [gradient_descent_path(x, y, w0, b0, lr, steps, loss) for lr in lrs]
    span_w = max(abs(ws - w0), 1.0) * 1.6
    span_b = max(abs(bs - b0), 1.0) * 1.6
    w_grid = np.linspace(ws - span_w, ws + span_w, resolution)
    b_grid = np.linspace(bs - span_b, bs + span_b, resolution)
    L = error_surface(x, y, w_grid, b_grid, loss)
    i, j = np.unravel_index(np.argmin(L), L.shape)
    fig, axes = plt.subplots(1, len(lrs), figsize=(4.5 * len(lrs), 4), squeeze=False)
    for ax, lr, p in zip(axes[0], lrs, paths):
        cs = ax.contourf(w_grid, b_grid, np.log10(L + 1e-12), levels=30, cmap="viridis")
        inside = (np.abs(p[:, 0] - ws) < span_w) & (np.abs(p[:, 1] - bs) < span_b)
        ax.plot(p[inside, 0], p[inside, 1], "o-", color="orange", ms=2, lw=1)
        ax.plot(w_grid[j], b_grid[i], "r*", ms=12, label="grid minimum")
        if loss == "mse":
            ax.plot(ws, bs, "wx", ms=9, label="least squares")
        ax.set(title=f"learning rate {lr:g}: L={p[-1, 2]:.3g}", xlabel="w", ylabel="b")
        ax.legend(loc="upper right", fontsize=7)
    fig.colorbar(cs, ax=axes[0].tolist(), label="log10 L")
    fig.savefig(path, dpi=90, format=format)
    plt.close(fig)
    return {
        "grid_min": (float(w_grid[j]), float(b_grid[i])),
        "least_squares": (ws, bs),
        "final": [tuple(map(float, p[-1])) for p in paths],
        "start_loss": float(paths[0][0, 2]),
        "learning_rates": list(lrs),
    }
