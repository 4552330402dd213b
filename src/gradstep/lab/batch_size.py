"""Small against large batches on one model, measured as the lecture describes them.

One small ReLU network on the standardised Seattle windows is trained with several batch sizes
from the same initial weights for the same number of epochs, and the study reports how noisy a
mini-batch gradient is (at the same weights for every batch size), how many updates and how much
time one epoch takes, and the final training and validation losses over several seeds.
"""

from __future__ import annotations

import time

import numpy as np

import gradstep as gs
from gradstep import nn, optim
from gradstep.autograd import no_grad
from gradstep.tensor import Tensor


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _flat_grad(model) -> np.ndarray:
    return np.concatenate([p._grad.ravel() for p in model.parameters()])


def _gradient(model, loss_fn, X, y) -> np.ndarray:
    model.zero_grad()
    loss_fn(model(X), y).backward()
    return _flat_grad(model)


def gradient_noise(model, loss_fn, X, y, batch_size: int, order: np.ndarray) -> dict:
    """How far mini-batch gradients stray from the full-batch one at the model's weights.

    The batches are the consecutive ``batch_size`` slices of ``order`` (one epoch; a smaller
    last batch is dropped). Returns ``relative_noise``, sqrt(mean |g_B - g|^2) / |g|, and
    ``cosine``, the mean cosine between g_B and g (0 and 1 for the full batch).
    """
    n = X.shape[0]
    _check_positive_int("batch_size", batch_size)
    if len(order) != n:
        raise ValueError(f"order must be a permutation of the {n} examples, got {len(order)}")
    g = _gradient(model, loss_fn, X, y)
    if not np.any(g):
        raise ValueError("the full-batch gradient is zero here: its relative noise is undefined")
    if batch_size >= n:  # the full batch is the full gradient (up to the order of a sum)
        model.zero_grad()
        return {"relative_noise": 0.0, "cosine": 1.0}
    dev, cos = [], []
    for k in range(max(1, n // batch_size)):
        idx = order[k * batch_size : (k + 1) * batch_size]
        gb = _gradient(model, loss_fn, X[idx], y[idx])
        dev.append(np.sum((gb - g) ** 2))
        cos.append(gb @ g / (np.linalg.norm(gb) * np.linalg.norm(g)))
    model.zero_grad()
    return {
        "relative_noise": float(np.sqrt(np.mean(dev)) / np.linalg.norm(g)),
        "cosine": float(np.mean(cos)),
    }


def _check_positive_int(name, value, high=None):
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, np.integer))
        or value < 1
        or (high is not None and value > high)
    ):
        span = f"from 1 to {high}" if high is not None else "positive"
        raise ValueError(f"{name} must be an integer {span}, got {value!r}")


def _batch_sizes(n, batch_sizes):
    sizes = []
    for B in batch_sizes:
        B = n if B is None else B
        if isinstance(B, bool) or not isinstance(B, (int, np.integer)) or not 1 <= B <= n:
            raise ValueError(
                f"batch_sizes: {B!r} is not a batch size from 1 to {n} (None means all {n})"
            )
        sizes.append(int(B))
    if not sizes or len(set(sizes)) != len(sizes):
        raise ValueError(f"batch_sizes must be non-empty and distinct, got {batch_sizes!r}")
    return sizes


def batch_size_study(
    batch_sizes=(16, 128, None),
    seeds=None,
    epochs: int | None = None,
    days: int = 7,
    hidden: int = 32,
    lr: float = 0.01,
    momentum: float = 0.9,
    quick: bool = False,
) -> dict:
    """Small against large batches on one model: the standardised Seattle windows of ``days``
    days (train 2012-2014, validation 2015), a days -> hidden ReLU -> 1 network, MSE, SGD with
    momentum, float64; every batch size of a seed starts from the same weights and trains for
    the same number of epochs (so a small batch makes more updates).

    Parameters
    ----------
    batch_sizes : sequence of int or None
        None means the whole training set (full-batch gradient descent).
    seeds : sequence of int, default range(5) (range(3) when quick)
    epochs : int, default 100 (30 when quick)

    Returns
    -------
    dict
        The setup (``model``, ``optimizer``, ``n_train``, ``n_val``, ``epochs``, ``seeds``) and
        ``results``, one dict per batch size: ``batch_size``, ``updates_per_epoch``,
        ``seconds_per_epoch`` and ``seconds_per_update`` (training only, mean over seeds),
        ``train_loss`` / ``val_loss`` (final, per seed, MSE in standardised units), their
        ``_mean`` and ``_sd``, ``best_val_loss`` (lowest validation loss over the epochs, per
        seed), ``train_curve`` / ``val_curve`` (mean over seeds, epoch 0 = initial weights),
        and ``noise``: :func:`gradient_noise` (mean over seeds) at ``"start"`` (the initial
        weights) and at ``"end"`` (the weights the largest batch size ended at).
    """
    from gradstep.data import DataLoader, TensorDataset
    from gradstep.lab import experiments

    seeds = list(range(3 if quick else 5) if seeds is None else seeds)
    epochs = (30 if quick else 100) if epochs is None else epochs
    _check_positive_int("days", days, 56)
    _check_positive_int("hidden", hidden)
    _check_positive_int("epochs", epochs)
    if not seeds or any(
        isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 0 for s in seeds
    ):
        raise ValueError(f"seeds must be non-empty non-negative integers, got {seeds!r}")
    data = experiments.standardised_windows(days)
    n = len(data.y_train)
    sizes = _batch_sizes(n, batch_sizes)
    Xtr, ytr = data.inputs(data.X_train), data.targets(data.y_train)
    Xva, yva = data.inputs(data.X_test), data.targets(data.y_test)
    with gs.default_dtype(np.float64):
        dataset = TensorDataset(Xtr, ytr)
        Xtr_t, ytr_t, Xva_t, yva_t = (Tensor(a) for a in (Xtr, ytr, Xva, yva))
    loss_fn = nn.MSELoss()

    def build(seed):
        gs.manual_seed(seed)
        with gs.default_dtype(np.float64):
            return nn.Sequential(nn.Linear(days, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def losses(model):
        with no_grad():
            return (loss_fn(model(Xtr_t), ytr_t).item(), loss_fn(model(Xva_t), yva_t).item())

    runs = {B: [] for B in sizes}
    for seed in seeds:
        finals = {}
        for B in sizes:
            model = build(seed)  # the same initial weights for every batch size of this seed
            opt = optim.SGD(model.parameters(), lr=lr, momentum=momentum)
            loader = DataLoader(dataset, B, shuffle=True)  # shuffled by the seeded generator
            curve, seconds = [losses(model)], 0.0
            for _ in range(epochs):
                t0 = time.perf_counter()
                for xb, yb in loader:
                    opt.zero_grad()
                    loss_fn(model(xb), yb).backward()
                    opt.step()
                seconds += time.perf_counter() - t0
                curve.append(losses(model))
            finals[B] = model
            runs[B].append({"curve": np.array(curve), "seconds": seconds, "updates": len(loader)})
        order = np.random.default_rng(seed).permutation(n)
        start, end = build(seed), finals[max(sizes)]
        for B in sizes:
            runs[B][-1]["noise"] = {
                "start": gradient_noise(start, loss_fn, Xtr_t, ytr_t, B, order),
                "end": gradient_noise(end, loss_fn, Xtr_t, ytr_t, B, order),
            }

    results = []
    for B in sizes:
        rs = runs[B]
        curves = np.stack([r["curve"] for r in rs])  # (seeds, epochs + 1, train/val)
        train, val = curves[:, -1, 0], curves[:, -1, 1]
        secs = np.mean([r["seconds"] for r in rs]) / epochs
        noise = {
            at: {
                k: float(np.mean([r["noise"][at][k] for r in rs]))
                for k in ("relative_noise", "cosine")
            }
            for at in ("start", "end")
        }
        results.append(
            {
                "batch_size": B,
                "updates_per_epoch": rs[0]["updates"],
                "seconds_per_epoch": float(secs),
                "seconds_per_update": float(secs / rs[0]["updates"]),
                "train_loss": train.tolist(),
                "val_loss": val.tolist(),
                "train_loss_mean": float(train.mean()),
                "train_loss_sd": float(train.std(ddof=1)) if len(seeds) > 1 else 0.0,
                "val_loss_mean": float(val.mean()),
                "val_loss_sd": float(val.std(ddof=1)) if len(seeds) > 1 else 0.0,
                "best_val_loss": curves[:, :, 1].min(axis=1).tolist(),
                "train_curve": curves[:, :, 0].mean(axis=0).tolist(),
                "val_curve": curves[:, :, 1].mean(axis=0).tolist(),
                "noise": noise,
            }
        )
    return {
        "model": f"{days} -> {hidden} ReLU -> 1",
        "data": f"Seattle, {days}-day windows, standardised; train 2012-2014, validation 2015",
        "loss": "MSE of the standardised temperature",
        "optimizer": f"SGD(lr={lr:g}, momentum={momentum:g})",
        "n_train": n,
        "n_val": int(len(yva)),
        "epochs": int(epochs),
        "seeds": seeds,
        "y_std": float(data.y_std),
        "results": results,
    }


def plot_batch_size_study(study: dict, path, format=None) -> dict:
    """Validation and training loss per epoch (mean over seeds), the final losses per batch size
    (mean and sd), and the mini-batch gradient noise against the batch size; returns a summary
    (the study without its curves)."""
    plt = _pyplot()
    rs = study["results"]
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    colors = plt.get_cmap("tab10").colors
    for r, c in zip(rs, colors):
        label = f"batch {r['batch_size']} ({r['updates_per_epoch']} per epoch)"
        axes[0].plot(r["val_curve"], color=c, lw=1.5, label=label + ", validation")
        axes[0].plot(r["train_curve"], color=c, lw=1, ls="--", label="training")
    axes[0].set(
        xlabel="epoch",
        ylabel="MSE (standardised)",
        yscale="log",
        title=f"{study['model']}, mean of {len(study['seeds'])} seeds",
    )
    axes[0].legend(fontsize=6)
    idx = np.arange(len(rs))
    names = [
        f"{r['batch_size']}\n{r['updates_per_epoch']} update"
        f"{'s' if r['updates_per_epoch'] != 1 else ''}\n"
        f"{r['seconds_per_epoch'] * 1e3:.2g} ms/epoch"
        for r in rs
    ]
    for k, (key, label) in enumerate((("train", "training"), ("val", "validation (2015)"))):
        axes[1].bar(
            idx + (k - 0.5) * 0.4,
            [r[f"{key}_loss_mean"] for r in rs],
            0.4,
            yerr=[r[f"{key}_loss_sd"] for r in rs],
            label=label,
            capsize=3,
        )
    tops = [r[f"{k}_loss_mean"] + r[f"{k}_loss_sd"] for r in rs for k in ("train", "val")]
    bottoms = [r[f"{k}_loss_mean"] - r[f"{k}_loss_sd"] for r in rs for k in ("train", "val")]
    axes[1].set_ylim(0.9 * min(bottoms), max(tops) + 0.25 * (max(tops) - 0.9 * min(bottoms)))
    axes[1].set_xticks(idx, names, fontsize=7)
    axes[1].set(
        xlabel="batch size", ylabel="final MSE", title=f"After {study['epochs']} epochs (mean, sd)"
    )
    axes[1].legend(fontsize=7, loc="upper left")
    n = study["n_train"]
    noisy = [r for r in rs if r["batch_size"] < n]
    sizes = np.array([r["batch_size"] for r in noisy], dtype=np.float64)
    for at, marker, label in (
        ("start", "o-", "at the initial weights"),
        ("end", "s-", "where the largest batch ended"),
    ):
        noise = np.array([r["noise"][at]["relative_noise"] for r in noisy])
        (line,) = axes[2].plot(sizes, noise, marker, label=label)
        if len(sizes):  # sampling without replacement: sd of a batch mean ~ sqrt((n-B)/(B(n-1)))
            shape = np.sqrt((n - sizes) / (sizes * (n - 1)))
            axes[2].plot(sizes, noise[0] * shape / shape[0], ":", color=line.get_color())
    axes[2].plot([], [], "k:", label="~ sqrt((n - B) / (B (n - 1)))")
    axes[2].set(
        xscale="log",
        yscale="log",
        xlabel="batch size B",
        ylabel="|g_B - g| / |g| (RMS over one epoch)",
        title="Noise of a mini-batch gradient",
    )
    axes[2].set_xticks(sizes, [str(int(b)) for b in sizes])
    axes[2].minorticks_off()
    axes[2].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90, format=format)
    plt.close(fig)
    keep = ("train_curve", "val_curve")
    return {
        **{k: v for k, v in study.items() if k != "results"},
        "results": [{k: v for k, v in r.items() if k not in keep} for r in rs],
    }
