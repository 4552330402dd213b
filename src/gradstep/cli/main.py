"""``gradstep``: thin commands over the library. Every user error is one line and exit code 2."""

from __future__ import annotations

import os
import sys

import click
import numpy as np

from gradstep.cli.diagnose import diagnose as diagnose_command
from gradstep.cli.features import features as features_command
from gradstep.cli.lab import lab as lab_command
from gradstep.cli.sweep import sweep as sweep_command
from gradstep.errors import InputError
from gradstep.io import CheckpointError

FIGURE_FORMATS = ("png", "pdf", "svg")
overwrite_option = click.option(
    "--overwrite",
    is_flag=True,
    help="Replace an existing output (a folder only if gradstep made it for the same purpose).",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="gradstep")
def cli() -> None:
    """Machine learning in three steps: a model, a loss, gradient descent."""


@cli.command()
@click.option(
    "--out",
    "out_dir",
    default="lecture-report",
    show_default=True,
    help="Folder for report.html, report.md, the PNGs and results.json.",
)
@click.option("--quick", is_flag=True, help="A smaller run (under 40 s) for tests and a look.")
@click.option(
    "--threads",
    type=click.IntRange(1, 1024),
    default=1,
    show_default=True,
    help="BLAS threads; the lecture's matrices are tiny, where a second thread only waits.",
)
@overwrite_option
def lecture(out_dir: str, quick: bool, threads: int, overwrite: bool) -> None:
    """Run the lecture's lab and experiments on bundled data and write a report."""
    from threadpoolctl import threadpool_limits

    from gradstep.lab.report import run_lecture

    with threadpool_limits(limits=threads):
        results = run_lecture(
            out_dir, quick=quick, progress=sys.stderr.isatty(), overwrite=overwrite
        )
    click.echo(results["table"])
    click.echo(f"\nreport: {os.path.join(os.path.abspath(out_dir), 'report.html')}")


def _hidden(value):
    if value is None:
        return None
    try:
        sizes = [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise InputError(f"--hidden: '{value}' is not a comma-separated list of integers") from None
    return sizes


@cli.command()
@click.option("--data", "data_path", required=True, help="Training CSV (with a header row).")
@click.option("--target", help="The column to predict (required, here or in --config).")
@click.option("--task", type=click.Choice(["auto", "regression", "classification"]))
@click.option("--features", help="Comma-separated feature columns (default: all but target).")
@click.option("--hidden", help="Neurons per hidden layer, e.g. 64,32.")
@click.option("--activation", type=click.Choice(["relu", "sigmoid", "tanh", "leaky_relu"]))
@click.option("--loss", type=click.Choice(["auto", "mse", "mae", "huber", "ce"]))
@click.option("--optimizer", type=click.Choice(["sgd", "adam"]))
@click.option("--lr", type=float, help="Learning rate [default: 0.001].")
@click.option("--batch-size", type=int, help="[default: 32, larger for big tables]")
@click.option("--epochs", type=int, help="At most this many [default: 200].")
@click.option("--val-fraction", type=float, help="Rows held out for early stopping [default: 0.2].")
@click.option(
    "--patience", type=int, help="Epochs without improvement [default: 20, fewer for big tables]."
)
@click.option("--seed", type=int, help="[default: 0]")
@click.option(
    "--missing",
    type=click.Choice(["impute", "drop", "error"]),
    help="Missing feature cells: impute (median / most frequent + indicator; default), "
    "drop the row, or error.",
)
@click.option("--class-weight", type=click.Choice(["none", "balanced"]))
@click.option("--sep", help="The CSV's delimiter (default: sniffed: comma, semicolon, tab, bar).")
@click.option("--decimal", help="Decimal mark of every number column ('.' or ',').")
@click.option("--thousands", help="Thousands separator of every number column.")
@click.option("--threads", type=int, help="BLAS threads [default: 0 = 1 for small models].")
@click.option("--config", "config_path", help="A TOML file with any of these options.")
@click.option("--out", "out_dir", required=True, help="The run folder to write.")
@overwrite_option
@click.option("--quiet", is_flag=True, help="No progress bar.")
def train(data_path, config_path, out_dir, quiet, overwrite, **options) -> None:
    """Train a network on a CSV: standardise, train with early stopping, save the run."""
    from gradstep.train.tabular import TrainConfig, load_config_file, train_tabular

    base = load_config_file(config_path) if config_path else {}
    # A config file must be valid on its own, even where an option overrides one of its keys.
    cfg = TrainConfig.from_dict(base, config_path or "options")
    if config_path:
        cfg.validate(config_path, require_target=False)
    if options.get("features") is not None:
        options["features"] = [f.strip() for f in options["features"].split(",") if f.strip()]
    options["hidden"] = _hidden(options.get("hidden"))
    for key, value in options.items():
        if value is not None:
            setattr(cfg, key, value)
    if not cfg.target:
        raise InputError("--target is required (the column to predict)")
    if cfg.sep == "\\t":
        cfg.sep = "\t"
    cfg.validate(config_path or "options")
    metrics = train_tabular(
        data_path,
        cfg,
        out_dir,
        verbose=0 if quiet else None,
        overwrite=overwrite,
        config_path=config_path,
        log=click.echo,
    )
    click.echo(
        f"trained ({metrics['task']}, {metrics['epochs_run']} epochs run, weights kept from "
        f"epoch {metrics['weights_from_epoch']}): "
        + ", ".join(f"{k} {_scores(metrics[k])}" for k in ("train", "validation") if k in metrics)
    )
    click.echo(f"run folder: {os.path.abspath(out_dir)}")


def _scores(m: dict) -> str:
    keys = ("accuracy", "macro_f1", "mae", "rmse", "r2")
    return " ".join(f"{k}={m[k]:.4g}" for k in keys if k in m) + f" (n={m['n']})"


@cli.command()
@click.option("--model", "run_dir", required=True, help="A run folder from gradstep train.")
@click.option("--data", "data_path", required=True, help="CSV with the same feature columns.")
@click.option(
    "--out", "out_path", required=True, help="Where to write the predictions CSV ('-': stdout)."
)
@click.option("--proba", is_flag=True, help="Also write one probability column per class.")
@overwrite_option
def predict(run_dir, data_path, out_path, proba, overwrite) -> None:
    """Predict the target for every row of a CSV."""
    import pandas as pd

    from gradstep.paths import check_output, output_file
    from gradstep.train.tabular import TabularModel, read_run_table

    inputs = [data_path, run_dir]
    if out_path != "-":
        check_output(out_path, kind="file", inputs=inputs, overwrite=overwrite)
    model = TabularModel.load(run_dir)
    df = read_run_table(data_path, model.config)
    if proba:  # one pass of the network for both
        p = model.predict_proba(df, data_path)
        pred = np.asarray(model.classes, dtype=object)[p.argmax(axis=1)]
    else:
        pred = model.predict(df, data_path)
    out = pd.DataFrame({f"{model.config.target}_predicted": pred})
    if proba:
        for j, c in enumerate(model.classes):
            out[f"proba_{c}"] = p[:, j]
    text = out.to_csv(index=False, float_format="%.17g").encode()
    if out_path == "-":
        sys.stdout.buffer.write(text)
        sys.stdout.flush()
        return
    with output_file(out_path, inputs=inputs, overwrite=overwrite) as f:
        f.write(text)
    click.echo(f"{len(out)} predictions written to {out_path}")


@cli.command()
@click.option("--model", "run_dir", required=True)
@click.option("--data", "data_path", required=True, help="CSV with features and the target.")
@click.option(
    "--out",
    "out_dir",
    help="A folder for metrics.json (and confusion_matrix.png for a classification).",
)
@overwrite_option
def evaluate(run_dir, data_path, out_dir, overwrite) -> None:
    """Score a trained model on a labelled CSV."""
    import json

    from gradstep.paths import check_output, output_folder
    from gradstep.train.scores import plot_confusion
    from gradstep.train.tabular import TabularModel, read_run_table

    inputs = [data_path, run_dir]
    if out_dir is not None:
        check_output(out_dir, kind="evaluation", inputs=inputs, overwrite=overwrite)
    model = TabularModel.load(run_dir)
    metrics = model.evaluate(read_run_table(data_path, model.config), data_path)
    click.echo(_scores(metrics))
    if "per_class" in metrics:
        click.echo("class        precision  recall  support")
        for c, v in metrics["per_class"].items():
            click.echo(f"{c:<12} {v['precision']:9.3f} {v['recall']:7.3f} {v['support']:8d}")
        click.echo(
            f"confusion matrix (rows: true, columns: predicted): {metrics['confusion_matrix']}"
        )
    if out_dir is not None:
        with output_folder(out_dir, kind="evaluation", inputs=inputs, overwrite=overwrite) as tmp:
            with open(os.path.join(tmp, "metrics.json"), "w", encoding="utf-8") as f:
                json.dump(metrics, f, indent=2)
            if "confusion_matrix" in metrics:
                plot_confusion(metrics, os.path.join(tmp, "confusion_matrix.png"))
        click.echo(f"written to {os.path.abspath(out_dir)}")


@cli.command()
@click.option("--data", "data_path", required=True)
@click.option("--x", "x_col", required=True, help="The input column.")
@click.option("--y", "y_col", required=True, help="The column to predict.")
@click.option("--loss", type=click.Choice(["mse", "mae"]), default="mse", show_default=True)
@click.option(
    "--out",
    "out_path",
    default="surface.png",
    show_default=True,
    help="The figure; its format follows the extension (.png, .pdf or .svg).",
)
@click.option("--sep", help="The CSV's delimiter (default: sniffed).")
@overwrite_option
def surface(data_path, x_col, y_col, loss, out_path, sep, overwrite) -> None:
    """The error surface of y = b + w x over (w, b), with gradient descent paths."""
    from gradstep.cli.lab import read_xy
    from gradstep.lab.surface import plot_error_surface
    from gradstep.paths import check_output, output_file

    fmt = os.path.splitext(out_path)[1].lower().lstrip(".")
    if fmt not in FIGURE_FORMATS:
        raise InputError(
            f"--out {out_path!r}: the extension must be .png, .pdf or .svg (the figure's format)"
        )
    check_output(out_path, kind="file", inputs=[data_path], overwrite=overwrite)
    x, y = read_xy(data_path, x_col, y_col, sep)
    xs = (x - x.mean()) / x.std()
    with output_file(out_path, inputs=[data_path], overwrite=overwrite) as f:
        info = plot_error_surface(
            xs, y, [0.01, 0.3, 1.05], f, w0=0.0, b0=0.0, loss=loss, format=fmt
        )
    click.echo(
        f"minimum on the grid (w, b) = {tuple(round(v, 4) for v in info['grid_min'])} "
        f"for standardised {x_col}; written to {out_path}"
    )


@cli.command()
@click.option("--model", "run_dir", required=True, help="A run folder from gradstep train.")
@click.option("--format", "fmt", type=click.Choice(["onnx", "torch"]), required=True)
@click.option(
    "--out",
    "out_path",
    required=True,
    help="FILE.onnx, or FILE.pt for torch (its module is written beside it as FILE.py).",
)
@click.option(
    "--date-parts",
    is_flag=True,
    help="ONNX: take a date column as its 4 parts (year, month, day of year, weekday).",
)
@overwrite_option
def export(run_dir, fmt, out_path, date_parts, overwrite) -> None:
    """Export a trained run to ONNX (raw columns in, preprocessing inside) or to PyTorch."""
    from gradstep.paths import check_output, output_file
    from gradstep.train.tabular import TabularModel

    inputs = [run_dir]
    outputs = [out_path]
    want = (".onnx",) if fmt == "onnx" else (".pt", ".pth")
    if not out_path.lower().endswith(want):
        raise InputError(f"--out {out_path!r}: a {fmt} export is written as FILE{want[0]}")
    if fmt == "torch":
        outputs.append(os.path.splitext(out_path)[0] + ".py")
        if os.path.abspath(outputs[1]) == os.path.abspath(out_path):
            raise InputError(f"--out {out_path!r}: give the weights file an extension such as .pt")
    for path in outputs:
        check_output(path, kind="file", inputs=inputs, overwrite=overwrite)
    model = TabularModel.load(run_dir)
    try:
        if fmt == "onnx":
            from gradstep.export import onnx_bytes

            blobs = [onnx_bytes(model, date_parts=date_parts)]
        else:
            from gradstep.export import torch_files

            weights, source = torch_files(model, weights_name=os.path.basename(out_path))
            blobs = [weights, source.encode()]
    except ImportError as e:  # the optional extras
        extra = "onnx" if fmt == "onnx" else "torch"
        raise InputError(
            f"export --format {fmt} needs {e.name or extra}: pip install 'gradstep[{extra}]'"
        ) from None
    except ValueError as e:
        raise InputError(
            f"export: {str(e).replace('pass date_parts=True', 'pass --date-parts')}"
        ) from None
    for path, blob in zip(outputs, blobs):
        with output_file(path, inputs=inputs, overwrite=overwrite) as f:
            f.write(blob)
    click.echo("written: " + ", ".join(outputs))


@cli.command()
@click.option(
    "--export",
    nargs=2,
    metavar="NAME FILE.csv",
    help="Write bundled dataset NAME as a CSV, to try the CLI on it.",
)
@overwrite_option
def datasets(export, overwrite) -> None:
    """What data is bundled (no download needed), or --export NAME FILE.csv."""
    from gradstep.data.bundled import DATASETS, load_frame

    if export:
        from gradstep.paths import output_file

        name, path = export
        df = load_frame(name)
        with output_file(path, overwrite=overwrite, option="--export FILE") as f:
            f.write(df.to_csv(index=False).encode())
        target = DATASETS[name][1]
        click.echo(f"{name}: {len(df)} rows, {df.shape[1]} columns (target: {target}) -> {path}")
        return
    for name, (about, target, _) in DATASETS.items():
        click.echo(f"{name:<16} {about} (target: {target})")


cli.add_command(lab_command, name="lab")
cli.add_command(diagnose_command, name="diagnose")
cli.add_command(features_command, name="features")
cli.add_command(sweep_command, name="sweep")


def main(argv=None) -> int:
    """Entry point: run ``cli`` and turn every user error into one line and exit code 2.

    NumPy's floating-point warnings are silenced here: the library checks for non-finite
    results itself (a diverging run stops with one line that says so), and five RuntimeWarnings
    ahead of that line only hide it."""
    try:
        with np.errstate(all="ignore"):
            cli.main(args=argv, prog_name="gradstep", standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as e:  # `gradstep` alone: show the help
        click.echo(e.ctx.get_help())
        return 0
    except click.UsageError as e:
        click.echo(f"error: {e.format_message()}", err=True)
        return 2
    except (
        InputError,
        CheckpointError,
        FileNotFoundError,
        PermissionError,
        IsADirectoryError,
    ) as e:
        # User errors only: any other exception is a bug and keeps its traceback.
        click.echo(f"error: {e}", err=True)
        return 2
    except OSError as e:  # the machine's, not the user's nor ours: a full disk, a lost mount
        where = f" ({e.filename})" if e.filename else ""
        click.echo(f"error: {e.strerror or e}{where}; nothing was replaced", err=True)
        return 2
    except click.Abort:
        click.echo("aborted", err=True)
        return 130
    return 0


def run() -> None:
    """The console script."""
    sys.exit(main())
