"""Critical points: where the gradient vanishes, the Hessian's eigenvalues say what it is."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from gradstep.tensor import Tensor


def gradient(f: Callable[[Tensor], Tensor], theta) -> np.ndarray:
    """The exact gradient of scalar f at theta (float64), by backpropagation."""
    t = Tensor(np.asarray(theta, np.float64), requires_grad=True, dtype=np.float64)
    f(t).backward()
    return t._grad.copy()


def hessian(f: Callable[[Tensor], Tensor], theta, eps: float = 1e-5) -> np.ndarray:
    """H_ij = d/dtheta_j of the exact gradient_i, by central differences in float64.

    For smooth functions of a few variables (the lecture's toy surfaces). A network with ReLUs
    needs :func:`gradstep.lab.model_hessian`: a step here can cross a kink, where the gradient
    jumps (an error of 6.9 on the HW2-2 network with 100 points)."""
    theta = np.asarray(theta, np.float64)
    n = theta.size
    H = np.empty((n, n))
    for j in range(n):
        e = np.zeros(n)
        e[j] = eps
        H[:, j] = (gradient(f, theta + e) - gradient(f, theta - e)) / (2 * eps)
    return (H + H.T) / 2


def classify_critical_point(f, theta, tol: float = 1e-6) -> dict:
    """'local minimum' (all eigenvalues > 0), 'local maximum' (all < 0), 'saddle point' (both
    signs), or 'not a critical point' / 'undetermined' (a zero eigenvalue)."""
    g = gradient(f, theta)
    H = hessian(f, theta)
    eig = np.linalg.eigvalsh(H)
    if np.max(np.abs(g)) > tol:
        kind = "not a critical point"
    elif np.all(eig > tol):
        kind = "local minimum"
    elif np.all(eig < -tol):
        kind = "local maximum"
    elif eig.min() < -tol and eig.max() > tol:
        kind = "saddle point"
    else:
        kind = "undetermined (a zero eigenvalue)"
    return {"gradient": g, "hessian": H, "eigenvalues": eig, "kind": kind}


EXAMPLES = {
    "x^2 + y^2": lambda t: (t * t).sum(),
    "-(x^2 + y^2)": lambda t: -(t * t).sum(),
    "x^2 - y^2": lambda t: t[0] * t[0] - t[1] * t[1],
}
