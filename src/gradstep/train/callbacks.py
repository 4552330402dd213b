"""Callbacks: hooks into the fit loop with a ``logs`` dict, as in Keras."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import sys

from gradstep.io import atomic_write_bytes, clean_temp_files


class Callback:
    """Override any hook. ``self.trainer`` is set before training starts; setting
    ``self.trainer.stop_training = True`` ends training after the current epoch."""

    trainer = None

    def on_train_begin(self, logs: dict) -> None: ...
    def on_epoch_begin(self, epoch: int, logs: dict) -> None: ...
    def on_before_step(self, batch: int, logs: dict) -> None:
        """After backward, before the optimizer's update: every parameter's gradient is this
        batch's (PyTorch Lightning's ``on_before_optimizer_step``). Not called for a batch
        whose non-finite loss stopped training."""

    def on_batch_end(self, batch: int, logs: dict) -> None: ...
    def on_epoch_logs(self, epoch: int, logs: dict) -> None:
        """Add values to this epoch's ``logs`` before any callback's on_epoch_end, so the
        callbacks that monitor them (EarlyStopping, ModelCheckpoint) and History see them,
        whatever the order of the callbacks list."""

    def on_epoch_end(self, epoch: int, logs: dict) -> None: ...
    def after_epoch_end(self, epoch: int, logs: dict) -> None:
        """After every callback's on_epoch_end: the epoch is complete (for checkpoints)."""

    def on_train_end(self, logs: dict) -> None: ...

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None: ...


class History(Callback):
    """Per-epoch logs: ``history.history["val_loss"]`` is the list of validation losses."""

    def __init__(self):
        self.epochs: list[dict] = []
        self.stop_reason: str | None = None
        self.compile_seconds = 0.0  # spent compiling native steps (or loading them)
        self.compile_backend = "eager"  # what ran the training steps: native, replay or eager
        self.compile_notice: str | None = None  # why a native step was not made
        self.compile_cached = False  # every native step came from the disk cache, none compiled

    @property
    def history(self) -> dict[str, list]:
        keys = sorted({k for e in self.epochs for k in e})
        return {k: [e.get(k) for e in self.epochs] for k in keys}

    def on_epoch_end(self, epoch, logs):
        self.epochs.append(dict(logs))

    def state_dict(self):
        return {"epochs": [dict(e) for e in self.epochs]}

    def load_state_dict(self, state):
        self.epochs = [dict(e) for e in state["epochs"]]

    def save_json(self, path) -> None:
        body = {"epochs": self.epochs, "stop_reason": self.stop_reason}
        atomic_write_bytes(path, json.dumps(body, indent=2).encode())

    def save_csv(self, path) -> None:
        keys = ["epoch"] + [k for k in self.history if k != "epoch"]
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=keys)
        w.writeheader()
        for e in self.epochs:
            w.writerow({k: e.get(k) for k in keys})
        atomic_write_bytes(path, buf.getvalue().encode())


class _Monitor(Callback):
    def __init__(self, monitor: str, mode: str, min_delta: float = 0.0):
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        self.monitor, self.mode, self.min_delta = monitor, mode, abs(min_delta)
        self.best = math.inf if mode == "min" else -math.inf

    def _value(self, logs: dict) -> float:
        if self.monitor not in logs:
            hint = (
                "add GradientNorm(full=True) to the callbacks to get it"
                if self.monitor == "grad_norm_full"
                else "add GradientNorm() to the callbacks to get it"
                if self.monitor == "grad_norm"
                else "give fit() a val_loader to get 'val_loss'"
            )
            raise KeyError(
                f"{type(self).__name__} monitors {self.monitor!r}, which the logs do not have "
                f"(they have {sorted(logs)}); {hint}"
            )
        return float(logs[self.monitor])

    def _improved(self, value: float) -> bool:
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta


class EarlyStopping(_Monitor):
    """Stop when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs.

    With ``restore_best_weights`` the model ends with the weights of its best epoch.
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        patience: int = 0,
        min_delta: float = 0.0,
        mode: str = "min",
        restore_best_weights: bool = False,
    ):
        super().__init__(monitor, mode, min_delta)
        if patience < 0:
            raise ValueError(f"EarlyStopping: patience must be >= 0, got {patience}")
        self.patience, self.restore_best_weights = patience, restore_best_weights
        self.wait, self.best_epoch, self.best_weights, self.stopped_epoch = 0, None, None, None

    def on_train_begin(self, logs):
        """A new run starts afresh (Keras does this too): reused on a second model, the first
        run's best must not stop it. A resumed run keeps the state its checkpoint restored."""
        if not getattr(self.trainer, "resumed", False):
            self.best = math.inf if self.mode == "min" else -math.inf
            self.wait, self.best_epoch, self.best_weights, self.stopped_epoch = 0, None, None, None

    def on_epoch_end(self, epoch, logs):
        value = self._value(logs)
        if self._improved(value):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best_weights:
                self.best_weights = self.trainer.model.state_dict()
        else:
            self.wait += 1
            if self.wait > self.patience:
                self.stopped_epoch = epoch
                self.trainer.stop_training = True
                self.trainer.stop_reason = (
                    f"early stopping after epoch {epoch + 1}: {self.monitor} has not improved "
                    f"for {self.wait} epochs (best {self.best:.6g} at epoch {self.best_epoch + 1})"
                )

    def on_train_end(self, logs):
        if self.restore_best_weights and self.best_weights is not None:
            self.trainer.model.load_state_dict(self.best_weights)

    def state_dict(self):
        out = {"best": self.best, "wait": self.wait, "best_epoch": self.best_epoch}
        if self.best_weights is not None:
            out["best_weights"] = self.best_weights
        return out

    def load_state_dict(self, state):
        self.best, self.wait, self.best_epoch = state["best"], state["wait"], state["best_epoch"]
        self.best_weights = state.get("best_weights")


def _own_folder(folder: str):
    """An exclusive lock on ``folder``'s ``.gradstep-lock`` for this run (released when the
    returned file is closed, or by the kernel when the process dies, so a stale lock from a
    killed run never blocks); the file records the owner's PID for the message."""
    path = os.path.join(folder, ".gradstep-lock")
    f = open(path, "a+")  # noqa: SIM115 - held open for the whole run
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks
        return f
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.seek(0)
        owner = f.read().strip() or "?"
        f.close()
        raise RuntimeError(
            f"checkpoint folder {folder} is in use by another training run (pid {owner}); give "
            "each run its own folder"
        ) from None
    f.seek(0)
    f.truncate()
    f.write(str(os.getpid()))
    f.flush()
    return f


class ModelCheckpoint(_Monitor):
    """Write ``last.ckpt`` (the whole training state, to resume from) after every epoch, or
    every ``every_n_batches`` batches, and ``best.ckpt`` (the model's state_dict) whenever
    ``monitor`` improves. Writes are atomic; leftovers of a killed run are removed at start."""

    def __init__(
        self,
        dirpath,
        monitor: str = "val_loss",
        mode: str = "min",
        save_best: bool = True,
        every_n_batches: int | None = None,
    ):
        super().__init__(monitor, mode)
        self.dirpath, self.save_best, self.every_n_batches = (
            os.fspath(dirpath),
            save_best,
            every_n_batches,
        )
        self.last_path = os.path.join(self.dirpath, "last.ckpt")
        self.best_path = os.path.join(self.dirpath, "best.ckpt")

    def on_train_begin(self, logs):
        os.makedirs(self.dirpath, exist_ok=True)
        self._lock = _own_folder(self.dirpath)
        clean_temp_files(self.dirpath)  # only now: no live run writes here

    def on_train_end(self, logs):
        lock, self._lock = getattr(self, "_lock", None), None
        if lock is not None:
            lock.close()  # releases the flock

    def on_batch_end(self, batch, logs):
        n = self.every_n_batches
        if n and (batch + 1) % n == 0 and not self.trainer.at_epoch_end:
            self.trainer.save_checkpoint(self.last_path)

    def on_epoch_end(self, epoch, logs):
        from gradstep.io import save

        if self.save_best and self.monitor in logs and self._improved(self._value(logs)):
            self.best = self._value(logs)
            save(
                {"model": self.trainer.model.state_dict(), "epoch": epoch, self.monitor: self.best},
                self.best_path,
            )

    def after_epoch_end(self, epoch, logs):
        self.trainer.save_checkpoint(self.last_path)

    def state_dict(self):
        return {"best": self.best}

    def load_state_dict(self, state):
        self.best = state["best"]


def parameter_grad_norm(parameters) -> float:
    """The L2 norm of the gradient over all ``parameters`` together (float64 sums; parameters
    without a gradient count as zero): sqrt(sum over parameters of |grad|^2)."""
    total = 0.0
    for p in parameters:
        g = p._grad
        if g is not None:
            g = g.ravel().astype("float64")
            total += g.dot(g)
    return math.sqrt(float(total))


class GradientNorm(Callback):
    """Log the L2 norm of the gradient over all of the model's parameters, every epoch.

    ``logs["grad_norm"]`` (and so ``history.history["grad_norm"]``) is the mean over the
    epoch's batches of each batch's gradient norm |g_b|, read after backward and before the
    optimizer's update (``fit`` itself never clips a gradient: this is the gradient as
    backward left it; PyTorch Lightning logs the same quantity, per step, as
    ``grad_2.0_norm_total``). A replayed step (``fit(compile="replay")``) writes the same
    gradients as eager execution, bit for bit; a native one (the default with numba) equal to
    rounding, so the value depends on ``compile`` only in its last digits.

    A mini-batch gradient is noisy: near a critical point |g_b| stays at the noise level while
    the full gradient goes to zero. ``full=True`` also logs ``grad_norm_full``: the norm of the
    gradient of the training loss over the whole training set, at the weights the epoch ends
    with, in eval mode (dropout off). It costs one more forward and backward pass over the
    training data each epoch, batch by batch in the dataset's order (weighted by batch size:
    exact for a loss that is a mean over rows; with ``drop_last`` the last partial batch is
    left out), and it draws no random numbers, so a run stays bit-identical to one without it.

    Both values are in ``logs`` before any callback's ``on_epoch_end``, so
    ``EarlyStopping(monitor="grad_norm")`` works wherever GradientNorm is in the list.
    """

    def __init__(self, full: bool = False):
        self.full = bool(full)
        self._sum, self._count = 0.0, 0

    def on_train_begin(self, logs):
        self._params = list(self.trainer.model.parameters())
        if not getattr(self.trainer, "resumed", False):  # a resume keeps its epoch's partial sum
            self._sum, self._count = 0.0, 0

    def on_before_step(self, batch, logs):
        self._sum += parameter_grad_norm(self._params)
        self._count += 1

    def on_epoch_logs(self, epoch, logs):
        logs["grad_norm"] = self._sum / self._count if self._count else math.nan
        self._sum, self._count = 0.0, 0
        if self.full:
            logs["grad_norm_full"] = _full_gradient_norm(self.trainer)

    def state_dict(self):
        # empty at an epoch's end, so an epoch-end checkpoint does not require this callback
        return {"sum": self._sum, "count": self._count} if self._count else {}

    def load_state_dict(self, state):
        self._sum, self._count = float(state["sum"]), int(state["count"])


def _full_gradient_norm(trainer) -> float:
    """|grad| of the mean training loss over the training loader's rows, in eval mode. The
    parameters' gradients (the last batch's) are put back after."""
    import numpy as np

    model, loss_fn, loader = trainer.model, trainer.loss_fn, trainer._loader
    params = [p for p in model.parameters() if p.requires_grad]
    kept, was_training = [p._grad for p in params], model.training
    sums, rows = [0.0] * len(params), 0
    model.eval()
    try:
        for xb, yb in loader.batches(np.arange(len(loader.dataset))):
            for p in params:
                p._grad = None
            loss_fn(model(xb), yb).backward()
            n = len(yb)
            for i, p in enumerate(params):
                if p._grad is not None:
                    sums[i] = sums[i] + p._grad.astype(np.float64) * n
            rows += n
    finally:
        for p, g in zip(params, kept):
            p._grad = g
        model.train(was_training)
    if rows == 0:
        return math.nan
    return math.sqrt(sum(float(np.sum((s / rows) ** 2)) for s in sums))


class ProgressBar(Callback):
    """A tqdm bar per epoch with the running loss; silent when stderr is not a terminal."""

    def __init__(self, enabled: bool | None = None):
        self.enabled = enabled
        self.bar = None

    def _on(self) -> bool:
        if self.enabled is not None:
            return self.enabled
        return sys.stderr.isatty()

    def on_epoch_begin(self, epoch, logs):
        if not self._on():
            return
        from tqdm.auto import tqdm

        t = self.trainer
        self.bar = tqdm(
            total=t.batches_per_epoch,
            desc=f"epoch {epoch + 1}/{t.epochs}",
            leave=False,
            dynamic_ncols=True,
            initial=t.start_batch,
        )

    def on_batch_end(self, batch, logs):
        if self.bar is not None:
            self.bar.update(1)
            if self.bar.n % 10 == 0 or self.bar.n == self.bar.total:
                self.bar.set_postfix(loss=f"{logs['loss']:.4g}", refresh=False)

    def on_epoch_end(self, epoch, logs):
        if self.bar is not None:
            self.bar.close()
            self.bar = None
            parts = " ".join(
                f"{k}={v:.4g}" for k, v in logs.items() if isinstance(v, float) and k != "lr"
            )
            from tqdm.auto import tqdm

            tqdm.write(f"epoch {epoch + 1}/{self.trainer.epochs}: {parts}", file=sys.stderr)

    def on_train_end(self, logs):
        if self.bar is not None:
            self.bar.close()
            self.bar = None
