"""``gradstep lab`` (the web app) and the two-column reader it shares with ``gradstep surface``."""

from __future__ import annotations

import os
import sys

import click
import numpy as np

from gradstep.errors import InputError


def read_xy(data_path: str, x_col: str, y_col: str, sep=None):
    """Two numeric columns of a CSV for an error surface (rows missing either are left out,
    and said so); one clear line for anything unusable."""
    from gradstep.data.tabular import check_columns, numeric_column, read_table

    df = read_table(data_path, sep=sep)
    check_columns(df, [x_col, y_col], data_path)
    complete = df[[x_col, y_col]].notna().all(axis=1).to_numpy()
    if not complete.all():
        click.echo(f"left out {int((~complete).sum())} rows with a missing {x_col} or {y_col}")
        df = df[complete]
    if len(df) < 2:
        raise InputError(f"{data_path}: fewer than 2 rows with both {x_col} and {y_col}")
    x, y = numeric_column(df, x_col, data_path), numeric_column(df, y_col, data_path)
    if max(np.abs(x).max(), np.abs(y).max()) > 1e100:
        raise InputError(
            f"{data_path}: values up to {max(np.abs(x).max(), np.abs(y).max()):.3g} are too "
            "large for an error surface (their squares overflow); rescale the columns"
        )
    if np.std(x) == 0:
        raise InputError(f"{data_path}, column '{x_col}': constant; the surface is degenerate")
    return x, y


@click.command()
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--no-browser", is_flag=True, help="Do not open a browser; print the URL only.")
@click.option("--data", "data_path", help="A CSV for the error surface (default: the lecture's).")
@click.option("--x", "x_col", help="The input column of --data.")
@click.option("--y", "y_col", help="The column to predict of --data.")
def lab(port, host, no_browser, data_path, x_col, y_col) -> None:
    """The lecture's lab as a local web app (stops with Ctrl-C)."""
    import socket

    try:
        import starlette  # noqa: F401
        import uvicorn
    except ImportError:
        raise InputError("gradstep lab needs its extra: pip install 'gradstep[lab]'") from None
    from gradstep.lab.web.app import SurfaceData, create_app

    if data_path:
        if not (x_col and y_col):
            raise InputError("--data needs --x and --y (the two columns of the surface)")
        x, y = read_xy(data_path, x_col, y_col)
        data = SurfaceData(x, y, f"{os.path.basename(data_path)} ({y_col} from {x_col})")
    else:
        from gradstep.lab.experiments import load_series

        series, _ = load_series()
        data = SurfaceData(
            series[:-1][:365],
            series[1:][:365],
            "Seattle 2012 (tomorrow's max temperature from today's, deg C)",
        )
    if host not in ("127.0.0.1", "localhost", "::1"):
        click.echo(f"warning: --host {host} lets other machines reach this lab", err=True)
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise InputError(f"cannot listen on {host}:{port}: {e.strerror}") from None
    url = f"http://{host}:{sock.getsockname()[1]}/surface"
    click.echo(f"gradstep lab: {url}  (Ctrl-C stops it)", err=False)
    sys.stdout.flush()
    if not no_browser:
        import webbrowser

        webbrowser.open(url)
    config = uvicorn.Config(
        create_app(data), log_level="warning", lifespan="off", timeout_graceful_shutdown=2
    )
    try:
        uvicorn.Server(config).run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn shuts down cleanly, then re-raises Ctrl-C
        pass
    finally:
        sock.close()
    click.echo("gradstep lab stopped")
