"""The lecture's remaining pictures. Each function draws one PNG and returns its numbers."""

from __future__ import annotations

import numpy as np

import gradstep as gs
from gradstep import functional as F
from gradstep import nn, optim
from gradstep.autograd import no_grad
from gradstep.data import DataLoader, TensorDataset
from gradstep.tensor import Tensor
from gradstep.train import fit


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def gd_one_parameter(path: str, w0: float = -0.3, lr: float = 0.05, steps: int = 25) -> dict:
    """L(w) with local minima, the tangent at w0, and the iterates w <- w - lr dL/dw.

    Started left of the bump, gradient descent stops in the local minimum where dL/dw = 0,
    not the global one: the lecture's "stuck at a local minimum"."""

    from gradstep.lab.one_parameter import loss as L

    ws = [w0]
    for _ in range(steps):
        w = Tensor(ws[-1], dtype=np.float64, requires_grad=True)
        L(w).backward()
        ws.append(ws[-1] - lr * float(w.grad))
    grid = np.linspace(-1.2, 2.6, 400)
    w = Tensor(w0, dtype=np.float64, requires_grad=True)
    L(w).backward()
    slope = float(w.grad)
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(grid, L(grid), label="L(w)")
    ax.plot(
        grid, L(w0) + slope * (grid - w0), "--", lw=1, label=f"tangent at w0 (dL/dw={slope:.2f})"
    )
    ax.plot(ws, [L(v) for v in ws], "o-", ms=3, color="red", label=f"w <- w - {lr} dL/dw")
    ax.set(
        ylim=(L(grid).min() - 0.5, L(grid).min() + 6),
        xlabel="w",
        ylabel="L",
        title="Gradient descent on one parameter",
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    global_min = float(grid[np.argmin(L(grid))])
    return {
        "w_final": ws[-1],
        "global_minimum": global_min,
        "stuck": abs(ws[-1] - global_min) > 0.3,
    }


def piecewise(path: str, epochs: int = 300) -> dict:
    """A piecewise-linear curve = constant + a sum of hard sigmoids; smooth sigmoids
    c sigmoid(b + w x) approximate each (what w, b, c do), pairs of ReLUs make one exactly,
    and a SigmoidSum trained on a real curve, with its parts."""
    from gradstep.lab.piecewise import CONSTANT, target_parts

    x = np.linspace(0, 1, 400)
    parts = target_parts(x)  # the lab's /piecewise panel fits the same curve
    target = CONSTANT + sum(parts)
    plt = _plt()
    fig, axes = plt.subplots(2, 2, figsize=(10, 7))
    ax = axes[0, 0]
    ax.plot(x, target, "k", lw=2, label="piecewise linear")
    ax.axhline(CONSTANT, color="gray", ls=":", label="constant")
    for p in parts:
        ax.plot(x, CONSTANT + p, "--", lw=1)
    ax.set_title("constant + sum of hard sigmoids")
    ax.legend(fontsize=7)
    ax = axes[0, 1]
    for w, b, c, style in [
        (10, -3, 1, "-"),
        (30, -9, 1, "--"),
        (10, -6, 1, ":"),
        (10, -3, 0.5, "-."),
    ]:
        ax.plot(
            x,
            c * F.sigmoid(Tensor(b + w * x, dtype=np.float64)).data,
            style,
            label=f"w={w} b={b} c={c}",
        )
    ax.set_title("c sigmoid(b + w x): w slope, b shift, c height")
    ax.legend(fontsize=7)
    ax = axes[1, 0]
    a, bb, h = 0.1, 0.3, 0.6
    r1 = h / (bb - a) * np.maximum(0, x - a)
    r2 = -h / (bb - a) * np.maximum(0, x - bb)
    ax.plot(x, r1, "--", label="ReLU 1")
    ax.plot(x, r2, "--", label="ReLU 2")
    ax.plot(x, r1 + r2, "k", lw=2, label="sum = one hard sigmoid")
    ax.set_title("two ReLUs make a hard sigmoid")
    ax.legend(fontsize=7)
    # a SigmoidSum trained on a real curve
    gs.manual_seed(0)
    xs = np.linspace(-3, 3, 256)[:, None]
    ys = np.sin(2 * xs) + 0.3 * xs
    with gs.default_dtype(np.float64):
        model = nn.SigmoidSum(1, 6)
        data = TensorDataset(xs, ys)
    opt = optim.Adam(model.parameters(), lr=0.05)
    fit(model, nn.MSELoss(), opt, DataLoader(data, 64, shuffle=True), epochs=epochs, verbose=0)
    with no_grad():
        h = model[1](model[0](Tensor(xs, dtype=np.float64))).data
        pred = model(Tensor(xs, dtype=np.float64)).data
    ax = axes[1, 1]
    ax.plot(xs, ys, "k", lw=2, label="sin(2x) + 0.3x")
    ax.plot(xs, pred, "r", label="SigmoidSum(1, 6)")
    c, b0 = model[2].weight.data[0], model[2].bias.data[0]
    for i in range(h.shape[1]):
        ax.plot(xs, c[i] * h[:, i], ":", lw=1)
    ax.set_title(f"trained: b + sum_i c_i sigmoid(b_i + w_i x), b = {b0:.2f}")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return {"fit_mse": float(np.mean((pred - ys) ** 2))}


def overfitting(path: str, epochs: int = 2000, sizes=(2, 16, 128, 512)) -> dict:
    """Train and validation loss per epoch for models of growing size on a dozen noisy points
    (one full-batch update per epoch): the point where the validation loss turns up while
    the training loss keeps falling is overfitting. (With 40 points the larger models barely
    overfit within a few hundred epochs, and the figure showed no turn.)"""
    rng = np.random.default_rng(0)
    n_train = 12
    x = rng.uniform(-3, 3, (n_train, 1))
    y = np.sin(x) + 0.3 * rng.standard_normal((n_train, 1))
    xv = rng.uniform(-3, 3, (400, 1))
    yv = np.sin(xv) + 0.3 * rng.standard_normal((400, 1))
    plt = _plt()
    fig, axes = plt.subplots(1, len(sizes), figsize=(4 * len(sizes), 3.5), sharey=True)
    out = {}
    for ax, n in zip(axes, sizes):
        gs.manual_seed(0)
        model = nn.mlp(1, [n, n], 1)
        h = fit(
            model,
            nn.MSELoss(),
            optim.Adam(model.parameters(), lr=1e-2),
            DataLoader(TensorDataset(x, y), n_train, shuffle=True),
            DataLoader(TensorDataset(xv, yv), 400),
            epochs=epochs,
            verbose=0,
        ).history
        turn = int(np.argmin(h["val_loss"]))
        out[n] = {
            "train": h["loss"][-1],
            "val": h["val_loss"][-1],
            "best_epoch": turn + 1,
            "best_val": h["val_loss"][turn],
        }
        ax.plot(h["epoch"], h["loss"], label="train")
        ax.plot(h["epoch"], h["val_loss"], label="validation")
        ax.axvline(turn + 1, color="gray", ls=":")
        ax.set(title=f"2 layers of {n}", xlabel="epoch", yscale="log")
        ax.legend(fontsize=7)
    axes[0].set_ylabel("MSE")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return out


def _train(model, loss_fn, X, y, epochs: int, lr: float = 1e-2):
    """Adam on shuffled mini-batches of 64: the one training recipe the figures share."""
    fit(
        model,
        loss_fn,
        optim.Adam(model.parameters(), lr=lr),
        DataLoader(TensorDataset(X, y), 64, shuffle=True),
        epochs=epochs,
        verbose=0,
    )
    return model


def three_tasks(path: str, epochs: int = 60) -> dict:
    """Regression (a number), classification (one of ten digits), structured learning (an
    8x8 image): the same three steps, different outputs and losses."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    X, labels = digits.data / 16.0, digits.target
    rng = np.random.default_rng(0)
    perm = rng.permutation(len(X))
    tr, te = perm[:1400], perm[1400:]
    plt = _plt()
    fig = plt.figure(figsize=(12, 4))
    # regression: a number (the ink in the lower half of the image, from the upper half)
    gs.manual_seed(0)
    target = X[:, 32:].mean(axis=1, keepdims=True) * 10
    reg = _train(nn.mlp(32, [32], 1), nn.MSELoss(), X[tr, :32], target[tr], epochs)
    with no_grad():
        pr = reg(X[te, :32]).data
    ax = fig.add_subplot(1, 3, 1)
    ax.scatter(target[te], pr, s=4)
    ax.set(
        title="regression: ink in the lower half\nfrom the upper half",
        xlabel="true",
        ylabel="predicted",
    )
    # classification
    gs.manual_seed(0)
    clf = _train(nn.mlp(64, [64], 10), nn.CrossEntropyLoss(), X[tr], labels[tr], epochs)
    with no_grad():
        predicted = clf(X[te]).data.argmax(axis=1)
    acc = float(np.mean(predicted == labels[te]))
    ax = fig.add_subplot(1, 3, 2)
    ax.imshow(X[te[0]].reshape(8, 8), cmap="gray_r")
    ax.set(
        title=f"classification: one of 10 (this one: {predicted[0]})\n"
        f"accuracy {acc:.1%} on unseen digits"
    )
    ax.axis("off")
    # structured output: class -> 8x8 image
    gs.manual_seed(0)
    gen = nn.Sequential(nn.Linear(10, 64), nn.ReLU(), nn.Linear(64, 64), nn.Sigmoid())
    _train(gen, nn.MSELoss(), np.eye(10)[labels][tr], X[tr], epochs)
    with no_grad():
        images = gen(np.eye(10)).data.reshape(10, 8, 8)
    grid = np.concatenate(
        [np.concatenate(list(images[:5]), axis=1), np.concatenate(list(images[5:]), axis=1)], axis=0
    )
    ax = fig.add_subplot(1, 3, 3)
    ax.imshow(grid, cmap="gray_r")
    ax.set(title="structured output: digit class -> 8x8 image")
    ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    mean_images = np.stack([X[labels == k].mean(axis=0) for k in range(10)]).reshape(10, 8, 8)
    return {
        "regression_mae": float(np.mean(np.abs(pr - target[te]))),
        "accuracy": acc,
        "image_error_vs_class_mean": float(np.mean(np.abs(images - mean_images))),
    }


def network_picture(explanation: dict, model, path: str) -> None:
    """The network with the explained weight highlighted and its two passes' values."""
    plt = _plt()
    widths = [model[0].in_features] + [m.out_features for m in model if isinstance(m, nn.Linear)]
    fig, ax = plt.subplots(figsize=(7, 4))
    pos = {}
    for layer, n in enumerate(widths):
        for i in range(n):
            pos[(layer, i)] = (layer, (n - 1) / 2 - i)
            ax.add_patch(plt.Circle(pos[(layer, i)], 0.15, fill=False))
    for layer in range(len(widths) - 1):
        for j in range(widths[layer + 1]):
            for i in range(widths[layer]):
                (x0, y0), (x1, y1) = pos[(layer, i)], pos[(layer + 1, j)]
                ax.plot([x0, x1], [y0, y1], color="lightgray", lw=0.8, zorder=0)
    name = explanation["parameter"]
    layer = [n for n, p in model.named_parameters()].index(name) // 2
    j, i = explanation["index"][0], explanation["index"][-1]
    (x0, y0), (x1, y1) = pos[(layer, i)], pos[(layer + 1, j)]
    ax.plot([x0, x1], [y0, y1], color="red", lw=2.5)
    f, b = explanation["forward"], explanation["backward"]
    ax.annotate(
        f"forward dz/dw = {f[0]:.3g}\n(sample 0: the input a)",
        (x0, y0),
        (x0 - 0.1, y0 + 0.6),
        fontsize=8,
        color="blue",
    )
    ax.annotate(
        f"backward dC/dz = {b[0]:.3g}\n(sample 0)",
        (x1, y1),
        (x1 + 0.2, y1 + 0.6),
        fontsize=8,
        color="green",
    )
    ax.set_title(
        f"dC/dw for {name}{list(explanation['index'])}: sum of products "
        f"{explanation['product']:.6g} = engine {explanation['engine']:.6g}",
        fontsize=9,
    )
    ax.set_aspect("equal")
    ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
