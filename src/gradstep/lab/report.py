"""`gradstep lecture`: run the lab on bundled data and write a self-contained report.

Everything is written into a temporary folder beside the destination and moved into place only
when complete, so an interrupted run never leaves a half-written report.
"""

from __future__ import annotations

import base64
import json
import os
import time

import numpy as np


def _plot_learning_curves(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for r in rows:
        ax.plot(range(1, len(r["loss_curve"]) + 1), r["loss_curve"], label=r["name"])
    ax.set(
        xlabel="epoch", ylabel="training MAE (deg C)", yscale="log", title="Training loss per epoch"
    )
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _plot_table(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4))
    idx = np.arange(len(rows))
    ax.bar(idx - 0.2, [r["train_mae"] for r in rows], 0.4, label="train (L)")
    ax.bar(idx + 0.2, [r["test_mae"] for r in rows], 0.4, label="test 2015 (L')")
    ax.set_xticks(idx, [r["name"] for r in rows], rotation=35, ha="right", fontsize=7)
    ax.set(ylabel="MAE (deg C)", title="Tomorrow's max temperature in Seattle")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def run_lecture(
    out_dir: str, quick: bool = False, progress: bool = True, overwrite: bool = False
) -> dict:
    """Run the lab and the experiment table; write report.html/.md, PNGs and results.json.

    ``out_dir`` follows :mod:`gradstep.paths`: an existing folder is replaced only with
    ``overwrite`` and only if it is a gradstep report folder."""
    from gradstep.paths import output_folder

    with output_folder(out_dir, kind="report", overwrite=overwrite) as tmp:
        return _run_lecture_into(tmp, quick, progress)


def _run_lecture_into(tmp: str, quick: bool, progress: bool) -> dict:
    from tqdm.auto import tqdm

    from gradstep.lab import critical, experiments, surface
    from gradstep.lab.backprop import explain_gradient, format_explanation

    started = time.perf_counter()
    results: dict = {"quick": quick}
    figures: list[tuple[str, str]] = []

    from gradstep.lab import figures as figs

    def figure(name, caption, key, fn, **kwargs):
        results[key] = fn(os.path.join(tmp, name), **kwargs)
        figures.append((name, caption))

    # 1. error surface in raw units (deg C): the Hessian's eigenvalues are 0.35 and 570, a
    # narrow valley, so GD is stable only below lr = 2 / 570 = 0.0035 and then crawls in b.
    series, _ = experiments.load_series()
    x, y = series[:-1][:365], series[1:][:365]
    results["surface"] = surface.plot_error_surface(
        x,
        y,
        [0.0003, 0.0033, 0.0036],
        os.path.join(tmp, "error_surface.png"),
        w0=-1.0,
        b0=-5.0,
        steps=100 if quick else 300,
        resolution=120 if quick else 300,
    )
    figures.append(
        (
            "error_surface.png",
            "Error surface of y = b + w x (2012: tomorrow's "
            "max temperature from today's, deg C) with gradient descent at a "
            "too-small, the largest stable and a too-large learning rate: a narrow "
            "valley in which b barely moves",
        )
    )
    figure(
        "gd_one_parameter.png",
        "Gradient descent on one parameter: the tangent, the "
        "updates, and getting stuck where dL/dw = 0",
        "gd_one_parameter",
        figs.gd_one_parameter,
    )
    figure(
        "piecewise.png",
        "Piecewise linear = constant + sum of (hard) sigmoids; what w, "
        "b, c do; two ReLUs make a hard sigmoid; a trained SigmoidSum and its parts",
        "piecewise",
        figs.piecewise,
        epochs=100 if quick else 400,
    )
    figure(
        "overfitting.png",
        "Training and validation loss of growing models on 40 noisy "
        "points: the dotted line is where the validation loss turns up",
        "overfitting",
        figs.overfitting,
        epochs=60 if quick else 200,
        sizes=(2, 32, 256) if quick else (2, 16, 128, 512),
    )
    figure(
        "three_tasks.png",
        "Regression, classification and structured output (an image) on scikit-learn's digits",
        "three_tasks",
        figs.three_tasks,
        epochs=20 if quick else 80,
    )

    # 2. critical points
    results["critical_points"] = {
        name: {"kind": r["kind"], "eigenvalues": r["eigenvalues"].tolist()}
        for name, f in critical.EXAMPLES.items()
        for r in [critical.classify_critical_point(f, [0.0, 0.0])]
    }

    # 3. backpropagation explained, on a small network
    import gradstep as gs
    from gradstep import nn

    gs.manual_seed(0)
    with gs.default_dtype(np.float64):
        net = nn.Sequential(
            nn.Linear(2, 3), nn.Sigmoid(), nn.Linear(3, 2), nn.Sigmoid(), nn.Linear(2, 1)
        )
    bx = np.random.default_rng(0).standard_normal((4, 2))
    by = np.random.default_rng(1).standard_normal(4)
    e = explain_gradient(net, bx, by, "0.weight", (1, 0))
    results["backprop"] = {
        "text": format_explanation(e),
        "product": e["product"],
        "engine": e["engine"],
    }
    figs.network_picture(e, net, os.path.join(tmp, "backprop.png"))
    figures.append(
        (
            "backprop.png",
            "One weight's gradient = forward-pass term x "
            "backward-pass term, equal to the engine's .grad",
        )
    )

    # 4. the experiment table
    grid = experiments.experiments(quick)
    epochs = 40 if quick else 300
    rows = []
    for exp in tqdm(grid, desc="experiments", disable=not progress):
        rows.append(experiments.run_experiment(exp, epochs))
    results["experiments"] = rows
    _plot_table(rows, os.path.join(tmp, "experiments.png"))
    _plot_learning_curves(rows, os.path.join(tmp, "learning_curves.png"))
    figures += [
        ("experiments.png", "Train and test MAE of every model"),
        ("learning_curves.png", "Training loss per epoch"),
    ]
    results["table"] = experiments.format_table(rows)
    results["seconds"] = time.perf_counter() - started

    _write_reports(tmp, results, figures)
    return results


def _write_reports(folder, results, figures):
    crit = "\n".join(
        f"- {k}: {v['kind']} (eigenvalues {np.round(v['eigenvalues'], 6).tolist()})"
        for k, v in results["critical_points"].items()
    )
    s = results["surface"]
    md = [
        "# gradstep lecture report",
        "",
        "## The experiment table",
        "Tomorrow's maximum temperature in Seattle (deg C) from the previous k days; trained on "
        "2012-2014, tested on 2015. MAE on training data (L) and on 2015 (L'). The lecture's "
        "numbers are YouTube views in thousands: a different series, shown only to compare the "
        "pattern.",
        "",
        "```",
        results["table"],
        "```",
        "",
        "## Error surface and gradient descent",
        f"Grid minimum {np.round(s['grid_min'], 4).tolist()}, least squares "
        f"{np.round(s['least_squares'], 4).tolist()}; final (w, b, L) per learning rate "
        f"{s['learning_rates']}: {np.round(s['final'], 4).tolist()}",
        "",
        "## Critical points",
        crit,
        "",
        "## Backpropagation, one weight",
        "```",
        results["backprop"]["text"],
        "```",
        "",
        "## Figures",
    ]
    html_figs = []
    for name, caption in figures:
        md += [f"![{caption}]({name})", f"*{caption}*", ""]
        with open(os.path.join(folder, name), "rb") as f:
            data = base64.b64encode(f.read()).decode()
        html_figs.append(
            f'<figure><img src="data:image/png;base64,{data}" alt="{caption}">'
            f"<figcaption>{caption}</figcaption></figure>"
        )
    body = "\n".join(md)
    with open(os.path.join(folder, "report.md"), "w") as f:
        f.write(body)
    import html

    text = html.escape(body.split("## Figures")[0])
    page = (
        "<!doctype html><meta charset='utf-8'><title>gradstep lecture report</title>"
        "<style>body{font-family:sans-serif;max-width:60em;margin:auto}img{max-width:100%}"
        "</style><pre style='white-space:pre-wrap'>" + text + "</pre>" + "\n".join(html_figs)
    )
    with open(os.path.join(folder, "report.html"), "w") as f:
        f.write(page)
    with open(os.path.join(folder, "results.json"), "w") as f:
        json.dump(results, f, indent=2, default=float)
