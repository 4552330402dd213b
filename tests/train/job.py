"""A small, fully seeded training run shared by the crash and reproducibility tests.

``python -m tests.train.job DIR [SEED]`` trains it with a checkpoint after every batch in DIR
(resuming from DIR/last.ckpt when it exists) and prints the parameters' SHA-256 at the end.
"""

from __future__ import annotations

import hashlib
import os
import sys

import numpy as np

import gradstep as gs
from gradstep import nn, optim
from gradstep.data import DataLoader, TensorDataset
from gradstep.train import Callback, ModelCheckpoint, Trainer

EPOCHS = 3


def build(seed: int = 0):
    gs.manual_seed(seed)
    rng = np.random.default_rng(123)
    X = rng.standard_normal((3200, 8))
    y = np.tanh(X @ rng.standard_normal((8, 1))) + 0.1 * rng.standard_normal((3200, 1))
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Dropout(0.1), nn.Linear(32, 1))
    opt = optim.Adam(model.parameters(), lr=1e-2)
    sched = optim.StepLR(opt, step_size=1, gamma=0.5)
    loader = DataLoader(TensorDataset(X, y), batch_size=32, shuffle=True)
    return model, opt, sched, loader


def digest(model) -> str:
    h = hashlib.sha256()
    for k, v in model.state_dict().items():
        h.update(k.encode())
        h.update(np.ascontiguousarray(v).tobytes())
    return h.hexdigest()


class Recorder(Callback):
    """Records (epoch, next batch) -> parameter digest after every batch."""

    def __init__(self):
        self.states = {}

    def on_batch_end(self, batch, logs):
        t = self.trainer
        self.states[(t.epoch, t.start_batch)] = digest(t.model)

    def on_epoch_end(self, epoch, logs):  # the epoch-end checkpoint says (epoch + 1, 0)
        self.states[(epoch + 1, 0)] = digest(self.trainer.model)


class KillAfterEpoch(Callback):
    """SIGKILL this process right after the epoch-end checkpoint of epoch ``n`` (0-based)."""

    def __init__(self, n: int):
        self.n = n

    def after_epoch_end(self, epoch, logs):
        if epoch == self.n:
            import signal

            os.kill(os.getpid(), signal.SIGKILL)


def run(directory: str | None, seed: int = 0, extra_callbacks=()):
    model, opt, sched, loader = build(seed)
    callbacks = list(extra_callbacks)
    resume = None
    if directory is not None:
        callbacks.append(ModelCheckpoint(directory, save_best=False, every_n_batches=1))
        last = os.path.join(directory, "last.ckpt")
        resume = last if os.path.exists(last) else None
    kill = os.environ.get("GRADSTEP_KILL_AFTER_EPOCH")
    if kill is not None and resume is None:  # after the checkpoint callback: the boundary
        callbacks.append(KillAfterEpoch(int(kill)))
    trainer = Trainer(model, nn.MSELoss(), opt, sched, callbacks, verbose=0)
    trainer.fit(loader, epochs=EPOCHS, resume_from=resume)
    return model


if __name__ == "__main__":
    folder = sys.argv[1] if len(sys.argv) > 1 and sys.argv[1] != "-" else None
    seed = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    print("started", flush=True)
    print(digest(run(folder, seed)), flush=True)
