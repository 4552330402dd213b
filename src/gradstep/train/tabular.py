"""Training on a user's table: the library behind ``gradstep train`` / ``predict`` / ``evaluate``.

A run folder holds ``model.ckpt`` (weights, configuration, feature and target statistics, class
names: everything ``predict`` needs), ``metrics.json``, ``history.csv``, ``learning_curves.png``
and ``summary.txt``. The folder is built in a temporary folder beside it and moved into place
only when complete.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field

import numpy as np

import gradstep as gs
from gradstep import nn, optim
from gradstep.autograd import no_grad
from gradstep.data import DataLoader, StandardScaler, TensorDataset
from gradstep.data.tabular import InputError, check_columns, numeric_column, read_table
from gradstep.io import atomic_write_bytes
from gradstep.train.callbacks import EarlyStopping
from gradstep.train.loop import fit

LOSSES = {"mse": nn.MSELoss, "mae": nn.L1Loss, "huber": nn.HuberLoss, "ce": nn.CrossEntropyLoss}
OPTIMIZERS = {"sgd": optim.SGD, "adam": optim.Adam}


@dataclass
class TrainConfig:
    """Every choice of a training run; also the keys a ``--config run.toml`` may set."""

    target: str = ""
    task: str = "auto"  # auto | regression | classification
    features: list = field(default_factory=list)  # empty: every column but the target
    hidden: list = field(default_factory=lambda: [64, 32])
    activation: str = "relu"
    loss: str = "auto"  # auto | mse | mae | huber | ce
    optimizer: str = "adam"
    lr: float = 1e-3
    batch_size: int = 32
    epochs: int = 200
    val_fraction: float = 0.2
    patience: int = 20
    seed: int = 0

    @classmethod
    def from_dict(cls, d: dict, source: str) -> TrainConfig:
        known = {f.name: f for f in dataclasses.fields(cls)}
        out = cls()
        for key, value in d.items():
            if key not in known:
                raise InputError(f"{source}: unknown key '{key}' (known: {', '.join(known)})")
            setattr(out, key, value)
        return out

    def validate(self, source: str = "options", require_target: bool = True) -> TrainConfig:
        def bad(key, why):
            raise InputError(f"{source}: '{key}' {why}")

        checks = [
            (
                "target",
                isinstance(self.target, str) and (self.target != "" or not require_target),
                "must name a column",
            ),
            (
                "task",
                self.task in ("auto", "regression", "classification"),
                "must be auto, regression or classification",
            ),
            (
                "activation",
                self.activation in ("relu", "sigmoid", "tanh", "leaky_relu"),
                "must be relu, sigmoid, tanh or leaky_relu",
            ),
            ("loss", self.loss in ("auto", *LOSSES), f"must be one of auto, {', '.join(LOSSES)}"),
            ("optimizer", self.optimizer in OPTIMIZERS, "must be sgd or adam"),
            (
                "features",
                isinstance(self.features, list) and all(isinstance(f, str) for f in self.features),
                "must be a list of names",
            ),
            (
                "hidden",
                isinstance(self.hidden, list)
                and all(
                    isinstance(h, int) and not isinstance(h, bool) and h > 0 for h in self.hidden
                ),
                "must be a list of positive integers",
            ),
        ]
        for key, ok, why in checks:
            if not ok:
                bad(key, why)
        for key, lo, integer in (
            ("lr", 0, False),
            ("batch_size", 1, True),
            ("epochs", 1, True),
            ("patience", 0, True),
            ("seed", 0, True),
        ):
            v = getattr(self, key)
            if (
                isinstance(v, bool)
                or not isinstance(v, (int, float))
                or (integer and not isinstance(v, int))
            ):
                bad(key, f"must be {'an integer' if integer else 'a number'}, got {v!r}")
            if not np.isfinite(v) or v < lo or (key == "lr" and v <= 0):
                bad(key, f"must be {'positive' if key == 'lr' else f'>= {lo}'}, got {v!r}")
        vf = self.val_fraction
        if isinstance(vf, bool) or not isinstance(vf, (int, float)) or not 0 <= vf < 1:
            bad("val_fraction", f"must be a number in [0, 1), got {vf!r}")
        return self


def load_config_file(path) -> dict:
    """The keys of a TOML config file (errors name the file and line)."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    from gradstep.data.tabular import read_text

    text = read_text(path)
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise InputError(f"{path}: invalid TOML ({e})") from None


def _prepare(df, cfg: TrainConfig, path):
    """Feature matrix and names. Without explicit features every other column is one, except
    columns with no number at all (names, categories), which are skipped and reported; a
    mostly numeric column with a bad cell is an error naming line and column, never skipped."""
    import pandas as pd

    check_columns(df, [cfg.target], path)
    skipped = []
    features = cfg.features
    if not features:
        features = []
        for c in df.columns:
            if c == cfg.target:
                continue
            if pd.to_numeric(df[c].str.strip(), errors="coerce").notna().any():
                features.append(c)
            else:
                skipped.append(c)
    check_columns(df, features, path, "feature column")
    if cfg.target in features:
        raise InputError(f"{path}: the target '{cfg.target}' is also listed as a feature")
    if not features:
        raise InputError(f"{path}: no feature columns besides the target '{cfg.target}'")
    X = np.column_stack([numeric_column(df, c, path) for c in features])
    return X, features, skipped


def _atomic_folder(out_dir: str):
    out_dir = os.path.abspath(out_dir)
    os.makedirs(os.path.dirname(out_dir), exist_ok=True)
    return out_dir, tempfile.mkdtemp(prefix=".gradstep-run-", dir=os.path.dirname(out_dir))


def _move_into_place(tmp: str, out_dir: str) -> None:
    old = None
    if os.path.exists(out_dir):
        old = tmp + ".old"
        os.replace(out_dir, old)
    os.replace(tmp, out_dir)
    if old:
        shutil.rmtree(old, ignore_errors=True)


class TabularModel:
    """A trained model with everything needed to predict from raw CSV columns."""

    def __init__(
        self,
        model,
        config: TrainConfig,
        features,
        scaler,
        task,
        classes=None,
        y_mean=0.0,
        y_std=1.0,
    ):
        self.model, self.config, self.features = model, config, list(features)
        self.scaler, self.task, self.classes = scaler, task, classes
        self.y_mean, self.y_std = y_mean, y_std

    @classmethod
    def load(cls, run_dir) -> TabularModel:
        path = os.path.join(os.fspath(run_dir), "model.ckpt")
        if not os.path.exists(path):
            raise InputError(f"{run_dir}: no model.ckpt here; is it a folder from gradstep train?")
        state = gs.load(path)
        cfg = TrainConfig(**state["config"])
        n_out = len(state["classes"]) if state["task"] == "classification" else 1
        model = nn.mlp(len(state["features"]), cfg.hidden, n_out, cfg.activation)
        model.load_state_dict(state["model"])
        scaler = StandardScaler().load_state_dict(state["scaler"])
        return cls(
            model,
            cfg,
            state["features"],
            scaler,
            state["task"],
            state.get("classes"),
            state["y_mean"],
            state["y_std"],
        )

    def save(self, path) -> None:
        gs.save(
            {
                "model": self.model.state_dict(),
                "config": dataclasses.asdict(self.config),
                "features": self.features,
                "scaler": self.scaler.state_dict(),
                "task": self.task,
                "classes": self.classes,
                "y_mean": self.y_mean,
                "y_std": self.y_std,
            },
            path,
        )

    def predict_array(self, X: np.ndarray) -> np.ndarray:
        with no_grad():
            self.model.eval()
            out = self.model(self.scaler.transform(X)).data
        if self.task == "classification":
            return np.asarray(self.classes, dtype=object)[out.argmax(axis=1)]
        return out[:, 0].astype(np.float64) * self.y_std + self.y_mean

    def predict(self, df, path="<data>") -> np.ndarray:
        check_columns(df, self.features, path, "feature column")
        X = np.column_stack([numeric_column(df, c, path) for c in self.features])
        return self.predict_array(X)

    def evaluate(self, df, path="<data>") -> dict:
        check_columns(df, [self.config.target], path)
        pred = self.predict(df, path)
        if self.task == "classification":
            truth = df[self.config.target].str.strip().to_numpy(object)
            return {"accuracy": float(np.mean(pred == truth)), "n": len(truth)}
        y = numeric_column(df, self.config.target, path)
        return {
            "mae": float(np.mean(np.abs(pred - y))),
            "rmse": float(np.sqrt(np.mean((pred - y) ** 2))),
            "n": len(y),
        }


def train_tabular(data_path, cfg: TrainConfig, out_dir, verbose: int | None = None) -> dict:
    """Read ``data_path``, train as ``cfg`` says, write the run folder; return the metrics."""
    cfg.validate()
    df = read_table(data_path)
    X, features, skipped = _prepare(df, cfg, data_path)
    raw_y = df[cfg.target].str.strip()
    task = cfg.task
    if task == "auto":
        import pandas as pd

        # Mostly numbers: regression (a stray "n/a" is then reported, not taken as a class).
        numeric = pd.to_numeric(raw_y, errors="coerce").notna().mean()
        task = "regression" if numeric > 0.5 else "classification"
    classes, y_mean, y_std = None, 0.0, 1.0
    if task == "classification":
        if (raw_y == "").any():
            i = int(np.flatnonzero((raw_y == "").to_numpy())[0])
            raise InputError(f"{data_path} line {i + 2}, column '{cfg.target}': empty label")
        classes = sorted(raw_y.unique().tolist())
        if len(classes) < 2:
            raise InputError(
                f"{data_path}, column '{cfg.target}': only one class "
                f"('{classes[0]}'); classification needs at least two"
            )
        index = {c: i for i, c in enumerate(classes)}
        y = np.array([index[v] for v in raw_y], dtype=np.int64)
        loss = "ce" if cfg.loss == "auto" else cfg.loss
        if loss != "ce":
            raise InputError(f"options: loss '{loss}' does not fit classification; use ce")
    else:
        y = numeric_column(df, cfg.target, data_path)
        y_mean, y_std = float(y.mean()), float(y.std()) or 1.0
        y = ((y - y_mean) / y_std)[:, None]
        loss = "mse" if cfg.loss == "auto" else cfg.loss
        if loss == "ce":
            raise InputError("options: loss 'ce' needs --task classification")
    n = len(X)
    rng = np.random.default_rng(cfg.seed)
    perm = rng.permutation(n)
    n_val = int(round(cfg.val_fraction * n))
    if n_val and n - n_val < 1:
        raise InputError(f"{data_path}: {n} rows are too few for val_fraction {cfg.val_fraction}")
    tr, va = perm[n_val:], perm[:n_val]
    gs.manual_seed(cfg.seed)
    scaler = StandardScaler().fit(X[tr])
    Xs = scaler.transform(X)
    model = nn.mlp(X.shape[1], cfg.hidden, len(classes) if classes else 1, cfg.activation)
    opt = OPTIMIZERS[cfg.optimizer](model.parameters(), lr=cfg.lr)
    train_loader = DataLoader(TensorDataset(Xs[tr], y[tr]), cfg.batch_size, shuffle=True)
    val_loader = DataLoader(TensorDataset(Xs[va], y[va]), 1024) if n_val else None
    callbacks = [
        EarlyStopping(
            "val_loss" if n_val else "loss", patience=cfg.patience, restore_best_weights=True
        )
    ]
    metrics = ["accuracy"] if task == "classification" else []
    history = fit(
        model,
        LOSSES[loss](),
        opt,
        train_loader,
        val_loader,
        cfg.epochs,
        callbacks=callbacks,
        metrics=metrics,
        verbose=verbose,
    )
    if history.stop_reason and history.stop_reason.startswith("training stopped"):
        raise InputError(history.stop_reason)
    cfg = dataclasses.replace(cfg, task=task, loss=loss, features=features)
    result = TabularModel(model, cfg, features, scaler, task, classes, y_mean, y_std)
    final = {
        "task": task,
        "epochs_run": len(history.epochs),
        "stop_reason": history.stop_reason,
        "features": features,
        "skipped_non_numeric_columns": skipped,
        "train": result.evaluate(df.iloc[tr], data_path),
    }
    if n_val:
        final["validation"] = result.evaluate(df.iloc[va], data_path)
    out_dir, tmp = _atomic_folder(out_dir)
    try:
        result.save(os.path.join(tmp, "model.ckpt"))
        atomic_write_bytes(os.path.join(tmp, "metrics.json"), json.dumps(final, indent=2).encode())
        history.save_csv(os.path.join(tmp, "history.csv"))
        _plot_history(history, os.path.join(tmp, "learning_curves.png"))
        summary = [
            f"task: {task}, target: {cfg.target}, features: {', '.join(features)}"
            + (f" (skipped non-numeric: {', '.join(skipped)})" if skipped else ""),
            f"model: {len(features)} -> {' -> '.join(map(str, cfg.hidden))} -> "
            f"{len(classes) if classes else 1} ({cfg.activation}), loss {loss}, "
            f"{cfg.optimizer} lr {cfg.lr}",
            f"epochs run: {len(history.epochs)}",
            f"metrics: {json.dumps({k: final[k] for k in ('train', 'validation') if k in final})}",
        ]
        atomic_write_bytes(os.path.join(tmp, "summary.txt"), ("\n".join(summary) + "\n").encode())
        _move_into_place(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


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
