"""``gradstep sweep``: ``gradstep train``'s options swept over a CSV, per a TOML file.

A sweep file::

    data = "diabetes.csv"        # relative to this file's folder (--data overrides)
    target = "target"
    seeds = [0, 1, 2, 3, 4]
    epochs = 50                  # any `gradstep train` option, fixed for every trial
    # strategy = "random"        # grid (default when every option is a list) | random | optuna
    # n_trials = 20              # for random and optuna
    # metric = "val_rmse"        # default: val_rmse (regression), val_accuracy (classification)

    [space]                      # `gradstep train`'s option names, each a list
    hidden = ["16", "64,32"]
    lr = [1e-3, 1e-2]
    features = ["top:5", "all"]
    # lr = {distribution = "loguniform", low = 1e-4, high = 1e-1}
"""

from __future__ import annotations

import os

import click

from gradstep.errors import InputError

SWEEP_KEYS = ("data", "seeds", "strategy", "n_trials", "sample_seed", "metric", "mode", "space")


def read_sweep_file(path: str, data_override: str | None) -> dict:
    """The sweep file's parts: data path, fixed options, space, seeds and the strategy keys."""
    from gradstep.sweep.space import parse_value
    from gradstep.sweep.tasks import normalize_options
    from gradstep.train.config import load_config_file

    doc = load_config_file(path)
    fixed = {}
    sweep = {}
    for key, value in doc.items():
        if key in SWEEP_KEYS:
            sweep[key] = value
        elif key == "train" and isinstance(value, dict):
            fixed.update(value)
        else:
            fixed[key] = value
    try:
        fixed = normalize_options(fixed, path, fixed=True)  # unknown top-level keys named here
    except InputError as e:
        if "unknown option" not in str(e):
            raise
        import difflib

        from gradstep.train.config import TrainConfig

        key = str(e).split("'")[1]
        names = [*SWEEP_KEYS, *TrainConfig.__dataclass_fields__]
        close = difflib.get_close_matches(key.replace("-", "_"), names, n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise InputError(
            f"{path}: unknown key '{key}' ({hint}a sweep file takes {', '.join(SWEEP_KEYS)} "
            "and gradstep train's options; see docs/sweeps.md)"
        ) from None
    if "seed" in fixed:
        raise InputError(f"{path}: 'seed' is swept: write seeds = [0, 1, 2, ...] instead")
    if not fixed.get("target"):
        raise InputError(f"{path}: 'target' is required (the column to predict)")
    space = sweep.get("space")
    if not isinstance(space, dict) or not space:
        raise InputError(f"{path}: a [space] table with at least one option is required")
    sweep["space"] = {k: parse_value(k, v, path) for k, v in space.items()}
    data = data_override or sweep.get("data")
    if not data:
        raise InputError(f'{path}: no data file: set data = "FILE.csv" or pass --data')
    if not data_override and not os.path.isabs(data):
        data = os.path.join(os.path.dirname(os.path.abspath(path)), data)
    if not os.path.isfile(data):
        raise InputError(f"data file {data!r} does not exist")
    sweep["data"] = data
    sweep["fixed"] = fixed
    return sweep


@click.command()
@click.option("--config", "config_path", required=True, help="The sweep's TOML file.")
@click.option("--out", "out_dir", required=True, help="The sweep folder (a rerun resumes it).")
@click.option("--data", "data_path", help="The CSV (overrides the file's data key).")
@click.option(
    "--workers",
    type=click.IntRange(1, 4096),
    help="Local worker processes [default: the machine's cores; 1: run here, serially].",
)
@click.option(
    "--scheduler",
    help="'local' (an embedded Dask LocalCluster) or a Dask scheduler's tcp://HOST:PORT.",
)
@click.option("--overwrite", is_flag=True, help="Replace a folder that holds another sweep.")
@click.option("--quiet", is_flag=True, help="No progress bar and no per-trial lines.")
def sweep(config_path, out_dir, data_path, workers, scheduler, overwrite, quiet) -> None:
    """Train every configuration of the file's [space] once per seed; write trials.csv and
    report.html into --out (docs/sweeps.md)."""
    from gradstep.sweep import sweep as run_sweep
    from gradstep.sweep import tabular

    spec = read_sweep_file(config_path, data_path)
    if scheduler is not None and not scheduler.strip():
        raise InputError("--scheduler is empty (an unset shell variable?); give tcp://HOST:PORT")
    executor = None if scheduler is None else ("dask" if scheduler == "local" else scheduler)
    if executor not in (None, "dask") and "://" not in executor:
        raise InputError(f"--scheduler {scheduler!r}: give 'local' or tcp://HOST:PORT")
    task = tabular(spec["data"], **spec["fixed"])
    result = run_sweep(
        task,
        spec["space"],
        seeds=spec.get("seeds", list(range(5))),
        executor=executor,
        out=out_dir,
        metric=spec.get("metric"),
        mode=spec.get("mode"),
        strategy=spec.get("strategy"),
        n_trials=spec.get("n_trials"),
        sample_seed=spec.get("sample_seed", 0),
        workers=workers,
        overwrite=overwrite,
        inputs=[config_path],
        progress=False if quiet else None,
        log=(lambda line: None) if quiet else click.echo,
    )
    rows = result.rows
    counts = {s: sum(r["status"] == s for r in rows) for s in ("ok", "failed", "diverged")}
    click.echo(
        f"{len(rows)} trials ({counts['ok']} ok, {counts['failed']} failed, "
        f"{counts['diverged']} diverged) "
        + (
            "already in the journal"
            if result.executor.startswith("none")
            else f"on {result.executor}"
        )
    )
    best = result.best
    if best:
        sd = f" ± {best['sd']:.4g}" if best["sd"] is not None else ""
        click.echo(
            f"best: {_config_text(best['config'])}: {result.metric} {best['mean']:.4g}{sd} "
            f"over {best['n_ok']} seeds"
        )
        for c in result.comparison[:8]:
            if c["n_pairs"] < 2:
                click.echo(f"  vs {_config_text(c['config'])}: {c['verdict']}")
                continue
            click.echo(
                f"  vs {_config_text(c['config'])}: {c['diff']:+.4g} (95% CI {c['ci_low']:+.3g} "
                f"to {c['ci_high']:+.3g} over {c['n_pairs']} seeds): {c['verdict']}"
            )
        if len(result.comparison) > 8:
            click.echo(f"  ... {len(result.comparison) - 8} more in the report")
    click.echo(f"table: {os.path.join(result.folder, 'trials.csv')}")
    click.echo(f"report: {os.path.join(result.folder, 'report.html')}")


def _config_text(config: dict) -> str:
    def text(v):
        if isinstance(v, list):
            return ",".join(map(str, v))
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    return " ".join(f"{k}={text(v)}" for k, v in config.items())
