"""The words of the report's section "When the gradient is small", from one run's numbers (the
lecture after the three steps: critical points of real networks, saddles, landscapes, batch size,
momentum and adaptive learning rates)."""

from __future__ import annotations

from gradstep.lab.hw2_2 import HIDDEN
from gradstep.lab.report_content import _f, figure


def _ratio_paragraphs(m: dict) -> list[str]:
    return [
        f"The course's HW2-2 trains a 1 -> {HIDDEN} ReLU -> 1 network ({3 * HIDDEN + 1} "
        "parameters) on y = sin(3x) until the gradient is small, then asks the Hessian what "
        f"kind of point it is. gradstep did it {m['seeds']} times (Adam for 250 to 2,000 "
        "epochs, then minimising |g|^2 by Levenberg-Marquardt steps): "
        f"{m['reached']} trainings got |g| under 1e-4, the others stalled just above it, "
        f"with losses from {_f(m['loss_range'][0])} to {_f(m['loss_range'][1])}.",
        f"By the exact Hessian, {m['saddles']} of the {m['seeds']} points are saddle points "
        f"(a median of {m['negative_median']:g} negative eigenvalues), {m['flat']} flat "
        f"and {m['minima']} strict local minima; {_f(100 * m['zero_share'])}% of all "
        "eigenvalues are zero to 1e-6 of the largest (dead ReLUs and units that can trade "
        "weights without changing the function): the minimum ratio, the share of positive "
        f"eigenvalues, averages {_f(m['exact_mean'])}. The course's per-layer Gauss-Newton "
        f"matrix gives {_f(m['gauss_newton_mean'])} on the same points. That matrix is "
        "positive semi-definite by construction, so it cannot see a negative direction, and "
        f"each layer's block has rank at most the {m['points']} data points: at most "
        f"{_f(m['gauss_newton_bound'])} of it can be positive in exact arithmetic, so what a "
        "ratio counts above that is rounding error counted as positive.",
    ]


def _optimizer_note(o: dict) -> str:
    parts = []
    for label, r in o["settings"].items():
        lr = r["hyperparameters"]["lr"]
        reached = r["steps_to_tolerance"]
        parts.append(
            f"{label} (lr {lr:.3g}): " + (f"step {reached:,}" if reached is not None else "never")
        )
    return "Steps to come within 1% of the least-squares loss: " + "; ".join(parts) + "."


def _batch_rows(b: dict) -> list[list[str]]:
    return [
        [
            str(r["batch_size"]),
            str(r["updates_per_epoch"]),
            f"{1000 * r['seconds_per_epoch']:.1f}",
            f"{r['noise']['start']['relative_noise']:.2f}",
            f"{r['train_loss_mean']:.3f} ± {r['train_loss_sd']:.3f}",
            f"{r['val_loss_mean']:.3f} ± {r['val_loss_sd']:.3f}",
        ]
        for r in b["results"]
    ]


def _batch_story(b: dict) -> str:
    rs = b["results"]
    small, large = rs[0], rs[-1]
    best_val = min(rs, key=lambda r: r["val_loss_mean"])
    best_train = min(rs, key=lambda r: r["train_loss_mean"])
    return (
        f"Small against large batches ({b['model']}, {b['optimizer']}, {b['epochs']} epochs, "
        f"{len(b['seeds'])} seeds): a batch of {small['batch_size']} makes "
        f"{small['updates_per_epoch']} noisy updates per epoch (its gradient is off the full "
        f"one by {_f(small['noise']['start']['relative_noise'])} of its size at the start), the "
        f"full batch one exact update, and an epoch of the full batch took "
        f"{_f(small['seconds_per_epoch'] / large['seconds_per_epoch'])} times less time here "
        "(array work is parallel; per-update overhead is not). At equal epochs the lowest "
        f"training loss came with batch {best_train['batch_size']} and the lowest validation "
        f"loss with batch {best_val['batch_size']}: "
        + (
            "on this small, nearly linear model the smallest batch did not generalise best; "
            "its last point is a noisy one."
            if best_val is not small
            else "here the smallest batch generalised best, as the lecture says it often does."
        )
    )


def section(results: dict) -> dict:
    m, e = results["minimum_ratio"], results["saddle_escape"]
    o, b, ls = results["optimizers"], results["batch_size"], results["landscape"]
    lo, hi = o["hessian_eigenvalues"]
    return {
        "id": "small-gradient",
        "title": "When the gradient is small",
        "paragraphs": [
            "Training stalls where the gradient is small. That is a local minimum only if the "
            "loss rises in every direction; on a real network it is far more often a saddle "
            "point, and the Hessian's eigenvalues tell which.",
            *_ratio_paragraphs(m),
            f"A small gradient can also mean a long, flat valley floor. Section 1's error "
            f"surface is one: its Hessian's eigenvalues are {_f(lo)} and {_f(hi)}, so gradient "
            f"descent must keep its learning rate under 2 / {_f(hi)} = {_f(o['gd_lr_limit'])} "
            "and then crawls along the floor. Momentum keeps the speed of past steps; Adagrad, "
            "RMSProp and Adam divide each parameter's step by the size of its recent "
            "gradients, so the flat direction gets large steps and the steep one small ones.",
            _batch_story(b),
        ],
        "figures": [
            figure(
                "minimum_ratio.png",
                "HW2-2: the minimum ratio against the loss, by the exact Hessian and by the "
                "course's Gauss-Newton matrix; what the exact Hessian counts",
                "A dot is a training that reached |g| < 1e-4, a cross one that stopped above "
                "it. The exact ratio is low because most eigenvalues are zero, not positive.",
            ),
            figure(
                "saddle_escape.png",
                "A saddle point of the same network, and the way out along its negative curvature",
                f"With input and output weights zero and every hidden unit active, the network "
                f"predicts the mean and its gradient is {_f(e['grad_norm'])}; yet each unit's "
                f"pair of weights has the eigenvalue -2 Cov(x, y) = {_f(e['eigenvalue'])} "
                f"({e['n_negative']} negative eigenvalues: a saddle point).",
                f"Along the eigenvector u the loss falls from {_f(e['loss_at_saddle'])} to "
                f"{_f(e['loss_at_t_max'])} at t = 1, on both sides, as the Hessian predicts "
                "near t = 0. Gradient descent started at the saddle never moves (loss "
                f"{_f(e['gd_from_saddle_final'])} after {e['steps']} steps); one step along u "
                f"first, and it trains to {_f(e['gd_after_escape_final'])}.",
            ),
            figure(
                "landscape.png",
                "The error surface of the first lecture, for the HW2-2 network: over two of its "
                "weights, over two random directions, and over the plane of a training path",
                f"Left: the input and output weights of one hidden unit ({ls['weights'][0]} and "
                f"{ls['weights'][1]}), everything else fixed. The valley is a curve, not a "
                "point: multiply a ReLU unit's input weight by c and divide its output weight "
                "by c, and the unit computes the same function up to its bias (v relu(w x + b) = "
                "(v / c) relu(c w x + c b)), so the low points follow the curve w v = const.",
                "Middle: two random directions with each unit's weights scaled to that unit's "
                "own size (Li et al., 2018, 'Visualizing the Loss Landscape of Neural Nets'). "
                "Such a plane says little about training: "
                f"{_f(100 * ls['off_plane_random_median'])}% of the path's displacement "
                "(median) lies off it.",
                f"Right: the plane of the path's two principal directions, which holds "
                f"{_f(100 * ls['pca_captured'])}% of it, with Adam's {ls['steps']} steps drawn "
                f"on it, ending at loss {_f(ls['final_loss'])}.",
            ),
            figure(
                "optimizers.png",
                f"Gradient descent, momentum, Adagrad, RMSProp and Adam on the narrow valley, "
                f"{o['steps']:,} full-batch steps each from the same start",
                _optimizer_note(o),
                "RMSProp's average of squared gradients shrinks near the minimum faster than its "
                "steps do, until the steep direction turns unstable and it bursts out again: "
                "the lecture's reason for a learning-rate schedule.",
            ),
            figure(
                "batch_size.png",
                "Small against large batches: loss per epoch, final losses over seeds, and the "
                "noise of a mini-batch gradient",
                "The noise of a batch's gradient falls with the batch size as the spread of a "
                "sample mean does (dotted).",
            ),
        ],
        "tables": [
            {
                "caption": "Small against large batches: updates and milliseconds per epoch, "
                "the gradient's relative noise, and the final losses (MSE of the standardised "
                "temperature, mean ± sd over seeds)",
                "header": ["batch", "updates", "ms", "noise", "train", "validation"],
                "rows": _batch_rows(b),
            }
        ],
    }
