"""Training on a user's table: the library behind ``gradstep train`` / ``predict`` / ``evaluate``.

A run folder holds ``model.ckpt`` (weights, configuration, the table encoder, target statistics,
class names: everything ``predict`` needs), ``metrics.json``, ``history.csv``,
``learning_curves.png`` and ``summary.txt``. The folder is built under a temporary name beside
its destination and published only when complete (:mod:`gradstep.paths`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time

import numpy as np

import gradstep as gs
from gradstep import nn, optim
from gradstep.data import DataLoader, TensorDataset
from gradstep.data.encoder import TableEncoder, safe_moments
from gradstep.data.tabular import check_columns
from gradstep.data.target import infer_target
from gradstep.errors import InputError
from gradstep.io import atomic_write_bytes
from gradstep.paths import output_folder
from gradstep.train.callbacks import Callback, EarlyStopping, ProgressBar
from gradstep.train.config import TrainConfig, load_config_file
from gradstep.train.loop import fit
from gradstep.train.tabular_model import (
    TabularModel,
    check_model_memory,
    read_run_table,
)

__all__ = [
    "Rows",
    "TabularModel",
    "TrainConfig",
    "fit_frame",
    "load_config_file",
    "read_run_table",
    "select_rows",
    "train_tabular",
]

LOSSES = {"mse": nn.MSELoss, "mae": nn.L1Loss, "huber": nn.HuberLoss, "ce": nn.CrossEntropyLoss}
OPTIMIZERS = {"sgd": optim.SGD, "adam": optim.Adam}
# Below this many multiply-adds in the largest matrix product of a step, a second BLAS thread
# gains at most ~20% on an idle machine and loses up to 2.4x on a busy one (measured with
# benchmarks/blas_threads.py; docs/performance.md, "BLAS threads").
SMALL_GEMM = 4_000_000


def choose_threads(cfg: TrainConfig, n_in: int, n_out: int, batch: int) -> int | None:
    """BLAS threads for this run: ``cfg.threads`` if set, else 1 when the largest matrix product
    of a training step is under :data:`SMALL_GEMM` multiply-adds (the course's models), else
    None (the library's default)."""
    if cfg.threads:
        return cfg.threads
    widths = [n_in, *cfg.hidden, n_out]
    largest = max(a * b for a, b in zip(widths, widths[1:])) * batch
    return 1 if largest < SMALL_GEMM else None


def train_tabular(
    data_path,
    cfg: TrainConfig,
    out_dir,
    verbose: int | None = None,
    overwrite: bool = False,
    config_path=None,
    log=None,
) -> dict:
    """Read ``data_path``, train as ``cfg`` says, write the run folder; return the metrics.

    ``out_dir`` follows :mod:`gradstep.paths`: never an input, refused if it exists unless
    ``overwrite`` (and then only if it is a gradstep run folder), published only when complete.
    ``log`` (a function of one line) hears what was decided: the task and why, each column.
    """
    cfg.validate()
    inputs = [data_path, config_path]
    with output_folder(out_dir, kind="run", inputs=inputs, overwrite=overwrite) as tmp:
        return _train_into(data_path, cfg, tmp, verbose, log or (lambda line: None))


def _select_features(df, cfg: TrainConfig, path) -> list[str]:
    check_columns(df, [cfg.target], path)
    features = cfg.features or [c for c in df.columns if c != cfg.target]
    check_columns(df, features, path, "feature column")
    if cfg.target in features:
        raise InputError(f"{path}: the target '{cfg.target}' is also listed as a feature")
    if not features:
        raise InputError(f"{path}: no feature columns besides the target '{cfg.target}'")
    return features


def _train_into(data_path, cfg: TrainConfig, tmp: str, verbose, log) -> dict:
    size = os.path.getsize(data_path) if os.path.isfile(data_path) else 0
    if size > 10 * 2**20:
        log(f"reading {data_path} ({size / 2**20:.0f} MiB)")
    started = time.perf_counter()
    df = read_run_table(data_path, cfg)
    if size > 10 * 2**20:
        log(
            f"read {len(df):,} rows x {df.shape[1]} columns"
            f" in {time.perf_counter() - started:.1f} s"
        )
    result, final, history, encoder = fit_frame(df, cfg, data_path, verbose, log)
    _write_run(tmp, result, final, history, encoder)
    return final


@dataclasses.dataclass
class Rows:
    """The rows a run trains on, as :func:`select_rows` chose them."""

    df: object  # the kept rows (a DataFrame)
    y: np.ndarray  # their target values (class codes or numbers)
    target: object  # what infer_target found (task, classes, why)
    features: list[str]
    train: np.ndarray  # positions in ``df`` of the training rows, sorted
    val: np.ndarray  # and of the validation rows
    dropped: dict
    sep: str
    decimal: str


def select_rows(df, cfg: TrainConfig, data_path, log=lambda line: None) -> Rows:
    """The task, the rows kept and the training/validation split of a run on ``df`` (read by
    :func:`read_run_table`): the same for ``train``, a sweep's trials and ``features``'s
    permutation importance, which scores the validation rows a run never trained on."""
    features = _select_features(df, cfg, data_path)
    sep, decimal = df.attrs.get("sep", cfg.sep or ","), df.attrs.get("decimal", ".")
    if decimal == "," and not cfg.decimal:
        log("decimal mark ',' (the file's first lines write numbers so; --decimal . to refuse)")
    target = infer_target(df[cfg.target], cfg.target, data_path, cfg.task, sep, decimal)
    log(f"task: {target.task} (target '{cfg.target}': {target.why}; --task overrides)")
    keep = target.present
    dropped = {"missing_target": int((~keep).sum())}
    if cfg.missing == "error" and dropped["missing_target"]:
        i = int(np.flatnonzero(~keep)[0])
        raise InputError(
            f"{data_path} line {df.index[i]}, column '{cfg.target}': missing target and "
            "--missing error"
        )
    if cfg.missing == "drop":
        probe = TableEncoder(cfg.missing, sep, decimal).fit(df[keep], features, data_path)
        incomplete = probe.missing_rows(df)
        dropped["missing_feature"] = int((incomplete & keep).sum())
        keep = keep & ~incomplete
    for what, n in dropped.items():
        if n:
            log(f"dropped {n} rows with {what.replace('_', ' ')} values")
    df, y = df[keep], target.values[keep]
    n = len(df)
    if n == 0:
        raise InputError(f"{data_path}: no rows left after dropping missing values")
    rng = np.random.default_rng(cfg.seed)
    perm = rng.permutation(n)
    n_val = int(round(cfg.val_fraction * n))
    if n_val and n - n_val < 1:
        raise InputError(f"{data_path}: {n} rows are too few for val_fraction {cfg.val_fraction}")
    tr, va = np.sort(perm[n_val:]), np.sort(perm[:n_val])
    return Rows(df, y, target, features, tr, va, dropped, sep, decimal)


def fit_frame(df, cfg: TrainConfig, data_path, verbose=0, log=lambda line: None):
    """Train on the table ``df`` (read by :func:`read_run_table` from ``data_path``, which
    only names it in messages) as ``cfg`` says; return ``(TabularModel, metrics, History,
    TableEncoder)`` and write nothing. ``train`` writes these into a run folder; a sweep's
    trial keeps the metrics and the learning curves."""
    from threadpoolctl import threadpool_limits

    cfg.validate()
    rows = select_rows(df, cfg, data_path, log)
    df, y, target, features, dropped = rows.df, rows.y, rows.target, rows.features, rows.dropped
    sep, decimal, tr, va = rows.sep, rows.decimal, rows.train, rows.val
    n_val = len(va)
    encoder = TableEncoder(cfg.missing, sep, decimal)
    encoder.fit(df.iloc[tr], features, data_path, schema=df)
    log("columns:")
    for line in encoder.describe():
        log(line)
    X = encoder.transform(df, data_path)
    classes, y_mean, y_std = target.classes, 0.0, 1.0
    if target.task == "classification":
        if len(np.unique(y[tr])) < 2:
            raise InputError(
                f"{data_path}, column '{cfg.target}': only one class "
                f"('{classes[int(y[tr][0])]}') in the training rows; classification needs two"
            )
        loss = "ce" if cfg.loss == "auto" else cfg.loss
        if loss != "ce":
            raise InputError(f"options: loss '{loss}' does not fit classification; use ce")
        y = y.astype(np.int64)
    else:
        mean, scale = safe_moments(y[tr][:, None])
        y_mean, y_std = float(mean[0]), float(scale[0])
        y = ((y - y_mean) / y_std)[:, None]
        loss = "mse" if cfg.loss == "auto" else cfg.loss
        if loss == "ce":
            raise InputError("options: loss 'ce' needs --task classification")
    n_out = len(classes) if classes else 1
    auto = cfg.for_rows(len(tr))
    check_model_memory([X.shape[1], *cfg.hidden, n_out], auto["batch_size"], True, "--hidden")
    gs.manual_seed(cfg.seed)
    model = nn.mlp(X.shape[1], cfg.hidden, n_out, cfg.activation)
    opt = OPTIMIZERS[cfg.optimizer](model.parameters(), lr=cfg.lr)
    train_loader = DataLoader(TensorDataset(X[tr], y[tr]), auto["batch_size"], shuffle=True)
    val_loader = DataLoader(TensorDataset(X[va], y[va]), 1024) if n_val else None
    stopper = EarlyStopping(
        "val_loss" if n_val else "loss",
        patience=auto["patience"],
        min_delta=auto["min_delta"],
        restore_best_weights=True,
    )
    chosen = [
        f"{k.replace('_', ' ')} {auto[k]}"
        for k in ("batch_size", "patience")
        if getattr(cfg, k) == "auto"
    ]
    if chosen:
        log(f"{', '.join(chosen)} (chosen for {len(tr):,} training rows)")
    loss_fn, compiled = LOSSES[loss](), True
    if target.task == "classification" and cfg.class_weight == "balanced":
        counts = np.bincount(y[tr], minlength=n_out).astype(np.float64)
        weight = np.where(counts > 0, len(tr) / (n_out * np.maximum(counts, 1)), 0.0)
        # PyTorch's weighted mean; eager: the per-row weights follow each batch's labels
        loss_fn, compiled = nn.CrossEntropyLoss(weight=weight), False
        log(
            "class weights (balanced): "
            + ", ".join(f"{c}={w:.3g}" for c, w in zip(classes, weight))
        )
    threads = choose_threads(cfg, X.shape[1], n_out, auto["batch_size"])
    progress = _progress(verbose, log)
    with threadpool_limits(limits=threads):
        history = fit(
            model,
            loss_fn,
            opt,
            train_loader,
            val_loader,
            cfg.epochs,
            callbacks=[stopper, *progress],
            metrics=["accuracy"] if target.task == "classification" else [],
            verbose=0,  # progress as chosen above; a failed run's reason is raised, not printed
            compile=compiled,
        )
    if history.stop_reason and history.stop_reason.startswith("training stopped"):
        raise InputError(history.stop_reason)
    if history.compile_backend == "native":
        how = "loaded from the cache" if history.compile_cached else "compiled (cached)"
        log(f"native step (numba): {how} in {history.compile_seconds:.1f} s")
    elif not compiled:
        log("step: eager (balanced class weights follow each batch's labels)")
    elif history.compile_notice:
        log(f"{history.compile_notice}: replayed with NumPy")
    # the decimal mark as read, so a prediction file is read the same way even where its
    # first lines happen to hold no decimal comma
    cfg = dataclasses.replace(
        cfg, task=target.task, loss=loss, features=encoder.used, decimal=decimal
    )
    result = TabularModel(
        model,
        cfg,
        encoder,
        target.task,
        classes,
        y_mean,
        y_std,
        target_format=target.number_format,
    )
    final = {
        "task": target.task,
        "task_reason": target.why,
        "epochs_run": len(history.epochs),
        "weights_from_epoch": (
            stopper.best_epoch + 1 if stopper.best_epoch is not None else len(history.epochs)
        ),
        "stop_reason": history.stop_reason,
        "features": encoder.used,
        "skipped_columns": {c.name: c.why for c in encoder.skipped_},
        "dropped_rows": dropped,
        "blas_threads": threads or "default",
        "step": history.compile_backend,  # native (numba), replay or eager
        "train": result.evaluate(df.iloc[tr], data_path, X[tr]),
    }
    if n_val:
        final["validation"] = result.evaluate(df.iloc[va], data_path, X[va])
    _refuse_divergence(final, stopper, cfg, len(classes) if classes else 0)
    return result, final, history, encoder


class EpochLog(Callback):
    """One line per epoch (where no progress bar can be drawn: a log file, a pipe)."""

    def __init__(self, log):
        self.log = log

    def on_epoch_end(self, epoch, logs):
        parts = " ".join(f"{k}={v:.4g}" for k, v in logs.items() if isinstance(v, float))
        self.log(f"epoch {epoch + 1}/{self.trainer.epochs}: {parts}")


def _progress(verbose, log) -> list:
    """A tqdm bar on a terminal, one line per epoch otherwise; nothing with verbose=0."""
    if verbose == 0:
        return []
    if verbose or sys.stderr.isatty():
        return [ProgressBar(enabled=True)]
    return [EpochLog(log)]


def _refuse_divergence(final: dict, stopper, cfg: TrainConfig, n_classes: int) -> None:
    """A run whose kept model is far worse than a constant guess diverged (a learning rate too
    large, typically), even if every number stayed finite: say so rather than save it."""
    scores = final.get("validation", final["train"])
    where = "validation" if "validation" in final else "training"
    if n_classes:
        bad = stopper.best > 5 * np.log(n_classes)
        what = f"loss {stopper.best:.4g} (a uniform guess scores {np.log(n_classes):.3g})"
    else:
        bad = scores["r2"] < -3
        what = f"R² {scores['r2']:.4g} (predicting the mean scores 0)"
    if bad:
        raise InputError(
            f"training diverged: the best model (epoch {final['weights_from_epoch']}) has "
            f"{where} {what}; try a smaller --lr (now {cfg.lr}) or --optimizer adam"
        )


def _headline(final: dict) -> dict:
    keep = ("accuracy", "macro_f1", "mae", "rmse", "r2", "n")
    return {
        k: {m: final[k][m] for m in keep if m in final[k]}
        for k in ("train", "validation")
        if k in final
    }


def _write_run(tmp, result: TabularModel, final: dict, history, encoder) -> None:
    cfg = result.config
    result.save(os.path.join(tmp, "model.ckpt"))
    atomic_write_bytes(os.path.join(tmp, "metrics.json"), json.dumps(final, indent=2).encode())
    history.save_csv(os.path.join(tmp, "history.csv"))
    _plot_history(history, os.path.join(tmp, "learning_curves.png"))
    n_out = len(result.classes) if result.classes else 1
    summary = [
        f"task: {result.task} ({final['task_reason']}), target: {cfg.target}",
        "columns:",
        *encoder.describe(),
        f"model: {encoder.n_outputs} inputs -> {' -> '.join(map(str, cfg.hidden))} -> "
        f"{n_out} ({cfg.activation}), loss {cfg.loss}, {cfg.optimizer} lr {cfg.lr}",
        f"epochs run: {final['epochs_run']}; weights kept from epoch {final['weights_from_epoch']}",
        f"metrics: {json.dumps(_headline(final))}",
    ]
    atomic_write_bytes(os.path.join(tmp, "summary.txt"), ("\n".join(summary) + "\n").encode())


def _plot_history(history, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    h = history.history
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(h["epoch"], h["loss"], label="training loss")
    if "val_loss" in h:
        ax.plot(h["epoch"], h["val_loss"], label="validation loss")
    ax.set(xlabel="epoch", ylabel="loss", yscale="log", title="Learning curves")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
