"""The sweep's driver: trials out to the pool, finished trials into the journal, then the table
and the report. It alone proposes trials (a grid, seeded random draws, or Optuna's TPE asked
here), so two workers can never run the same trial."""

from __future__ import annotations

import io
import os
import time
from dataclasses import dataclass, field

from gradstep.errors import InputError
from gradstep.paths import MARKER
from gradstep.sweep import space as sp
from gradstep.sweep.executors import drive, make_pool
from gradstep.sweep.journal import Journal, create_folder, prepare_folder, write_marker
from gradstep.sweep.stats import metric_mode
from gradstep.sweep.table import table_text, write_table
from gradstep.sweep.tasks import (
    SCORES,
    EstimatorTask,
    FunctionTask,
    TabularTask,
    normalize_options,
)

STRATEGIES = ("grid", "random", "optuna")


@dataclass
class SweepResult:
    """What a sweep left: its folder, one row per trial, and the configurations ranked."""

    folder: str
    rows: list
    metric: str
    mode: str
    summary: list = field(default_factory=list)  # per configuration, best first
    comparison: list = field(default_factory=list)  # the best against each other one
    executor: str = ""

    @property
    def best(self) -> dict | None:
        """The best configuration (by the mean of ``metric`` over seeds), or None."""
        return self.summary[0] if self.summary and self.summary[0]["n_ok"] else None

    def table(self):
        """The trials as a pandas DataFrame (as ``trials.csv`` holds them)."""
        import pandas as pd

        return pd.read_csv(io.StringIO(table_text(self.rows, self.metric)))


def tabular(data, target: str, **options) -> TabularTask:
    """``gradstep train``'s options on the CSV ``data`` as a sweep's ``train`` argument:
    ``sweep(tabular("hw1.csv", target="tested_positive", epochs=50), {"lr": [1e-3, 1e-2]})``."""
    return TabularTask(data, {"target": target, **options})


def _task(train, data):
    if isinstance(train, (TabularTask, EstimatorTask, FunctionTask)):
        return train
    if isinstance(train, dict):  # gradstep train's options as they are, with the data file
        options = dict(train)
        if "data" not in options or "target" not in options:
            raise InputError("train as a dict of options needs 'data' (the CSV) and 'target'")
        return TabularTask(options.pop("data"), options)
    if hasattr(train, "fit") and hasattr(train, "get_params"):
        return EstimatorTask(train)
    if callable(train):
        return FunctionTask(train)
    raise InputError(
        f"train must be a function of (config, seed), an estimator or sweep.tabular(...), "
        f"got {train!r}"
    )


def _digest(obj) -> str:
    if obj is None:
        return ""
    import joblib

    return joblib.hash(obj)


def _file_digest(path: str) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _prepare_tabular(task: TabularTask, space: dict):
    """Read the table once (errors now, not in a worker), check every option in the space."""
    from gradstep.train.tabular import select_rows

    space = {k.replace("-", "_"): v for k, v in space.items()}
    normalize_options({k: 0 for k in space}, "space")  # unknown names, target, seed
    space = {
        k: ([normalize_options({k: x}, "space")[k] for x in v] if isinstance(v, list) else v)
        for k, v in space.items()
    }
    df = task.read()
    rows = select_rows(df, task.config({}, 0), task.data_path)
    for k, values in space.items():
        samples = values if isinstance(values, list) else [getattr(values, "low", None)]
        for v in samples:
            if v is None:
                continue
            if k == "features":
                from gradstep.sweep.features import parse_features_option

                columns = [c for c in df.columns if c != task.options["target"]]
                kind, k_top = parse_features_option(v, columns)
                if kind == "top" and k_top > len(columns):
                    raise InputError(
                        f"space 'features': {v!r} asks for {k_top} columns; the table has "
                        f'{len(columns)} besides the target (use "all")'
                    )
                if kind == "top" and task.options.get("missing") == "drop":
                    # the rows kept would depend on the columns chosen, and the split with them
                    raise InputError(
                        "space 'features': top:K cannot be swept with missing = \"drop\" "
                        "(the rows kept depend on the columns); use impute"
                    )
                continue
            cfg = task.config({k: v}, 0)
            cfg.validate(f"space '{k}' = {v!r}")
    parts = ["train_"] + (["val_"] if task.options.get("val_fraction", 0.2) else [])
    scores = ("accuracy", "macro_f1") if rows.target.task == "classification" else SCORES[:3]
    known = [p + m for p in reversed(parts) for m in scores] + ["epochs_run"]
    return space, df, known, rows.target.task


def sweep(
    train,
    space: dict,
    seeds=range(5),
    executor=None,
    out="runs/sweep",
    *,
    data=None,
    metric: str | None = None,
    mode: str | None = None,
    strategy: str | None = None,
    n_trials: int | None = None,
    sample_seed: int = 0,
    workers: int | None = None,
    overwrite: bool = False,
    inputs=(),
    progress: bool | None = None,
    log=None,
) -> SweepResult:
    """Train every configuration of ``space`` once per seed, on ``executor``; write ``out``.

    Parameters
    ----------
    train : callable, estimator, :func:`tabular` or dict
        ``train(config, seed)`` (or ``train(config, seed, data)``) returning a dict of metrics
        (optionally ``{"metrics": {...}, "curve": {"loss": [...], "val_loss": [...]}}``); a
        scikit-learn estimator (cloned per trial, ``set_params(**config)``, scored on a split
        of ``data=(X, y)`` made from the seed); ``tabular(csv, target=..., **options)``, or
        the same as a dict of ``gradstep train``'s options with ``data``: ``{"data": "hw1.csv",
        "target": "y", "epochs": 50}``.
    space : dict
        Option -> list of values (a grid), or -> :func:`uniform`, :func:`loguniform`,
        :func:`randint` (random search or Optuna, with ``n_trials``).
    seeds : iterable of int
        Every configuration runs once per seed (the tabular trainer's seed also picks the
        validation rows, so configurations are compared over the same splits).
    executor : None, "dask", "tcp://host:port" or concurrent.futures.Executor
        None: a process pool of ``workers`` processes (``workers=1``: here, serially).
    out : path
        The sweep folder: ``trials.jsonl`` (journal), ``trials.csv``, ``report.html``. A
        rerun with the same ``out`` and the same sweep resumes; another sweep there is refused
        unless ``overwrite``.
    metric, mode : str
        The metric that ranks configurations and whether lower ("min") or higher ("max") is
        better (default: from its name).
    strategy : {"grid", "random", "optuna"}
        Default: "grid" when every option is a list, else "random".
    """
    task = _task(train, data)
    seeds = sp.check_seeds(seeds)
    space = sp.check_space(space)
    task_kind = None
    if isinstance(task, TabularTask):
        space, data, known, task_kind = _prepare_tabular(task, space)
        if metric and metric not in known:
            raise InputError(
                f"metric '{metric}' is not one this {task_kind} sweep records "
                f"(known: {', '.join(known)})"
            )
        metric = metric or known[0]
    elif isinstance(task, EstimatorTask):
        metric = metric or "val_score"
        mode = mode or "max"
    strategy = strategy or ("grid" if sp.is_grid(space) else "random")
    if strategy not in STRATEGIES:
        raise InputError(f"strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
    if strategy == "optuna" and (not n_trials or n_trials < 1):
        raise InputError("strategy 'optuna' needs n_trials >= 1")
    if not metric and strategy == "optuna":
        raise InputError("metric: name the metric Optuna minimises or maximises (e.g. 'val_loss')")
    if metric and not mode:  # else the first metric the first trial returns
        try:
            mode = metric_mode(metric)
        except InputError:
            raise InputError(
                f"metric '{metric}': is it spelt as the train function returns it? Its name "
                "does not say whether lower or higher is better: pass mode='min' or 'max'"
            ) from None
    if mode not in (None, "min", "max"):
        raise InputError(f"mode must be 'min' or 'max', got {mode!r}")
    planned = None if strategy == "optuna" else sp.configs(space, strategy, n_trials, sample_seed)
    identity = {
        "task": task.describe(),
        "data": _file_digest(task.data_path) if task_kind else _digest(data),
        "space": sp.describe(space),
        "seeds": seeds,
        "strategy": strategy,
        "n_trials": n_trials if strategy != "grid" else None,
        "sample_seed": sample_seed,
    }
    folder, replace = prepare_folder(out, [*inputs, getattr(task, "data_path", None)], overwrite)
    run = _Run(task, space, seeds, metric, mode, strategy, n_trials, sample_seed, planned)
    run.log = log or (lambda line: None)
    run.progress = progress
    about = {
        "task": task_kind or type(task).__name__,
        "data": getattr(task, "data_path", None),
        "space": sp.describe(space),
        "seeds": seeds,
        "strategy": strategy,
    }
    if replace:
        from gradstep.paths import output_folder

        with output_folder(folder, kind="sweep", inputs=inputs, overwrite=True) as tmp:
            result = run.execute(tmp, identity, data, executor, workers, about, final=folder)
            os.unlink(os.path.join(tmp, MARKER))  # output_folder writes the final one
        return result
    from gradstep.paths import _refuser
    from gradstep.publish import locked

    os.makedirs(os.path.dirname(folder), mode=0o777, exist_ok=True)  # as train's --out
    with locked(folder, _refuser("--out")):
        return run.execute(folder, identity, data, executor, workers, about, final=folder)


class _Run:
    def __init__(self, task, space, seeds, metric, mode, strategy, n_trials, sample_seed, planned):
        self.task, self.space, self.seeds = task, space, seeds
        self.metric, self.mode, self.strategy = metric, mode, strategy
        self.n_trials, self.sample_seed, self.planned = n_trials, sample_seed, planned

    def _check_metric(self, row) -> None:
        """The first finished trial shows the metrics there are: a misspelt one stops the
        sweep now, not after every trial (the finished ones stay in the journal)."""
        if self.metric_checked or row["status"] != "ok":
            return
        self.metric_checked = True
        if self.metric is not None and self.metric not in row["metrics"]:
            raise InputError(
                f"metric '{self.metric}' is not among the trials' metrics "
                f"({', '.join(row['metrics'])}); the finished trials are kept"
            )

    metric_checked = False

    def execute(self, folder, identity, data, executor, workers, about, final) -> SweepResult:
        journal = Journal(folder, identity)  # a resumed one is checked before any worker starts
        already = len(journal.rows)
        if self.strategy == "optuna":
            from gradstep.sweep.optuna_search import OptunaPlanner

            planner = OptunaPlanner(
                self.space,
                self.seeds,
                self.n_trials,
                self.sample_seed,
                self.mode,
                self.metric,
                journal,
            )
        else:
            planner = _ListPlanner(sp.trials(self.planned, self.seeds), journal)
        total = planner.total
        if already:
            self.log(f"resuming: {already} of {total} trials already in {journal.path}")
        pool = make_pool(executor, data, workers, self.task) if planner.remaining() else None
        try:  # the folder only once the workers are there: an unreachable scheduler leaves none
            create_folder(folder)
            journal.begin()
        except BaseException:
            if pool is not None:
                pool.close()
            raise
        bar = _bar(total, already, self.progress)  # after the pool: no thread of its at a fork
        last_table = 0.0
        try:
            if pool is not None:
                self.log(f"running {planner.remaining()} trials on {pool.name}")
                for row in drive(pool, self.task, planner):
                    journal.append(row)
                    planner.finished(row)
                    bar.update(1)
                    self._check_metric(row)
                    if time.monotonic() - last_table > 2:
                        write_table(folder, journal.ordered(), self.metric)
                        last_table = time.monotonic()
        except KeyboardInterrupt:
            self.log(
                f"interrupted: {len(journal.rows)} of {total} trials are kept in {final}; "
                "run the same command again to resume"
            )
            raise
        finally:
            bar.close()
            if pool is not None:
                pool.close()
            write_table(folder, journal.ordered(), self.metric)  # in step with the journal
        rows = journal.ordered()
        if self.metric is None:
            first = next((r for r in rows if r["status"] == "ok"), None)
            self.metric = next(iter(first["metrics"])) if first else "metric"
            if not self.mode:
                try:
                    self.mode = metric_mode(self.metric)
                except InputError:  # the trials are done: rank them, and say how
                    self.mode = "min"
                    self.log(f"ranking by '{self.metric}', lower is better (pass mode= to say)")
        write_table(folder, rows, self.metric)
        workers_seen = len({r.get("worker") for r in rows if r.get("worker")})
        ran = pool.name if pool else f"none this run: all {len(rows)} trials were in the journal"
        about = {**about, "executor": f"{ran}; {workers_seen} distinct workers ran the trials"}
        result = SweepResult(final, rows, self.metric, self.mode, executor=ran)
        _report(folder, result, about)
        return result


def _bar(total, done, progress):
    import sys

    from tqdm.auto import tqdm

    enabled = sys.stderr.isatty() if progress is None else progress
    return tqdm(total=total, initial=done, unit="trial", disable=not enabled, leave=False)


class _ListPlanner:
    """A fixed list of trials (grid or random draws), skipping those the journal holds."""

    def __init__(self, trials, journal):
        self.total = len(trials)
        planned = {t.trial_id: t for t in trials}
        for tid, row in journal.rows.items():  # a journal from another plan is never mixed in
            t = planned.get(tid)
            if t is None or (t.config, t.seed) != (row.get("config"), row.get("seed")):
                raise InputError(
                    f"{journal.path}: trial {tid} there is {row.get('config')} seed "
                    f"{row.get('seed')}, which this sweep does not plan as trial {tid}; "
                    "choose another --out, or pass --overwrite"
                )
        self.todo = [t for t in trials if not journal.done(t.trial_id)]

    def remaining(self) -> int:
        return len(self.todo)

    def next(self, k: int) -> list:
        out, self.todo = self.todo[:k], self.todo[k:]
        return out

    def finished(self, row) -> None:
        pass


def _report(folder: str, result: SweepResult, about: dict) -> None:
    from gradstep.sweep import stats
    from gradstep.sweep.report import write_report

    ok = [r for r in result.rows if r["status"] == "ok" and result.metric in r["metrics"]]
    if result.rows and not ok and any(r["status"] == "ok" for r in result.rows):
        names = ", ".join(sorted(result.rows[0].get("metrics", {}))) or "none"
        raise InputError(f"metric '{result.metric}' is not among the trials' metrics ({names})")
    result.summary = stats.summarize(result.rows, result.metric, result.mode)
    result.comparison = stats.compare(result.rows, result.metric, result.mode)
    before = set(os.listdir(folder))
    title = f"Sweep: {os.path.basename(about.get('data') or '') or about['task']}"
    write_report(result.rows, folder, result.metric, result.mode, title, about)
    written = (set(os.listdir(folder)) - before) | {"report.html"}
    write_marker(folder, written)
