"""Gradient descent on one parameter: the lecture's L(w) with a local minimum to get stuck in.

L(w) = 0.5 w^4 - 1.2 w^3 - 0.2 w^2 + 0.8 w + 1 has a local minimum near w = -0.47 (L = 0.73)
and the global one near w = 1.79 (L = 0.04), with a bump between them (L = 1.23 at w = 0.48).
Started left of the bump, w <- w - lr dL/dw stops where dL/dw = 0 in the local minimum, however
long it runs.
"""

from __future__ import annotations

import math

import numpy as np

from gradstep.tensor import Tensor

#: L(w)'s coefficients, highest power first.
COEFFICIENTS = (0.5, -1.2, -0.2, 0.8, 1.0)
FORMULA = "L(w) = 0.5 w^4 - 1.2 w^3 - 0.2 w^2 + 0.8 w + 1"
DIVERGED = 1e6  # |w| past this is a walk to infinity


def loss(w):
    """L(w) for a float, an array or a Tensor (the engine records it)."""
    a, b, c, d, e = COEFFICIENTS
    return a * w**4 + b * w**3 + c * w**2 + d * w + e


def loss_and_slope(w: float) -> tuple[float, float]:
    """L(w) and dL/dw, the slope found by the engine's backward pass (float64)."""
    t = Tensor(w, dtype=np.float64, requires_grad=True)
    value = loss(t)
    value.backward()
    return float(value.data), float(t._grad)


def minima() -> dict:
    """The local and the global minimum (where dL/dw = 0 and d2L/dw2 > 0)."""
    slope = np.polyder(np.poly1d(COEFFICIENTS))
    roots = sorted(r.real for r in slope.roots if abs(r.imag) < 1e-12)
    lows = [float(r) for r in roots if np.polyder(slope)(r) > 0]
    best = min(lows, key=loss)
    return {"local": [r for r in lows if r != best], "global": best}


def descend(w0: float, lr: float, steps: int):
    """Yield one dict per update w <- w - lr dL/dw from ``w0``: the new w, L(w), the slope
    there (the tangent the page draws) and a status: "running", "converged" (|dL/dw| < 1e-6,
    with ``where`` naming the minimum) or "diverged"."""
    w = float(w0)
    _, slope = loss_and_slope(w)
    best = minima()["global"]
    for k in range(1, steps + 1):
        w = w - lr * slope
        if not math.isfinite(w) or abs(w) > DIVERGED:
            yield {"step": k, "w": None, "loss": None, "slope": None, "status": "diverged"}
            return
        value, slope = loss_and_slope(w)
        point = {"step": k, "w": w, "loss": value, "slope": slope, "status": "running"}
        if abs(slope) < 1e-6:
            point["status"] = "converged"
            point["where"] = "global minimum" if abs(w - best) < 1e-3 else "local minimum"
        yield point
        if point["status"] != "running":
            return
