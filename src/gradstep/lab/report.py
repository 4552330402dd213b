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

    from gradstep.lab import figures as figs

    def figure(name, key, fn, **kwargs):  # what each figure says is in report_content
        results[key] = fn(os.path.join(tmp, name), **kwargs)

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
    figure("gd_one_parameter.png", "gd_one_parameter", figs.gd_one_parameter)
    figure("piecewise.png", "piecewise", figs.piecewise, epochs=100 if quick else 400)
    figure(
        "overfitting.png",
        "overfitting",
        figs.overfitting,
        epochs=800 if quick else 1500,
        sizes=(2, 16, 128),
    )
    figure("three_tasks.png", "three_tasks", figs.three_tasks, epochs=20 if quick else 80)

    # 2. critical points
    results["critical_points"] = {
        name: {"kind": r["kind"], "eigenvalues": r["eigenvalues"].tolist()}
        for name, f in critical.EXAMPLES.items()
        for r in [critical.classify_critical_point(f, [0.0, 0.0])]
    }

    # 2b. when the gradient is small: HW2-2 by the exact Hessian, a saddle escaped
    from gradstep.lab import figures_small_gradient as small

    figure(
        "minimum_ratio.png",
        "minimum_ratio",
        small.minimum_ratio,
        seeds=6 if quick else 20,
        max_steps=8 if quick else 15,
    )
    figure("saddle_escape.png", "saddle_escape", small.saddle_escape, steps=100 if quick else 300)
    figure("landscape.png", "landscape", small.landscape, resolution=31 if quick else 61)
    # ... and the optimizers on section 1's narrow valley, small against large batches
    from gradstep.lab import batch_size, valley

    results["optimizers"] = valley.plot_optimizer_paths(
        x, y, os.path.join(tmp, "optimizers.png"), resolution=120 if quick else 200
    )
    results["batch_size"] = batch_size.plot_batch_size_study(
        batch_size.batch_size_study(quick=quick), os.path.join(tmp, "batch_size.png")
    )

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
        "parameter": e["parameter"],
        "index": list(e["index"]),
        "forward": e["forward"].tolist(),
        "backward": e["backward"].tolist(),
        "product": e["product"],
        "engine": e["engine"],
    }
    figs.network_picture(e, net, os.path.join(tmp, "backprop.png"))

    # 4. the experiment table
    grid = experiments.experiments(quick)
    epochs = 40 if quick else 300
    rows = []
    for exp in tqdm(grid, desc="experiments", disable=not progress):
        rows.append(experiments.run_experiment(exp, epochs))
    results["experiments"] = rows
    _plot_table(rows, os.path.join(tmp, "experiments.png"))
    _plot_learning_curves(rows, os.path.join(tmp, "learning_curves.png"))
    results["table"] = experiments.format_table(rows)
    results["seconds"] = time.perf_counter() - started

    _write_reports(tmp, results)
    return results


def _png_size(path: str) -> tuple[int, int]:
    """Width and height from a PNG's header (the img tags carry them, so nothing jumps)."""
    with open(path, "rb") as f:
        head = f.read(24)
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


LECTURE_LEAD = (
    "Machine learning in three steps, run on this machine by gradstep's own engine: a function "
    "with unknown parameters, a loss computed from training data, and optimization by gradient "
    "descent with gradients from backpropagation."
)


def _environment():
    import jinja2

    return jinja2.Environment(
        loader=jinja2.PackageLoader("gradstep.lab", "templates"),
        autoescape=jinja2.select_autoescape(["html.j2"]),
        keep_trailing_newline=True,
    )


def _embedded(sections: list[dict], folder: str) -> tuple[dict, dict]:
    """Each figure's PNG from ``folder`` as base64 text, and its (width, height)."""
    images, sizes = {}, {}
    for name in [f["file"] for s in sections for f in s.get("figures") or []]:
        path = os.path.join(folder, name)
        with open(path, "rb") as f:
            images[name] = base64.b64encode(f.read()).decode()
        sizes[name] = _png_size(path)
    return images, sizes


def render_html(
    sections: list[dict],
    folder: str,
    *,
    title: str,
    lead: str,
    command: str,
    footer: str,
    seconds: str = "",
) -> str:
    """One self-contained HTML document in the lecture report's layout (``report.html.j2``).

    Parameters
    ----------
    sections : list of dict
        Each with ``id``, ``title``, ``paragraphs`` and optionally ``tables`` (caption, header,
        rows), ``figures`` (file, caption, notes) and ``code``; see ``report_content``.
    folder : str
        Where the figures' PNGs are; they are embedded as data URIs (the page makes no request).
    title, lead : str
        The heading and the paragraph under it (escaped unless a ``markupsafe.Markup``).
    command, footer, seconds : str
        The footer reads "Written by <command> in <seconds> s. <footer>" ("in ... s" only when
        ``seconds`` is given).
    """
    images, sizes = _embedded(sections, folder)
    context = {
        "title": title,
        "lead": lead,
        "sections": sections,
        "command": command,
        "footer": footer,
        "seconds": seconds,
        "images": images,
        "sizes": sizes,
    }
    return _environment().get_template("report.html.j2").render(context)


def render(results: dict, folder: str) -> tuple[str, str]:
    """The report as (HTML, Markdown), from the templates in ``templates/`` and the PNGs in
    ``folder`` (embedded in the HTML as data URIs: the page makes no request)."""
    from markupsafe import Markup

    from gradstep.lab.report_content import sections

    parts = sections(results)
    quick = results.get("quick", False)
    lead = LECTURE_LEAD + (
        " This is a quick run (fewer epochs and a smaller grid): its numbers are rougher than a "
        "full run's."
        if quick
        else ""
    )
    seconds = f"{results.get('seconds', 0):.0f}"
    html = render_html(
        parts,
        folder,
        title="The lecture, run: machine learning in three steps",
        lead=Markup(lead),  # our own words: kept as written (an apostrophe stays an apostrophe)
        command="gradstep lecture",
        footer="The same numbers are in results.json; the figures are beside this file as PNGs.",
        seconds=seconds,
    )
    md = (
        _environment()
        .get_template("report.md.j2")
        .render(
            {
                "title": "The lecture, run: machine learning in three steps",
                "sections": parts,
                "quick": quick,
                "seconds": seconds,
            }
        )
    )
    return html, md


def _write_reports(folder, results):
    html, md = render(results, folder)
    with open(os.path.join(folder, "report.md"), "w") as f:
        f.write(md)
    with open(os.path.join(folder, "report.html"), "w") as f:
        f.write(html)
    with open(os.path.join(folder, "results.json"), "w") as f:
        json.dump(results, f, indent=2, default=float)
