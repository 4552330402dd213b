"""What one trial runs, on whichever worker gets it.

A *task* is a picklable callable ``task(config, seed, data) -> {"metrics": {...}, "curve":
{...}}``. Three kinds: :class:`TabularTask` (``gradstep train``'s options on a CSV),
:class:`EstimatorTask` (a scikit-learn style estimator on ``(X, y)``) and :class:`FunctionTask`
(a user's function of ``(config, seed)``, or of ``(config, seed, data)`` when the sweep was
given data). :func:`run_trial` wraps any of them: it times the trial, names the worker, and
turns an exception into a ``failed`` row and a diverged training into a ``diverged`` one, so
one bad configuration never stops a sweep.

Trials in one process run one at a time (a lock): the engine's seed, grad mode and default
dtype are process-wide, so two trials on threads of one worker would disturb each other's
numbers. Parallelism comes from processes (a process pool, Dask workers with one thread each).
"""

from __future__ import annotations

import contextlib
import inspect
import math
import os
import socket
import sys
import threading
import time

from gradstep.errors import InputError

_LOCK = threading.Lock()
_DATA: dict[str, object] = {}  # data installed once per worker process, by token


class DivergedError(Exception):
    """A trial's training diverged (a learning rate too large): recorded as ``diverged``."""


def install_data(token: str, data) -> None:
    """A process pool's initializer: keep the sweep's data in this worker for every trial."""
    _DATA[token] = data


class DataToken:
    """Stands for data installed in the worker by :func:`install_data` (sent once per worker,
    not once per trial)."""

    def __init__(self, token: str):
        self.token = token

    def get(self):
        return _DATA[self.token]


def worker_name() -> str:
    """The Dask worker's address on a Dask worker, else host:pid."""
    if "distributed" in sys.modules:
        try:
            from distributed import get_worker

            return get_worker().address
        except (ValueError, ImportError):
            pass
    return f"{socket.gethostname()}:{os.getpid()}"


def run_trial(task, trial, data) -> dict:
    """Run one trial; always return its journal row (never raise for the trial's own errors)."""
    if isinstance(data, DataToken):
        data = data.get()
    row = {
        "trial_id": trial.trial_id,
        "config_id": trial.config_id,
        "config": trial.config,
        "seed": trial.seed,
    }
    started = time.perf_counter()
    with _LOCK:
        try:
            out = task(dict(trial.config), trial.seed, data)
            metrics = _metrics(out)
            bad = [k for k, v in metrics.items() if not math.isfinite(v)]
            if bad:
                raise DivergedError(f"metric '{bad[0]}' is {metrics[bad[0]]}")
            row.update(status="ok", metrics=metrics, message="")
            row["curve"] = out.get("curve", {}) if isinstance(out, dict) else {}
        except DivergedError as e:
            row.update(status="diverged", metrics={}, message=str(e))
        except InputError as e:
            diverged = str(e).startswith(("training diverged", "training stopped"))
            row.update(status="diverged" if diverged else "failed", metrics={}, message=str(e))
        except Exception as e:  # the sweep goes on; the row says what happened
            row.update(status="failed", metrics={}, message=f"{type(e).__name__}: {e}")
    row["seconds"] = round(time.perf_counter() - started, 6)
    row["worker"] = worker_name()
    return row


def _metrics(out) -> dict:
    metrics = out.get("metrics", out) if isinstance(out, dict) else out
    if not isinstance(metrics, dict) or not metrics:
        raise TypeError(f"the train function must return a dict of metrics, got {out!r}")
    clean = {}
    for k, v in metrics.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)) and not hasattr(v, "item"):
            raise TypeError(f"metric '{k}' is {v!r}, not a number")
        clean[str(k)] = float(v)
    return clean


class FunctionTask:
    """A user's ``train(config, seed)`` or ``train(config, seed, data)``."""

    def __init__(self, fn):
        self.fn = fn
        try:
            self.takes_data = len(inspect.signature(fn).parameters) >= 3
        except (TypeError, ValueError):
            self.takes_data = False

    def __call__(self, config, seed, data):
        return self.fn(config, seed, data) if self.takes_data else self.fn(config, seed)

    def describe(self) -> dict:
        """The function's name and a digest of its source: an edited function is another
        sweep (refused in the same --out), not the old results reused."""
        import hashlib

        fn = self.fn
        out = {"function": f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', fn)}"}
        with contextlib.suppress(OSError, TypeError):  # no source: a builtin, a C function
            out["source_sha256"] = hashlib.sha256(inspect.getsource(fn).encode()).hexdigest()
        return out


class EstimatorTask:
    """A scikit-learn style estimator: cloned, given the config with ``set_params`` and the
    seed as ``random_state``, fitted on a split of ``(X, y)`` made from the seed
    (``train_test_split``), scored on the held-out rows (``val_score``: R² or accuracy, as
    ``score`` says) and the training rows (``train_score``)."""

    def __init__(self, estimator, val_fraction: float = 0.2):
        self.estimator = estimator
        self.val_fraction = val_fraction

    def __call__(self, config, seed, data):
        from sklearn.base import clone
        from sklearn.model_selection import train_test_split

        if data is None:
            raise InputError("an estimator sweep needs data=(X, y)")
        X, y = data
        est = clone(self.estimator).set_params(**config)
        if "random_state" in est.get_params():
            est.set_params(random_state=seed)
        Xtr, Xva, ytr, yva = train_test_split(X, y, test_size=self.val_fraction, random_state=seed)
        est.fit(Xtr, ytr)
        metrics = {"val_score": est.score(Xva, yva), "train_score": est.score(Xtr, ytr)}
        curve = {}
        for name in ("loss_curve_", "validation_loss_curve_"):
            if hasattr(est, name):
                curve[name.replace("_curve_", "").replace("validation", "val")] = [
                    float(v) for v in getattr(est, name)
                ]
        return {"metrics": metrics, "curve": curve}

    def describe(self) -> dict:
        return {"estimator": repr(self.estimator), "val_fraction": self.val_fraction}


SCORES = ("rmse", "mae", "r2", "accuracy", "macro_f1")  # what evaluate() gives, by task


class TabularTask:
    """``gradstep train``'s options on a CSV: the fixed options, plus the swept ones and the
    seed per trial. The table is read once by the driver and shipped to each worker once."""

    def __init__(self, data_path, options: dict, source: str = "options"):
        from gradstep.train.config import TrainConfig

        self.data_path = os.path.abspath(os.fspath(data_path))
        self.options = normalize_options(options, source, fixed=True)
        TrainConfig.from_dict({k: v for k, v in self.options.items()}, source)

    def config(self, swept: dict, seed: int):
        from gradstep.train.config import TrainConfig

        opts = {**self.options, **swept, "seed": seed}
        opts.pop("features", None)
        return TrainConfig.from_dict(opts, "space")

    def read(self):
        """The table, as ``gradstep train`` reads it (in the driver: errors surface at once)."""
        from gradstep.train.tabular_model import read_run_table

        return read_run_table(self.data_path, self.config({}, 0))

    def __call__(self, config, seed, df):
        from gradstep.train.tabular import fit_frame

        cfg = self.config(config, seed)
        cfg.features = self.features(df, cfg, config.get("features", self.options.get("features")))
        cfg.validate("space")
        _, final, history, _ = fit_frame(df, cfg, self.data_path, verbose=0)
        metrics = {"epochs_run": final["epochs_run"]}
        for part, prefix in (("train", "train_"), ("validation", "val_")):
            for k, v in final.get(part, {}).items():
                if isinstance(v, (int, float)) and not isinstance(v, bool) and k in SCORES:
                    metrics[prefix + k] = v
        h = history.history
        curve = {k: [float(v) for v in h[k]] for k in ("loss", "val_loss") if k in h}
        return {"metrics": metrics, "curve": curve}

    def features(self, df, cfg, value) -> list:
        """The swept ``features`` option: ``"all"``, ``"top:K"`` (the K best columns by their
        F score on this seed's training rows only: ranking on every row would leak the
        validation rows into the choice), or a list of columns."""
        if value is None or value == []:
            return []
        from gradstep.sweep.features import parse_features_option, top_features
        from gradstep.train.tabular import select_rows

        columns = [c for c in df.columns if c != cfg.target]
        kind, arg = parse_features_option(value, columns)
        if kind != "top":
            return arg or []
        rows = select_rows(df, cfg, self.data_path)
        return top_features(rows.df, cfg, self.data_path, arg, rows.train)

    def describe(self) -> dict:
        # the file's name only: its digest (in the identity) says whether it is the same data,
        # so a moved project folder or a relative --data still resumes
        return {"data": os.path.basename(self.data_path), "options": self.options}


def normalize_options(options: dict, source: str, fixed: bool = False) -> dict:
    """``gradstep train``'s option names as the CLI or a TOML file writes them (``batch-size``
    or ``batch_size``; ``hidden = "64,32"`` or ``[64, 32]``), as TrainConfig's fields."""
    from gradstep.train.config import TrainConfig

    out = {}
    known = set(TrainConfig.__dataclass_fields__)
    for key, value in options.items():
        name = key.replace("-", "_")
        if not fixed and name == "seed":
            raise InputError(f"{source}: 'seed' is set per trial from seeds = [...]; not an option")
        if not fixed and name == "target":
            raise InputError(f"{source}: 'target' is fixed for the whole sweep; not an option")
        if name not in known:
            raise InputError(
                f"{source}: unknown option '{key}' (known: {', '.join(sorted(known))})"
            )
        out[name] = hidden_list(value, source) if name == "hidden" else value
    return out


def hidden_list(value, source: str):
    if isinstance(value, str):
        try:
            return [int(v) for v in value.split(",") if v.strip()]
        except ValueError:
            raise InputError(f"{source}: hidden {value!r} is not a list of integers") from None
    if isinstance(value, int) and not isinstance(value, bool):
        return [value]
    return value
