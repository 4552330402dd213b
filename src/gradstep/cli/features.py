"""``gradstep features``: which columns of a table say something about its target? Univariate
scores of every column (:func:`gradstep.sweep.features.univariate_report`) and, given a
trained run, permutation importance on its validation rows
(:func:`gradstep.sweep.importance.permutation_report`)."""

from __future__ import annotations

import dataclasses
import json

import click

from gradstep.errors import InputError

_READING = ("sep", "decimal", "thousands")


def _f(v: float) -> str:
    return f"{v:.2f}" if v < 1e7 else f"{v:.3g}"  # a perfect separation's F is float max


def univariate_lines(d: dict, top: int | None = None) -> list[str]:
    """The univariate table as text: rank, column, F, p, MI; then the skipped columns."""
    scored = [s for s in d["scores"] if s["rank"] is not None]
    skipped = [s for s in d["scores"] if s["rank"] is None]
    shown = scored[:top] if top else scored
    test = "f_regression" if d["task"] == "regression" else "f_classif"
    mi = "mutual_info_" + ("regression" if d["task"] == "regression" else "classif")
    more = f", the best {len(shown)} shown" if len(shown) < len(scored) else ""
    lines = [
        f"univariate scores against '{d['target']}' ({d['task']}, {d['rows']} rows, "
        f"{len(scored)} columns{more}; F: {test}, MI: {mi}; a column encoded as several parts "
        "gets its best part's)"
    ]
    width = max([len("column"), *(len(str(s["column"])) for s in shown)])
    lines.append(f"{'rank':>4}  {'column':<{width}}  {'F':>10}  {'p':>9}  {'MI':>7}")
    for s in shown:
        lines.append(
            f"{s['rank']:>4}  {s['column']:<{width}}  {_f(s['f']):>10}  {s['p']:>9.3g}  "
            f"{s['mi']:>7.4f}"
        )
    for s in skipped:
        lines.append(f"skipped  {s['column']}: {s['skipped']}")
    return lines


def permutation_lines(d: dict, top: int | None = None) -> list[str]:
    """The permutation importance table as text."""
    shown = d["scores"][:top] if top else d["scores"]
    if d["metric"] == "rmse":
        what, base = "increase in RMSE", f"RMSE {d['baseline']:.5g} unshuffled"
    else:
        what, base = "drop in accuracy", f"accuracy {d['baseline']:.4g} unshuffled"
    lines = [
        f"permutation importance on the {d['rows']} validation rows of {d['run']} ({what} when "
        f"the column is shuffled, mean and sd over {d['n_repeats']} shuffles; {base})"
    ]
    width = max([len("column"), *(len(str(s["column"])) for s in shown)])
    lines.append(f"{'rank':>4}  {'column':<{width}}  {'importance':>10}  {'sd':>9}")
    for s in shown:
        lines.append(
            f"{s['rank']:>4}  {s['column']:<{width}}  {s['importance_mean']:>10.4g}  "
            f"{s['importance_sd']:>9.3g}"
        )
    return lines


@click.command()
@click.option("--data", "data_path", required=True, help="CSV with a header row.")
@click.option("--target", required=True, help="The column to predict.")
@click.option(
    "--task",
    type=click.Choice(["auto", "regression", "classification"]),
    default="auto",
    show_default=True,
    help="As gradstep train's (with --model and auto: the run's task).",
)
@click.option(
    "--model",
    "run_dir",
    help="A run folder from gradstep train: adds permutation importance on its validation rows.",
)
@click.option("--top", type=click.IntRange(1), help="Show only the N best columns.")
@click.option(
    "--repeats",
    type=click.IntRange(1),
    default=5,
    show_default=True,
    help="Shuffles per column for permutation importance.",
)
@click.option(
    "--seed", type=click.IntRange(0), default=0, show_default=True, help="Seeds the shuffles."
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead.")
@click.option("--sep", help="The CSV's delimiter (default: sniffed: comma, semicolon, tab, bar).")
@click.option("--decimal", help="Decimal mark of every number column ('.' or ',').")
@click.option("--thousands", help="Thousands separator of every number column.")
def features(data_path, target, task, run_dir, top, repeats, seed, as_json, **reading) -> None:
    """Rank a table's columns: F test and mutual information per column, and with --model the
    permutation importance of a trained run on its validation rows."""
    from gradstep.sweep.features import univariate_report
    from gradstep.sweep.importance import permutation_report
    from gradstep.train.tabular import TabularModel, TrainConfig, read_run_table

    if reading.get("sep") == "\\t":
        reading["sep"] = "\t"
    given = {k: v for k, v in reading.items() if v is not None}
    model = None
    if run_dir is not None:
        model = TabularModel.load(run_dir)
        if model.config.target != target:
            raise InputError(
                f"--target '{target}': the run {run_dir} predicts '{model.config.target}'"
            )
        if task == "auto":
            task = model.task
    base = model.config if model is not None else TrainConfig(target=target)
    cfg = dataclasses.replace(base, **given)
    cfg.validate("options")
    df = read_run_table(data_path, cfg)
    uni = univariate_report(df, target, data_path, task)
    perm = None
    if model is not None:
        # the run's validation rows are re-created from the file read as the run read it
        same = all(getattr(cfg, k) == getattr(model.config, k) for k in _READING)
        perm = permutation_report(run_dir, data_path, repeats, seed, df=df if same else None)
    if as_json:
        scored = [s for s in uni["scores"] if s["rank"] is not None]
        skipped = [s for s in uni["scores"] if s["rank"] is None]
        doc = {"data": str(data_path), **uni, "scores": (scored[:top] if top else scored) + skipped}
        if perm is not None:
            perm = {**perm, "scores": perm["scores"][:top] if top else perm["scores"]}
        doc["permutation"] = perm
        click.echo(json.dumps(doc, indent=2))
        return
    for line in univariate_lines(uni, top):
        click.echo(line)
    if perm is not None:
        click.echo("")
        for line in permutation_lines(perm, top):
            click.echo(line)
