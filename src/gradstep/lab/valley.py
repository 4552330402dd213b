"""Optimizers on a narrow valley: the lecture's error surface of y = b + w x on raw degrees
(yesterday's maximum temperature in Seattle predicts today's).

Its Hessian is constant, H = 2 [[mean x^2, mean x], [mean x, 1]], with eigenvalues about 0.35
and 570: a valley 1,600 times steeper across than along. Gradient descent is stable only for
lr < 2 / 570 and then crawls along the floor, its error shrinking by 1 - lr * 0.35 per step.
Momentum and the adaptive methods (Adagrad, RMSProp, Adam) are gradstep's own optimizers, run on
a (w, b) pair of float64 parameters from the same start for the same number of full-batch steps.
Small against large batches is :mod:`gradstep.lab.batch_size`.
"""

from __future__ import annotations

import math

import numpy as np

from gradstep import functional as F
from gradstep import nn, optim
from gradstep.lab.surface import error_surface, least_squares_line
from gradstep.tensor import Tensor

START = (-1.0, -5.0)  # the report's start for the error surface
STEPS = 3000  # the budget: GD at its largest stable lr needs about 1,800 steps here
TOLERANCE = 0.01  # "at the minimum": loss within 1% of the least-squares loss
DIVERGED = 1e6  # a path whose loss exceeds this multiple of its start loss has diverged

#: The optimizer classes a setting may name (PyTorch's names).
OPTIMIZERS = {
    "SGD": optim.SGD,
    "Adagrad": optim.Adagrad,
    "RMSprop": optim.RMSprop,
    "Adam": optim.Adam,
    "AdamW": optim.AdamW,
}

#: Learning rates of the adaptive methods on the raw-degree Seattle valley: from the grid
#: (1, 2, 3, 5) x 10^k, 0.01 <= lr <= 5, the one that *settles* soonest (is within 1% of the
#: minimum loss from that step to the end of the 3,000-step budget), counting only rates whose
#: loss never climbs above its start (:func:`learning_rate_sweep`; the docs give the table).
ADAPTIVE_LRS = {"Adagrad": 3.0, "RMSProp": 0.02, "Adam": 1.0}


def seattle_pairs() -> tuple[np.ndarray, np.ndarray]:
    """(x, y) of the report's error surface: yesterday's and today's maximum temperature (deg C)
    for the first 365 days of the series (2012), each of shape (365,)."""
    from gradstep.lab import experiments

    series, _ = experiments.load_series()
    return series[:-1][:365], series[1:][:365]


def _pairs(x, y) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if x.ndim != 1 or y.shape != x.shape or x.size < 2:
        raise ValueError(
            f"x and y must be 1-D of the same length >= 2, got shapes {x.shape} and {y.shape}"
        )
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ValueError("x and y must be finite (no NaN or inf)")
    if np.ptp(x) == 0:
        raise ValueError("x is constant: the line y = b + w x has no unique least-squares fit")
    return x, y


def hessian_eigenvalues(x) -> np.ndarray:
    """Eigenvalues (ascending) of the MSE's Hessian in (w, b) for y = b + w x:
    H = 2 [[mean x^2, mean x], [mean x, 1]], the same at every (w, b)."""
    x = np.asarray(x, np.float64).ravel()
    H = 2 * np.array([[np.mean(x * x), np.mean(x)], [np.mean(x), 1.0]])
    return np.linalg.eigvalsh(H)


def default_settings(x) -> dict[str, tuple[str, dict]]:
    """The five optimizers of the comparison, as {label: (optimizer name, keyword arguments)}.

    GD runs at 0.99 * 2 / lambda_max, just under its stability limit (the largest stable rate;
    for this valley also within 1% of the best constant rate, 2 / (lambda_min + lambda_max)).
    Momentum (heavy ball, 0.9) uses the same rate, so the only change is the momentum; it is
    stable up to 2 (1 + 0.9) / lambda_max. The adaptive rates are :data:`ADAPTIVE_LRS`.
    """
    lr = float(0.99 * 2 / hessian_eigenvalues(x)[-1])
    return {
        "GD": ("SGD", {"lr": lr}),
        "Momentum": ("SGD", {"lr": lr, "momentum": 0.9}),
        "Adagrad": ("Adagrad", {"lr": ADAPTIVE_LRS["Adagrad"]}),
        "RMSProp": ("RMSprop", {"lr": ADAPTIVE_LRS["RMSProp"]}),
        "Adam": ("Adam", {"lr": ADAPTIVE_LRS["Adam"]}),
    }


def _optimizer_class(label, name):
    if isinstance(name, type) and issubclass(name, optim.Optimizer):
        return name
    if name not in OPTIMIZERS:
        raise ValueError(
            f"setting {label!r}: unknown optimizer {name!r}; expected one of {sorted(OPTIMIZERS)}"
        )
    return OPTIMIZERS[name]


def _run(x, y, cls, kwargs, label, start, steps, limit):
    """One optimizer's full-batch path: rows (w, b, L), row 0 the start; stops on divergence."""
    xt, yt = Tensor(x, dtype=np.float64), Tensor(y, dtype=np.float64)
    w = nn.Parameter(np.array(float(start[0])), dtype=np.float64)
    b = nn.Parameter(np.array(float(start[1])), dtype=np.float64)
    try:
        opt = cls([w, b], **kwargs)
    except (TypeError, ValueError) as e:
        raise ValueError(f"setting {label!r}: {e}") from None
    path, diverged_at = [], None
    with np.errstate(over="ignore", invalid="ignore"):
        for t in range(steps + 1):
            L = F.mse_loss(b + w * xt, yt)
            path.append((w.item(), b.item(), L.item()))
            if not math.isfinite(path[-1][2]) or path[-1][2] > limit * path[0][2]:
                diverged_at = t
                break
            if t == steps:
                break
            opt.zero_grad()
            L.backward()
            opt.step()
    return np.array(path), diverged_at


def optimizer_paths(
    x,
    y,
    start: tuple[float, float] = START,
    steps: int = STEPS,
    settings: dict | None = None,
    tolerance: float = TOLERANCE,
) -> dict:
    """Full-batch paths of several optimizers on the MSE of y = b + w x, same start and budget.

    Parameters
    ----------
    x, y : array_like of shape (n,)
    start : (w0, b0)
    steps : int
        Updates per optimizer (the budget).
    settings : dict, optional
        {label: (optimizer, kwargs)}, the optimizer a name in :data:`OPTIMIZERS` (or a gradstep
        Optimizer class); default :func:`default_settings`.
    tolerance : float
        "At the minimum" means L <= L* (1 + tolerance), L* the least-squares loss.

    Returns
    -------
    dict
        ``hessian_eigenvalues`` (ascending), ``gd_lr_limit`` (2 / lambda_max),
        ``least_squares`` (w*, b*), ``min_loss`` (L*), ``start``, ``steps``, ``tolerance``, and
        ``settings``: per label ``optimizer``, ``hyperparameters``, ``path`` (array of shape
        (steps + 1, 3): w, b, L after each update, row 0 the start; shorter if it diverged),
        ``final_loss``, ``max_loss``, ``final_distance`` (to (w*, b*)), ``steps_to_tolerance``
        (first step within tolerance, None if never), ``settled_at`` (the step from which it
        stays within tolerance to the end, None if not within at the end), ``diverged`` and
        ``diverged_at`` (the step where L became non-finite or exceeded 1e6 times its start).
    """
    x, y = _pairs(x, y)
    if len(start) != 2 or not all(math.isfinite(float(v)) for v in start):
        raise ValueError(f"start must be two finite numbers (w0, b0), got {start!r}")
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    if not tolerance > 0:
        raise ValueError(f"tolerance must be positive, got {tolerance!r}")
    settings = default_settings(x) if settings is None else settings
    if not isinstance(settings, dict) or not settings:
        raise ValueError("settings must be a non-empty dict {label: (optimizer, kwargs)}")
    ws, bs = least_squares_line(x, y)
    min_loss = float(np.mean((bs + ws * x - y) ** 2))
    threshold = min_loss + tolerance * max(min_loss, 1e-12)
    eig = hessian_eigenvalues(x)
    out = {}
    for label, spec in settings.items():
        if not (isinstance(spec, (tuple, list)) and len(spec) == 2 and isinstance(spec[1], dict)):
            raise ValueError(f"setting {label!r} must be (optimizer, kwargs), got {spec!r}")
        cls = _optimizer_class(label, spec[0])
        path, diverged_at = _run(x, y, cls, spec[1], label, start, int(steps), DIVERGED)
        within = path[:, 2] <= threshold
        hit = np.flatnonzero(within)
        settled = None
        if diverged_at is None and within[-1]:
            outside = np.flatnonzero(~within)
            settled = int(outside[-1] + 1) if outside.size else 0
        out[label] = {
            "optimizer": cls.__name__,
            "hyperparameters": dict(spec[1]),
            "path": path,
            "final_loss": float(path[-1, 2]),
            "max_loss": float(np.max(path[:, 2])),
            "final_distance": float(np.hypot(path[-1, 0] - ws, path[-1, 1] - bs)),
            "steps_to_tolerance": int(hit[0]) if hit.size else None,
            "settled_at": settled,
            "diverged": diverged_at is not None,
            "diverged_at": diverged_at,
        }
    return {
        "hessian_eigenvalues": eig.tolist(),
        "gd_lr_limit": float(2 / eig[-1]),
        "least_squares": (ws, bs),
        "min_loss": min_loss,
        "start": (float(start[0]), float(start[1])),
        "steps": int(steps),
        "tolerance": float(tolerance),
        "settings": out,
    }


def summary(result: dict) -> dict:
    """:func:`optimizer_paths`' result without the paths (JSON-able)."""
    settings = {
        k: {kk: vv for kk, vv in v.items() if kk != "path"} for k, v in result["settings"].items()
    }
    return {**{k: v for k, v in result.items() if k != "settings"}, "settings": settings}


def learning_rate_sweep(
    x,
    y,
    optimizer: str,
    lrs,
    start: tuple[float, float] = START,
    steps: int = STEPS,
    tolerance: float = TOLERANCE,
    **kwargs,
) -> list[dict]:
    """One optimizer at each learning rate: a row per rate with ``lr``, ``steps_to_tolerance``,
    ``settled_at``, ``final_loss``, ``max_loss``, ``diverged`` (see :func:`optimizer_paths`)."""
    settings = {f"lr={lr:g}": (optimizer, {"lr": float(lr), **kwargs}) for lr in lrs}
    res = optimizer_paths(x, y, start, steps, settings, tolerance)["settings"]
    keys = ("steps_to_tolerance", "settled_at", "final_loss", "max_loss", "diverged")
    return [{"lr": float(lr), **{k: r[k] for k in keys}} for lr, r in zip(lrs, res.values())]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _window(result: dict) -> tuple[tuple[float, float], tuple[float, float]]:
    """(w, b) limits holding the start, the minimum and every path that did not diverge."""
    pts = [np.array([result["start"], result["least_squares"]])]
    pts += [r["path"][:, :2] for r in result["settings"].values() if not r["diverged"]]
    pts = np.concatenate(pts)
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    pad = np.maximum((hi - lo) * 0.08, 0.5)
    return (lo[0] - pad[0], hi[0] + pad[0]), (lo[1] - pad[1], hi[1] + pad[1])


def _describe(label: str, r: dict, tolerance: float) -> str:
    lr = r["hyperparameters"].get("lr")
    head = f"{label}, lr {lr:.3g}" if lr is not None else label
    within = f"within {tolerance:.3g}" if tolerance < 0.01 else f"within {tolerance:.0%}"
    if r["diverged"]:
        return f"{head}\ndiverged at step {r['diverged_at']}"
    if r["steps_to_tolerance"] is None:
        return f"{head}\nnot {within} of L* in the budget"
    text = f"{head}\n{within} of L* at step {r['steps_to_tolerance']}"
    if r["settled_at"] != r["steps_to_tolerance"]:
        stays = "never stays" if r["settled_at"] is None else f"stays from {r['settled_at']}"
        text += f", {stays}"
    return text


def plot_optimizer_paths(
    x, y, path, result: dict | None = None, resolution: int = 200, format=None, **kwargs
) -> dict:
    """The optimizers' paths side by side, each over the contour map of log10 L(w, b) (the
    same window for all), and L - L* against the step on a log scale in the last panel.

    ``result`` is :func:`optimizer_paths`' (computed from ``kwargs`` when not given). Returns
    :func:`summary` of it (JSON-able numbers, no paths).
    """
    x, y = _pairs(x, y)
    result = optimizer_paths(x, y, **kwargs) if result is None else result
    plt = _pyplot()
    ws, bs = result["least_squares"]
    w0, b0 = result["start"]
    (wl, wh), (bl, bh) = _window(result)
    w_grid, b_grid = np.linspace(wl, wh, resolution), np.linspace(bl, bh, resolution)
    logL = np.log10(error_surface(x, y, w_grid, b_grid))
    settings = result["settings"]
    panels = len(settings) + 1
    cols = min(3, panels)
    rows = -(-panels // cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(4.4 * cols, 3.7 * rows), squeeze=False, layout="constrained"
    )
    axes = axes.ravel()
    colors = plt.get_cmap("tab10").colors
    floor = result["min_loss"] * 1e-15  # an excess below this is rounding
    curves = axes[panels - 1]
    for ax, (label, r), c in zip(axes, settings.items(), colors[1:]):
        p = r["path"]
        cs = ax.contourf(w_grid, b_grid, logL, levels=30, cmap="viridis")
        ax.plot(p[:, 0], p[:, 1], "-", color="orange", lw=0.8)
        ax.plot(w0, b0, "ws", ms=5, label="start")
        ax.plot(ws, bs, "wx", ms=9, mew=2, label="least squares")
        ax.plot(p[-1, 0], p[-1, 1], "o", color="red", ms=4, label="last step")
        ax.set(xlim=(wl, wh), ylim=(bl, bh), xlabel="w", ylabel="b")
        ax.set_title(_describe(label, r, result["tolerance"]), fontsize=9)
        excess = np.maximum(p[:, 2] - result["min_loss"], floor)
        curves.plot(excess, color=c, lw=1.2, label=label)
    axes[0].legend(loc="lower right", fontsize=7)
    fig.colorbar(cs, ax=axes[: panels - 1].tolist(), label="log10 L", shrink=0.6)
    for ax in axes[panels:]:
        ax.set_visible(False)
    lo, hi = result["hessian_eigenvalues"]
    curves.axhline(
        result["tolerance"] * result["min_loss"],
        color="gray",
        ls="--",
        lw=1,
        label=f"{result['tolerance']:.0%} of L*",
    )
    curves.set(yscale="log", xlabel="step", ylabel="L - L*")
    curves.set_title(f"excess loss (log)\nHessian eigenvalues {lo:.3g} and {hi:.3g}", fontsize=9)
    curves.legend(fontsize=7, loc="center right")
    fig.suptitle(
        f"{result['steps']} full-batch steps from (w, b) = ({w0:g}, {b0:g}), "
        f"L* = {result['min_loss']:.4g}",
        fontsize=10,
    )
    fig.savefig(path, dpi=90, format=format)
    plt.close(fig)
    return summary(result)
