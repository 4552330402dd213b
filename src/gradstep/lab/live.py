"""The lecture's experiment trained live: one of :func:`~gradstep.lab.experiments.experiments`'
models on the Seattle data, with the batch size, learning rate and number of epochs the user
chooses, reporting the training and validation error (MAE, degrees C) after every epoch.

The vocabulary is the lecture's: a *batch* is the handful of training days one gradient is
computed on; an *update* is one gradient step, on one batch; an *epoch* is one pass over all the
training batches; batch size, learning rate and epochs are *hyperparameters*, chosen by us and
not learned. Validation is the year 2015, which training never sees (the lecture's L').

Everything but the knobs is :func:`~gradstep.lab.experiments.run_experiment`'s: the same
windows, the same standardisation, Adam, the L1 loss and a cosine schedule over the epochs, so
``train_live(name, 64, 3e-3, n, dtype=np.float32)`` ends on run_experiment's own numbers.
"""

from __future__ import annotations

import collections
import math
import threading
from dataclasses import dataclass, field

import numpy as np

from gradstep import nn, optim
from gradstep.data import DataLoader, TensorDataset
from gradstep.lab.experiments import Experiment, Standardised, experiments, standardised_windows
from gradstep.nn import init
from gradstep.tensor import Tensor
from gradstep.train.loop import Trainer

__all__ = ["OPTIMIZERS", "LiveTraining", "TrainedModel", "experiment", "train_live"]

#: The optimizers the panel offers: run_experiment's Adam, and the lecture's plain gradient
#: descent on mini-batches.
OPTIMIZERS = {"adam": optim.Adam, "sgd": optim.SGD}
#: Overfitting is named once the validation error has not improved for this many epochs while
#: the training error went on falling.
PATIENCE = 5
#: How many of the last epochs' models a training keeps for export.
KEEP = 8

# The engine's grad mode, default dtype and random generator are process-wide, and the lab
# runs each stream in a worker thread. So this module never switches them (no no_grad,
# explicit dtypes, its own generator), and runs one training's epoch at a time. A compiled
# step's trace records only its own thread (gradstep.tracing), so training is compiled.
_ENGINE = threading.Lock()


def experiment(name: str) -> Experiment:
    """The experiment called ``name`` (e.g. "linear, 7 days", "2 layers of 100 ReLU")."""
    known = {e.name: e for e in experiments()}
    if name not in known:
        raise ValueError(f"unknown model {name!r}; the models are {', '.join(known)}")
    return known[name]


class _Rows(TensorDataset):
    """A TensorDataset in an explicit dtype (TensorDataset casts to the process-wide default,
    which another thread may be changing)."""

    def __init__(self, *arrays, dtype):
        self.arrays = tuple(np.ascontiguousarray(a, dtype=dtype) for a in arrays)


def _seeded_mlp(exp: Experiment, rng: np.random.Generator, dtype) -> nn.Sequential:
    """``nn.mlp`` for ``exp`` initialised from ``rng`` as ``gs.manual_seed(seed)`` then
    ``nn.mlp`` would be (each Linear draws its weight, then its bias, uniform in
    +-1/sqrt(fan_in)), without reading the global generator that other threads use."""
    model = nn.mlp(exp.days, list(exp.hidden), 1, exp.activation)
    for layer in model:
        if isinstance(layer, nn.Linear):
            bound = init.linear_bound(layer.in_features)
            layer.weight.data = init.uniform(layer.weight.shape, bound, rng, dtype)
            layer.bias.data = init.uniform(layer.bias.shape, bound, rng, dtype)
    return model


@dataclass
class TrainedModel:
    """A trained model with what it needs to predict degrees C from the previous days."""

    experiment: Experiment
    state: dict
    data: Standardised
    epochs_done: int
    settings: dict = field(default_factory=dict)

    @property
    def dtype(self) -> np.dtype:
        return next(iter(self.state.values())).dtype

    def module(self) -> nn.Sequential:
        """A fresh module holding these weights, in their dtype."""
        exp = self.experiment
        model = nn.mlp(exp.days, list(exp.hidden), 1, exp.activation).to(self.dtype)
        model.load_state_dict(self.state)
        return model

    def predict(self, X) -> np.ndarray:
        """Tomorrow's maximum temperature (deg C) for each window of ``X`` (rows of days)."""
        model = self.module().eval()
        with _ENGINE:
            out = model(Tensor(self.data.inputs(X), dtype=self.dtype)).data[:, 0]
        return self.data.degrees(out)

    def checkpoint(self) -> dict:
        """The lab checkpoint: the mlp, and in ``settings`` the input scaler (``x_mean``,
        ``x_scale``) and the target scaling (``y_mean``, ``y_std``), so the file alone
        predicts degrees: ``(model((X - x_mean) / x_scale) * y_std + y_mean)``."""
        from gradstep.lab.checkpoints import lab_checkpoint

        d = self.data
        settings = {
            **self.settings,
            "model": self.experiment.name,
            "days": self.experiment.days,
            "epochs_done": self.epochs_done,
            "x_mean": np.asarray(d.scaler.mean_, np.float64),
            "x_scale": np.asarray(d.scaler.scale_, np.float64),
            "y_mean": float(d.y_mean),
            "y_std": float(d.y_std),
        }
        return lab_checkpoint(self.module(), self.experiment.activation, "models", settings)


class LiveTraining:
    """The iterator :func:`train_live` returns: one dict per epoch; ``trained`` is the model as
    it was after the last epoch done (what an export during or after training saves)."""

    def __init__(self, exp, batch_size, lr, epochs, seed, optimizer, dtype):
        self.experiment, self.epochs = exp, epochs
        self.data = standardised_windows(exp.days)
        rng = np.random.default_rng(seed)  # the init's draws first, then each epoch's order
        self.model = _seeded_mlp(exp, rng, dtype)
        d = self.data
        rows = _Rows(d.inputs(d.X_train), d.targets(d.y_train), dtype=dtype)
        self.loader = DataLoader(rows, batch_size, shuffle=True, generator=rng)
        self._inputs = {
            "train": Tensor(d.inputs(d.X_train), dtype=dtype),
            "val": Tensor(d.inputs(d.X_test), dtype=dtype),
        }
        opt = OPTIMIZERS[optimizer](self.model.parameters(), lr=lr)
        self.trainer = Trainer(
            self.model,
            nn.L1Loss(),
            opt,
            scheduler=optim.CosineAnnealingLR(opt, T_max=epochs),
            verbose=0,
            compile=True,  # native with numba (L1 loss, Linear, the activations), else replayed
        )
        self.settings = {
            "model": exp.name,
            "batch_size": batch_size,
            "lr": lr,
            "epochs": epochs,
            "seed": seed,
            "optimizer": optimizer,
            "dtype": np.dtype(dtype).name,
        }
        self.history: list[dict] = []
        self.trained = self._snapshot()
        # the last few epochs' models: a page that stops a stream may be an epoch or two behind
        # the server, and exports the epoch it shows
        self._recent = collections.OrderedDict({0: self.trained})
        self.stop_reason: str | None = None

    def _snapshot(self) -> TrainedModel:
        state = {k: np.array(v) for k, v in self.model.state_dict().items()}
        return TrainedModel(
            self.experiment, state, self.data, self.trainer.epoch, dict(self.settings)
        )

    def trained_at(self, epoch: int) -> TrainedModel:
        """The model as it was after ``epoch`` (one of the last :data:`KEEP` epochs done)."""
        if epoch not in self._recent:
            kept = ", ".join(map(str, self._recent))
            raise KeyError(f"epoch {epoch} is not kept; the epochs kept are {kept}")
        return self._recent[epoch]

    def _mae(self, part: str) -> float:
        """The model's mean absolute error in degrees C on the training or validation days,
        with the weights as they are now (not the running mean over the epoch's batches)."""
        d = self.data
        y = d.y_train if part == "train" else d.y_test
        self.model.eval()
        # no no_grad here: it would switch off recording for every thread (see _ENGINE)
        with np.errstate(over="ignore", invalid="ignore"):
            pred = d.degrees(self.model(self._inputs[part]).data[:, 0])
            value = float(np.mean(np.abs(pred - y)))
        self.model.train()
        return value

    def __iter__(self):
        return self

    def __next__(self) -> dict:
        t = self.trainer
        if t.epoch >= self.epochs or t.stop_training:
            raise StopIteration
        with _ENGINE:  # no grad-mode switch here: it is process-wide (see _ENGINE)
            lr = t.optimizer.param_groups[0]["lr"]
            t.fit(self.loader, epochs=t.epoch + 1)
            train, val = self._mae("train"), self._mae("val")
        updates = t.epoch * len(self.loader) + t.start_batch
        if t.stop_training:
            self.stop_reason = t.stop_reason
        else:
            self.trained = self._snapshot()
            self._recent[t.epoch] = self.trained
            while len(self._recent) > KEEP:
                self._recent.popitem(last=False)
        self.history.append({"train_mae": train, "val_mae": val})
        return {
            "epoch": t.epoch,
            "epochs": self.epochs,
            "updates": updates,
            "batches_per_epoch": len(self.loader),
            "lr": lr,
            "train_mae": _finite(train),
            "val_mae": _finite(val),
            "status": self._status(),
            "overfitting": overfitting(self.history),
            "message": self.stop_reason,
        }

    def _status(self) -> str:
        last = self.history[-1]
        if self.stop_reason or not math.isfinite(last["train_mae"] + last["val_mae"]):
            return "diverged"
        return "done" if self.trainer.epoch >= self.epochs else "running"


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def overfitting(history: list[dict], patience: int = PATIENCE, rise: float = 0.01) -> bool:
    """Whether the validation error has risen for ``patience`` epochs while the training error
    fell: the best validation epoch is at least ``patience`` epochs back, the validation error
    is now more than ``rise`` (a fraction) above its best, and the training error is below what
    it was at that best epoch. (The rise keeps a flat, noisy validation curve from counting.)

    >>> h = [{"train_mae": 5 - k, "val_mae": abs(k - 2) + 3} for k in range(5)]
    >>> overfitting(h, patience=2), overfitting(h, patience=3), overfitting(h, 2, rise=0.7)
    (True, False, False)
    """
    vals = [h["val_mae"] for h in history]
    if not vals or not all(map(math.isfinite, vals)):
        return False
    best = int(np.argmin(vals))
    return (
        len(vals) - 1 - best >= patience
        and vals[-1] > vals[best] * (1 + rise)
        and history[-1]["train_mae"] < history[best]["train_mae"]
    )


def train_live(
    model_name: str,
    batch_size: int,
    lr: float,
    epochs: int,
    seed: int = 0,
    optimizer: str = "adam",
    dtype=np.float64,
) -> LiveTraining:
    """Train the experiment ``model_name`` epoch by epoch, yielding after each epoch.

    Parameters
    ----------
    model_name : str
        One of ``[e.name for e in experiments()]``, e.g. ``"2 layers of 100 ReLU"``.
    batch_size : int
        Training days per update (the last batch of an epoch may be smaller).
    lr : float
        The learning rate (the cosine schedule lowers it to 0 over ``epochs``).
    epochs : int
        Passes over the training days.
    seed : int
        Seeds the initial weights and the order of the days in each epoch: the same settings
        give the same numbers.
    optimizer : {"adam", "sgd"}
    dtype : numpy dtype
        float64 (default) for numbers a test can check to 1e-9; float32 is run_experiment's.

    Returns
    -------
    LiveTraining
        An iterator of dicts, one per epoch: ``epoch``, ``updates`` (gradient steps so far,
        one per batch), ``train_mae`` and ``val_mae`` (degrees C, None if not finite),
        ``lr`` (the rate that epoch used), ``status`` ("running", "done", "diverged"),
        ``overfitting`` (see :func:`overfitting`) and ``message``; its ``trained`` attribute
        is the model after the last epoch done, ``trained_at(epoch)`` one of the last few.
    """
    exp = experiment(model_name)
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
        raise ValueError(f"batch_size must be a whole number, got {batch_size!r}")
    if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 1:
        raise ValueError(f"epochs must be a whole number >= 1, got {epochs!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a finite number greater than 0, got {lr!r}")
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {optimizer!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a whole number >= 0, got {seed!r}")
    return LiveTraining(exp, int(batch_size), float(lr), int(epochs), int(seed), optimizer, dtype)
