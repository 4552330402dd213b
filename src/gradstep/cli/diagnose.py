"""``gradstep diagnose``: where a trained run stopped, is the gradient small, and is it a local
minimum or a saddle point? The run's training loss on a CSV's rows
(:func:`gradstep.train.diagnose.run_loss`), classified by the exact Hessian
(:func:`gradstep.lab.critical_points.inspect_critical_point`)."""

from __future__ import annotations

import json
import os

import click
import numpy as np

from gradstep.errors import InputError

MEANING = {
    "not a critical point": "the gradient norm is above --grad-tol: these weights are not where "
    "the gradient vanishes, so the eigenvalues describe the curvature here, not a minimum or a "
    "saddle point",
    "local minimum": "the gradient is below --grad-tol and every eigenvalue is positive: the loss "
    "rises in every direction from these weights",
    "saddle point": "the gradient is below --grad-tol, but the loss still falls along the "
    "eigenvectors of the negative eigenvalues: a way out that gradient descent, which follows "
    "the gradient alone, does not see",
    "local maximum": "the gradient is below --grad-tol and every eigenvalue is negative: the loss "
    "falls in every direction",
    "flat (undetermined)": "the gradient is below --grad-tol and no eigenvalue is negative, but "
    "some are zero (within --tol): along their eigenvectors the Hessian cannot tell a minimum "
    "from a saddle point; higher orders decide",
}


def diagnose_run(run_dir, data_path, rows=None, tol=1e-6, grad_tol=1e-3, loss=None) -> dict:
    """Every number ``gradstep diagnose`` prints, as a dict of plain Python values."""
    from gradstep.lab.critical_points import FULL_LIMIT, inspect_critical_point
    from gradstep.train.diagnose import run_loss

    problem = run_loss(run_dir, data_path, rows, loss)
    try:
        r = inspect_critical_point(
            problem.model, problem.loss_fn, problem.X, problem.y, tol, grad_tol
        )
    except ValueError as e:  # a model the exact Hessian cannot take; none from `train` today
        raise InputError(f"{run_dir}: {e}") from None
    eig = np.asarray(r["eigenvalues"], np.float64)
    run = problem.run
    return {
        "run": os.fspath(run_dir),
        "data": os.fspath(data_path),
        "task": run.task,
        "target": run.config.target,
        "loss_name": problem.loss,
        "trained_with": problem.trained_with,
        "rows": problem.rows,
        "rows_in_file": problem.rows_in_file,
        "left_out": problem.left_out,
        "parameters": int(r["parameters"]),
        "loss": float(r["loss"]),
        "grad_norm": float(r["grad_norm"]),
        "grad_tol": float(grad_tol),
        "tol": float(r["tol"]),
        "zero_threshold": float(r["tol"] * np.max(np.abs(eig))),
        "all_eigenvalues": int(r["parameters"]) <= FULL_LIMIT,
        "full_limit": FULL_LIMIT,
        "n_positive": r["n_positive"],
        "n_negative": r["n_negative"],
        "n_zero": r["n_zero"],
        "minimum_ratio": r["minimum_ratio"],
        "minimum_ratio_gauss_newton": r["minimum_ratio_gauss_newton"],
        "smallest_eigenvalue": float(eig[0]),
        "largest_eigenvalue": float(eig[-1]),
        "eigenvalues": [float(v) for v in eig],
        "verdict": r["verdict"],
        "meaning": MEANING.get(r["verdict"], ""),
        "notes": problem.notes,
    }


def report_lines(d: dict) -> list[str]:
    """The diagnosis as text, one fact a line."""
    target = "on the standardised target" if d["task"] == "regression" else "on the class indices"
    how = (
        "as trained"
        if d["loss_name"] == d["trained_with"]
        else f"not the run's {d['trained_with']}"
    )
    left = ", ".join(f"{n} with a {why}" for why, n in d["left_out"].items())
    lines = [
        f"run: {d['run']} ({d['task']}, target '{d['target']}'); loss: {d['loss_name']} {target}, "
        f"{how}",
        *(f"note: {n}" for n in d["notes"]),
        f"rows: {d['rows']} of {d['rows_in_file']} in {d['data']}"
        + (f" (left out: {left})" if left else ""),
        f"parameters P: {d['parameters']}",
        f"loss: {d['loss']:.6g}",
        f"gradient norm: {d['grad_norm']:.6g} (--grad-tol {d['grad_tol']:g})",
    ]
    zero = f"|lambda| <= {d['tol']:g} x max|lambda| = {d['zero_threshold']:.3g}"
    if d["all_eigenvalues"]:
        lines.append(
            f"eigenvalues (exact Hessian, all {d['parameters']}): {d['n_positive']} positive, "
            f"{d['n_negative']} negative, {d['n_zero']} zero ({zero})"
        )
    else:
        k = len(d["eigenvalues"]) // 2
        lines.append(
            f"eigenvalues: P > {d['full_limit']:,}, so only the {k} smallest and {k} largest "
            f"(Lanczos on exact Hessian-vector products); no counts (zero: {zero})"
        )
    lines.append(
        f"smallest eigenvalue: {d['smallest_eigenvalue']:.6g}, largest: "
        f"{d['largest_eigenvalue']:.6g}"
    )
    ratio = d["minimum_ratio"]
    gn = d["minimum_ratio_gauss_newton"]
    lines.append(
        "minimum ratio (positive eigenvalues / P, exact): "
        + (
            f"{ratio:.4g}"
            if ratio is not None
            else f"needs every eigenvalue (P <= {d['full_limit']:,})"
        )
    )
    lines.append(
        "minimum ratio (Gauss-Newton, the course's): "
        + (f"{gn:.4g}" if gn is not None else f"for the MSE with P <= {d['full_limit']:,} only")
    )
    lines.append(f"verdict: {d['verdict']}")
    if d["meaning"]:
        lines.append(f"  {d['meaning']}")
    return lines


@click.command()
@click.option("--model", "run_dir", required=True, help="A run folder from gradstep train.")
@click.option(
    "--data", "data_path", required=True, help="CSV with the run's feature columns and its target."
)
@click.option(
    "--rows",
    type=click.IntRange(1),
    help="Only the first N rows that have a target [default: all].",
)
@click.option(
    "--tol",
    type=click.FloatRange(0, 1),
    default=1e-6,
    show_default=True,
    help="An eigenvalue counts as zero when |lambda| <= tol x max|lambda|.",
)
@click.option(
    "--grad-tol",
    type=click.FloatRange(0),
    default=1e-3,
    show_default=True,
    help="A gradient norm above this is 'not a critical point'.",
)
@click.option(
    "--loss",
    type=click.Choice(["mse", "ce"]),
    help="Diagnose this loss instead of the run's own (for a run trained with mae or huber, "
    "whose exact Hessian does not exist).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (every eigenvalue).")
def diagnose(run_dir, data_path, rows, tol, grad_tol, loss, as_json) -> None:
    """Gradient norm, Hessian eigenvalues and the verdict (minimum? saddle?) of a trained run."""
    d = diagnose_run(run_dir, data_path, rows, tol, grad_tol, loss)
    if as_json:
        click.echo(json.dumps(d, indent=2))
        return
    for line in report_lines(d):
        click.echo(line)
