"""Critical points of real networks (the lecture after the seed's): where the gradient is
small, is it a local minimum or a saddle point? The exact Hessian (``gradstep.lab.network_hessian``)
answers; the course's Gauss-Newton "minimum ratio" is computed beside it for comparison.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from gradstep import nn, optim
from gradstep.lab.network_hessian import LossFunction, extreme_eigenvalues

# Parameters up to which every eigenvalue is computed: the full Hessian costs P Hessian-vector
# products, and Lanczos for the smallest eigenvalues of a network's Hessian (thousands of them
# near zero) can take 100x more: at P = 2,689 the full Hessian took 13 s, eigsh(which="SA")
# 141,224 products and 630 s for the same 10 smallest eigenvalues.
FULL_LIMIT = 4000


def gauss_newton_blocks(f: LossFunction) -> list[np.ndarray]:
    """The course's per-layer Gauss-Newton matrices (2/N) J_l^T J_l for the MSE, J_l the
    Jacobian of the N outputs with respect to layer l's parameters (weight and bias together).
    Positive semi-definite by construction: it cannot see a negative curvature."""
    out = f.model(f.X)
    n_out = out.size
    rows = []
    for i in range(n_out):
        f.move_to(f.theta)  # a fresh graph for each output
        o = f.model(f.X).reshape(-1)[i]
        o.backward()
        rows.append(
            np.concatenate(
                [(p._grad if p._grad is not None else np.zeros(p.shape)).ravel() for p in f.params]
            )
        )
    J = np.stack(rows)
    blocks, start = [], 0
    owners = _layer_sizes(f)
    for size in owners:
        Jl = J[:, start : start + size]
        blocks.append(2.0 / n_out * Jl.T @ Jl)
        start += size
    return blocks


def _layer_sizes(f: LossFunction) -> list[int]:
    """Parameter counts grouped by the module that owns them (a layer's weight and bias)."""
    sizes: dict[str, int] = {}
    for name, p in f.model.named_parameters():
        owner = name.rsplit(".", 1)[0] if "." in name else ""
        sizes[owner] = sizes.get(owner, 0) + p.size
    return list(sizes.values())


def _verdict(grad_norm, lo, hi, n_zero, grad_tol) -> str:
    if grad_norm > grad_tol:
        return "not a critical point"
    if lo < 0 < hi:
        return "saddle point"
    if n_zero or lo == 0 or hi == 0:  # zero curvature left (n_zero is None above FULL_LIMIT)
        return "flat (undetermined)"
    return "local minimum" if lo > 0 else "local maximum"


def inspect_critical_point(model, loss_fn, X, y, tol: float = 1e-6, grad_tol: float = 1e-3):
    """Classify the model's current weights by the exact Hessian of the loss.

    An eigenvalue counts as zero when |lambda| <= tol * max|lambda|. Returns ``grad_norm``,
    ``eigenvalues`` (all when P <= 4,000, else the 10 largest and 10 smallest by Lanczos),
    ``n_positive``/``n_negative``/``n_zero`` and ``minimum_ratio`` (the course's n_positive / P;
    None when only the extremes are known), ``minimum_ratio_gauss_newton`` (the course's method,
    MSE only), the tolerance used, and ``verdict``: "local minimum", "saddle point", "local
    maximum", "not a critical point" (gradient norm above ``grad_tol``) or "flat
    (undetermined)" (no negative curvature but zero eigenvalues, where higher orders decide).
    """
    f = LossFunction(model, loss_fn, X, y)
    grad_norm = float(np.linalg.norm(f.grad()))
    result = {"parameters": f.size, "loss": f.value(), "grad_norm": grad_norm, "tol": tol}
    if f.size <= FULL_LIMIT:
        eig = np.linalg.eigvalsh(f.hessian())
        zero = tol * np.max(np.abs(eig))
        n_pos, n_neg = int((eig > zero).sum()), int((eig < -zero).sum())
        n_zero = f.size - n_pos - n_neg
        lo, hi = float(eig[0]), float(eig[-1])
        result.update(eigenvalues=eig, n_positive=n_pos, n_negative=n_neg, n_zero=n_zero)
        result["minimum_ratio"] = n_pos / f.size
    else:
        ext = extreme_eigenvalues(f, k=10)
        eig = np.concatenate([ext["smallest"], ext["largest"][::-1]])
        zero = tol * np.max(np.abs(eig))
        lo, hi = float(eig[0]), float(eig[-1])
        n_zero = 0 if (lo > zero or hi < -zero) else None
        result.update(eigenvalues=eig, n_positive=None, n_negative=None, n_zero=n_zero)
        result["minimum_ratio"] = None
    lo_c = lo if abs(lo) > zero else 0.0
    hi_c = hi if abs(hi) > zero else 0.0
    result["minimum_ratio_gauss_newton"] = None
    if isinstance(loss_fn, nn.MSELoss) and f.size <= FULL_LIMIT:
        gn = np.concatenate([np.linalg.eigvalsh(b) for b in gauss_newton_blocks(f)])
        result["minimum_ratio_gauss_newton"] = float((gn > 0).sum() / f.size)
    result["verdict"] = _verdict(grad_norm, lo_c, hi_c, n_zero, grad_tol)
    return result


def _damped_step(f: LossFunction, g: np.ndarray, mu: float, eigh=None) -> np.ndarray:
    """The Levenberg-Marquardt step on |g|^2 / 2: -(H^2 + mu I)^-1 H g. Small mu is Newton's
    step on g (-H^-1 g); large mu is gradient descent on |g|^2 (direction -2 H g). ``eigh`` is
    the Hessian's eigendecomposition at theta when the caller has it (a rejected step retries
    from the same point with a larger mu: no new Hessian)."""
    if eigh is not None:
        lam, Q = eigh
        return -Q @ (lam / (lam**2 + mu) * (Q.T @ g))
    from scipy.sparse.linalg import LinearOperator, cg

    op = LinearOperator((f.size, f.size), matvec=lambda v: f.hvp(f.hvp(v)) + mu * v)
    return -cg(op, f.hvp(g), maxiter=100)[0]


def find_critical_point(
    model,
    loss_fn,
    X,
    y,
    epochs: int = 1000,
    lr: float = 1e-3,
    grad_tol: float = 1e-6,
    max_steps: int = 100,
) -> dict:
    """Reach a point where the gradient vanishes, the course's way: ``epochs`` full-batch Adam
    steps on the loss, then minimise the squared gradient norm |g|^2 (whose gradient is 2 H g)
    until |g| < ``grad_tol``. The second phase takes Levenberg-Marquardt steps on |g|^2
    (between Newton's step on g and descent along -2 H g): plain first-order descent on |g|^2
    crawls, since its curvature is H^2, the square of the Hessian's condition number. It goes
    to the nearest critical point of any kind, saddle points included: the point of the
    exercise. :func:`critical_point_steps` is the same search, one step at a time.

    The model is converted to float64 and left at the point found. Returns the loss and gradient
    norm there, the steps of each phase, whether the threshold was reached and |g| per step.
    """
    *_, done = critical_point_steps(
        model, loss_fn, X, y, epochs, lr, grad_tol, max_steps, report_every=0
    )
    keys = ("loss", "grad_norm", "reached", "train_steps", "gradient_norm_steps")
    return {**{k: done[k] for k in keys}, "grad_norm_history": done["grad_norm_history"]}


def _grad_norm(model) -> float:
    """|g| from the gradients the last backward pass left in ``model``'s parameters."""
    return float(
        np.sqrt(sum(float(np.sum(p._grad**2)) for p in model.parameters() if p._grad is not None))
    )


def critical_point_steps(
    model,
    loss_fn,
    X,
    y,
    epochs: int = 1000,
    lr: float = 1e-3,
    grad_tol: float = 1e-6,
    max_steps: int = 100,
    report_every: int = 1,
) -> Iterator[dict]:
    """:func:`find_critical_point` one step at a time, for a page that draws it as it goes.

    Yields, in order:

    - ``{"phase": "train", "step": k, "loss", "grad_norm"}``: the loss and |g| after ``k``
      Adam steps (before step k + 1), for every ``report_every``-th k from 0 (none when
      ``report_every`` is 0);
    - ``{"phase": "gradient norm", "step": k, "loss", "grad_norm", "damping"}``: the point
      after ``k`` accepted Levenberg-Marquardt steps on |g|^2, from k = 0 (where Adam left
      off); the model holds that point when the dict is yielded;
    - last, ``{"phase": "done", ...}`` with :func:`find_critical_point`'s results and
      ``stop``: "reached" (|g| < ``grad_tol``), "max steps" or "stalled" (no step lowered |g|,
      however damped: typically a ReLU kink or a flat valley of critical points).
    """
    model.double()
    opt = optim.Adam(model.parameters(), lr=lr)
    f = LossFunction(model, loss_fn, X, y)
    for k in range(epochs):
        opt.zero_grad()
        loss = loss_fn(model(f.X), f.y)
        loss.backward()
        if report_every and k % report_every == 0:
            yield {
                "phase": "train",
                "step": k,
                "loss": float(loss.data),
                "grad_norm": _grad_norm(model),
            }
        opt.step()
    f.move_to(np.concatenate([p.data.ravel() for p in model.parameters()]))
    g = f.grad()
    norms = [float(np.linalg.norm(g))]
    mu = 1e-6 * max(norms[0], 1e-12)
    yield {
        "phase": "gradient norm",
        "step": 0,
        "loss": f.value(),
        "grad_norm": norms[0],
        "damping": mu,
    }
    eigh = None
    while len(norms) <= max_steps and norms[-1] >= grad_tol and mu < 1e12:
        theta = f.theta.copy()
        if eigh is None and f.size <= FULL_LIMIT:
            eigh = np.linalg.eigh(f.hessian())
        f.move_to(theta + _damped_step(f, g, mu, eigh))
        g_new = f.grad()
        if np.linalg.norm(g_new) < norms[-1]:
            g, mu, eigh = g_new, mu / 3, None
            norms.append(float(np.linalg.norm(g)))
            f.write_back(model)  # the model follows, so a reader between steps sees the point
            step = {"step": len(norms) - 1, "loss": f.value(), "grad_norm": norms[-1]}
            yield {"phase": "gradient norm", **step, "damping": mu}
        else:  # too bold (or across a kink): back, and lean toward gradient descent
            f.move_to(theta)
            mu *= 4
    f.write_back(model)
    reached = norms[-1] < grad_tol
    yield {
        "phase": "done",
        "loss": f.value(),
        "grad_norm": norms[-1],
        "reached": reached,
        "stop": "reached" if reached else ("stalled" if mu >= 1e12 else "max steps"),
        "train_steps": epochs,
        "gradient_norm_steps": len(norms) - 1,
        "grad_norm_history": norms,
    }


def escape_direction(model, loss_fn, X, y, ts=None) -> dict:
    """The loss along theta +/- t u for u the eigenvector of the most negative eigenvalue: at
    a saddle point it falls on both sides (the way out that gradient descent cannot see)."""
    f = LossFunction(model, loss_fn, X, y)
    if f.size <= FULL_LIMIT:
        eig, vec = np.linalg.eigh(f.hessian())
        lam, u = float(eig[0]), vec[:, 0]
    else:
        ext = extreme_eigenvalues(f, k=1)
        lam, u = float(ext["smallest"][0]), ext["smallest_vectors"][:, 0]
    ts = np.linspace(0, 1, 11) if ts is None else np.asarray(ts, np.float64)
    real = LossFunction(model, loss_fn, X, y, freeze=False)  # the true loss: kinks move
    loss0, slope = f.value(), float(f.grad() @ u)
    plus = [real.value(f.theta + t * u) for t in ts]
    minus = [real.value(f.theta - t * u) for t in ts]
    return {
        "eigenvalue": lam,
        "direction": u,
        "t": ts,
        "loss_plus": np.array(plus),
        "loss_minus": np.array(minus),
        # the second-order model L0 +/- (g.u) t + lam t^2 / 2, what the Hessian predicts
        "model_plus": loss0 + slope * ts + 0.5 * lam * ts**2,
        "model_minus": loss0 - slope * ts + 0.5 * lam * ts**2,
    }
