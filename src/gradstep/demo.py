"""The lecture's first model in a dozen lines: y = b + w x, fitted by gradient descent.

Run with ``python -m gradstep.demo``.
"""

from __future__ import annotations

import numpy as np

import gradstep as gs
import gradstep.functional as F


def fit_line(x: np.ndarray, y: np.ndarray, lr: float = 0.1, steps: int = 500):
    """Step 1: y = b + w x with unknown w, b. Step 2: the MSE loss. Step 3: gradient descent."""
    w = gs.tensor(0.0, requires_grad=True)
    b = gs.tensor(0.0, requires_grad=True)
    xt, yt = gs.tensor(x), gs.tensor(y)
    for _ in range(steps):
        loss = F.mse_loss(b + w * xt, yt)
        w.grad = b.grad = None
        loss.backward()
        with gs.no_grad():
            w.data -= lr * w.grad
            b.data -= lr * b.grad
    return w.item(), b.item(), loss.item()


def main() -> None:
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, 200)
    y = 0.5 + 2.0 * x + 0.1 * rng.standard_normal(200)
    w, b, loss = fit_line(x, y)
    print("Fitting y = b + w x to 200 noisy points of y = 0.5 + 2.0 x by gradient descent")
    print(f"w = {w:.4f}  b = {b:.4f}  MSE loss = {loss:.5f}")


if __name__ == "__main__":
    main()
