"""``gradstep``: thin commands over the library. Every user error is one line and exit code 2."""

from __future__ import annotations

import os
import sys

import click
import numpy as np

from gradstep.data.tabular import InputError
from gradstep.io import CheckpointError


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
def lecture(out_dir: str, quick: bool) -> None:
    """Run the lecture's lab and experiments on bundled data and write a report."""
    from gradstep.lab.report import run_lecture

    results = run_lecture(out_dir, quick=quick, progress=sys.stderr.isatty())
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
@click.option("--target", help="The column to predict.")
@click.option("--task", type=click.Choice(["auto", "regression", "classification"]))
@click.option("--features", help="Comma-separated feature columns (default: all but target).")
@click.option("--hidden", help="Neurons per hidden layer, e.g. 64,32.")
@click.option("--activation", type=click.Choice(["relu", "sigmoid", "tanh", "leaky_relu"]))
@click.option("--loss", type=click.Choice(["auto", "mse", "mae", "huber", "ce"]))
@click.option("--optimizer", type=click.Choice(["sgd", "adam"]))
@click.option("--lr", type=float)
@click.option("--batch-size", type=int)
@click.option("--epochs", type=int)
@click.option("--val-fraction", type=float)
@click.option("--patience", type=int)
@click.option("--seed", type=int)
@click.option("--config", "config_path", help="A TOML file with any of these options.")
@click.option("--out", "out_dir", required=True, help="The run folder to write.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def train(data_path, config_path, out_dir, quiet, **options) -> None:
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
    cfg.validate(config_path or "options")
    metrics = train_tabular(data_path, cfg, out_dir, verbose=0 if quiet else None)
    click.echo(
        f"trained ({metrics['task']}, {metrics['epochs_run']} epochs): "
        f"train {metrics['train']}"
        + (f", validation {metrics['validation']}" if "validation" in metrics else "")
    )
    click.echo(f"run folder: {os.path.abspath(out_dir)}")


@cli.command()
@click.option("--model", "run_dir", required=True, help="A run folder from gradstep train.")
@click.option("--data", "data_path", required=True, help="CSV with the same feature columns.")
@click.option("--out", "out_path", required=True, help="Where to write the predictions CSV.")
def predict(run_dir, data_path, out_path) -> None:
    """Predict the target for every row of a CSV."""
    import pandas as pd

    from gradstep.data.tabular import read_table
    from gradstep.io import atomic_write_bytes
    from gradstep.train.tabular import TabularModel

    model = TabularModel.load(run_dir)
    df = read_table(data_path)
    pred = model.predict(df, data_path)
    out = pd.DataFrame({f"{model.config.target}_predicted": pred})
    atomic_write_bytes(out_path, out.to_csv(index=False, float_format="%.17g").encode())
    click.echo(f"{len(out)} predictions written to {out_path}")


@cli.command()
@click.option("--model", "run_dir", required=True)
@click.option("--data", "data_path", required=True, help="CSV with features and the target.")
def evaluate(run_dir, data_path) -> None:
    """Score a trained model on a labelled CSV."""
    from gradstep.data.tabular import read_table
    from gradstep.train.tabular import TabularModel

    model = TabularModel.load(run_dir)
    metrics = model.evaluate(read_table(data_path), data_path)
    click.echo(
        " ".join(f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items())
    )


@cli.command()
@click.option("--data", "data_path", required=True)
@click.option("--x", "x_col", required=True, help="The input column.")
@click.option("--y", "y_col", required=True, help="The column to predict.")
@click.option("--loss", type=click.Choice(["mse", "mae"]), default="mse", show_default=True)
@click.option("--out", "out_path", default="surface.png", show_default=True)
def surface(data_path, x_col, y_col, loss, out_path) -> None:
    """The error surface of y = b + w x over (w, b), with gradient descent paths."""
    from gradstep.data.tabular import check_columns, numeric_column, read_table
    from gradstep.lab.surface import plot_error_surface

    df = read_table(data_path)
    check_columns(df, [x_col, y_col], data_path)
    x, y = numeric_column(df, x_col, data_path), numeric_column(df, y_col, data_path)
    if np.std(x) == 0:
        raise InputError(f"{data_path}, column '{x_col}': constant; the surface is degenerate")
    xs = (x - x.mean()) / x.std()
    folder = os.path.dirname(os.path.abspath(out_path))
    if not os.path.isdir(folder):
        raise InputError(f"--out: folder {folder} does not exist")
    tmp = out_path + ".tmp.png"
    try:
        info = plot_error_surface(xs, y, [0.01, 0.3, 1.05], tmp, w0=0.0, b0=0.0, loss=loss)
        os.replace(tmp, out_path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    click.echo(
        f"minimum on the grid (w, b) = {tuple(round(v, 4) for v in info['grid_min'])} "
        f"for standardised {x_col}; written to {out_path}"
    )


@cli.command()
def datasets() -> None:
    """What data is bundled (no download needed)."""
    click.echo(
        "seattle-weather  vega_datasets (local): 1,461 days of Seattle weather, 2012-2015,"
        " NOAA, public domain; used by `gradstep lecture`"
    )
    click.echo("diabetes         scikit-learn: 442 patients, 10 features, a regression target")
    click.echo("digits           scikit-learn: 1,797 8x8 images of handwritten digits, 10 classes")


def main(argv=None) -> int:
    """Entry point: run ``cli`` and turn every user error into one line and exit code 2."""
    try:
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
    except click.Abort:
        click.echo("aborted", err=True)
        return 130
    return 0


def run() -> None:
    """The console script."""
    sys.exit(main())
