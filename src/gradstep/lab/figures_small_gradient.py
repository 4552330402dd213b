"""The pictures of "When the gradient is small" (the lecture after the three steps): the HW2-2
minimum ratio over many trainings, a saddle point escaped, a 2-D landscape with the training
path, and the optimizers on the narrow valley. Each function draws one PNG and returns its
numbers as plain lists and floats (they go into results.json)."""

from __future__ import annotations

import numpy as np

from gradstep.lab import hw2_2
from gradstep.lab.figures import _plt
from gradstep.lab.hw2_2 import HIDDEN


def minimum_ratio(path: str, seeds: int = 20, max_steps: int = 15, n: int = 100) -> dict:
    """HW2-2: the minimum ratio against the loss for ``seeds`` trainings of the 1 -> 128 ReLU
    -> 1 network, by the exact Hessian and by the course's Gauss-Newton matrix."""
    rows = hw2_2.minimum_ratio_study(seeds=range(seeds), n=n, max_steps=max_steps)
    loss = np.array([r["loss"] for r in rows])
    exact = np.array([r["minimum_ratio"] for r in rows])
    gn = np.array([r["minimum_ratio_gauss_newton"] for r in rows])
    reached = np.array([r["reached"] for r in rows])
    plt = _plt()
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(10, 4))
    for mask, marker, label in ((reached, "o", "|g| < 1e-4"), (~reached, "x", "|g| >= 1e-4")):
        if mask.any():
            ax.scatter(loss[mask], exact[mask], marker=marker, color="C0", label=f"exact, {label}")
            ax.scatter(
                loss[mask], gn[mask], marker=marker, color="C1", label=f"Gauss-Newton, {label}"
            )
    ax.set(
        xscale="log",
        ylim=(0, 1),
        xlabel="training loss (MSE)",
        ylabel="minimum ratio (share of positive eigenvalues)",
        title=f"HW2-2, {len(rows)} trainings of 1-{hw2_2.HIDDEN}-1 ReLU",
    )
    ax.xaxis.set_minor_formatter(plt.NullFormatter())  # log ticks: decades only
    ax.legend(fontsize=7)
    counts = np.array([[r["n_positive"], r["n_negative"], r["n_zero"]] for r in rows])
    order = np.argsort(loss)
    bottom = np.zeros(len(rows))
    for i, (label, color) in enumerate(
        (("positive", "C2"), ("negative", "C3"), ("zero (|lambda| <= 1e-6 max)", "0.7"))
    ):
        bx.bar(range(len(rows)), counts[order, i], bottom=bottom, color=color, label=label)
        bottom += counts[order, i]
    bx.set(xlabel="training (sorted by loss)", ylabel="eigenvalues of the exact Hessian")
    bx.set_title("What the exact Hessian counts", fontsize=10)
    bx.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return {
        "rows": rows,
        "seeds": len(rows),
        "reached": int(reached.sum()),
        "exact_mean": float(exact.mean()),
        "gauss_newton_mean": float(gn.mean()),
        "saddles": sum(r["verdict"] == "saddle point" for r in rows),
        "minima": sum(r["verdict"] == "local minimum" for r in rows),
        "flat": sum(r["verdict"] == "flat (undetermined)" for r in rows),
        "negative_median": float(np.median(counts[:, 1])),
        "zero_share": float(counts[:, 2].sum() / counts.sum()),
        "loss_range": [float(loss.min()), float(loss.max())],
        "seconds": float(sum(r["seconds"] for r in rows)),
        "points": n,
        # each layer's (2/N) J^T J has rank <= N: the most positives the course's ratio can have
        "gauss_newton_bound": (min(n, 2 * HIDDEN) + min(n, HIDDEN + 1)) / (3 * HIDDEN + 1),
    }


def saddle_escape(path: str, steps: int = 300) -> dict:
    """The HW2-2 network at a saddle point: the loss along +/- t u (u the most negative
    eigenvector) against the Hessian's prediction, and gradient descent from the saddle and
    from a step along u."""
    e = hw2_2.saddle_escape(steps=steps)
    t = e["t"]
    plt = _plt()
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(10, 4))
    ts = np.concatenate([-t[::-1], t[1:]])
    real = np.concatenate([e["loss_minus"][::-1], e["loss_plus"][1:]])
    model = np.concatenate([e["model_minus"][::-1], e["model_plus"][1:]])
    ax.plot(ts, real, label="the loss along theta + t u")
    ax.plot(ts, model, "--", label=f"L0 + lambda t^2 / 2, lambda = {e['eigenvalue']:.3f}")
    ax.axvline(0, color="0.6", lw=0.8)
    ax.set(xlabel="t", ylabel="loss (MSE)", title="A saddle point: the loss falls along u")
    ax.legend(fontsize=8)
    bx.plot(e["gd_from_saddle"], label="gradient descent from the saddle (g = 0: it stays)")
    bx.plot(e["gd_after_escape"], label=f"from theta + {t[-1]:g} u")
    bx.set(yscale="log", xlabel="step", ylabel="loss", title=f"Escaped (learning rate {e['lr']})")
    bx.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    keep = ("verdict", "grad_norm", "n_positive", "n_negative", "n_zero", "eigenvalue")
    out = {k: e[k] for k in keep}
    out.update(
        minimum_ratio=e["minimum_ratio"],
        minimum_ratio_gauss_newton=e["minimum_ratio_gauss_newton"],
        covariance=e["covariance"],
        t=t.tolist(),
        loss_plus=e["loss_plus"].tolist(),
        loss_minus=e["loss_minus"].tolist(),
        loss_at_saddle=float(e["loss_plus"][0]),
        loss_at_t_max=float(e["loss_plus"][-1]),
        gd_from_saddle_final=float(e["gd_from_saddle"][-1]),
        gd_after_escape_final=float(e["gd_after_escape"][-1]),
        steps=steps,
        lr=e["lr"],
    )
    return out


def landscape(path: str, steps: int = 500, resolution: int = 41) -> dict:
    """The lecture's error surface generalised to the HW2-2 network: the loss over two of its
    weights, over two random filter-normalised directions (Li et al., 2018), and over the plane
    that holds most of an Adam training path, with the path drawn on it."""
    from gradstep import nn, optim
    from gradstep.lab import landscape as ls

    X, y = hw2_2.data()
    loss_fn = nn.MSELoss()
    model = hw2_2.network(0)
    thetas = ls.training_path(
        model, loss_fn, X, y, optim.Adam(model.parameters(), lr=1e-2), steps, every=5
    )
    unit = int(np.argmax(np.abs(model[2].weight.data[0])))  # the unit the output leans on most
    first, second = f"0.weight[{unit}, 0]", f"2.weight[0, {unit}]"
    weights = ls.weight_landscape(model, loss_fn, X, y, first, second, 1.0, resolution)
    d1, d2 = ls.filter_normalized_directions(model, seed=0)
    grid = np.linspace(-1.0, 1.0, resolution)
    rand = ls.direction_landscape(model, loss_fn, X, y, d1, d2, grid, grid)
    _, _, off_random = ls.project_path(thetas, thetas[-1], d1, d2)
    p1, p2, captured = ls.pca_directions(thetas)
    a, b, off_pca = ls.project_path(thetas, thetas[-1], p1, p2)
    pad = 0.1 * max(np.ptp(a), np.ptp(b))
    alphas = np.linspace(a.min() - pad, a.max() + pad, resolution)
    betas = np.linspace(b.min() - pad, b.max() + pad, resolution)
    pca = ls.direction_landscape(model, loss_fn, X, y, p1, p2, alphas, betas)
    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    panels = (
        (weights["first_grid"], weights["second_grid"], weights["loss"], first, second),
        (grid, grid, rand["loss"], "alpha (random filter-normalised d1)", "beta (d2)"),
        (alphas, betas, pca["loss"], "first PCA direction of the path", "second"),
    )
    titles = ("Two weights", "Two random directions (Li et al.)", "The plane of the path")
    for ax, (gx, gy, loss, xl, yl), title in zip(axes, panels, titles):
        cs = ax.contourf(gx, gy, np.log10(loss), levels=30, cmap="viridis")
        fig.colorbar(cs, ax=ax, label="log10 loss")
        ax.set(xlabel=xl, ylabel=yl, title=title)
    axes[0].plot(*weights["center"], "rx", ms=8, mew=2)
    axes[1].plot(0, 0, "rx", ms=8, mew=2)
    axes[2].plot(a, b, "-", color="orange", lw=1.2, label=f"Adam, {steps} steps")
    axes[2].plot(a[0], b[0], "ws", ms=5, label="start")
    axes[2].plot(0, 0, "rx", ms=8, mew=2, label="end")
    axes[2].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return {
        "weights": [first, second],
        "steps": steps,
        "final_loss": float(weights["center_loss"]),
        "batched": bool(weights["batched"] and rand["batched"] and pca["batched"]),
        "off_plane_random_median": float(np.median(off_random[:-1])),
        "pca_captured": captured,
        "off_plane_pca_start": float(off_pca[0]),
        "random_range": [float(rand["loss"].min()), float(rand["loss"].max())],
        "weights_range": [float(weights["loss"].min()), float(weights["loss"].max())],
    }
