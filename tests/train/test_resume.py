"""Resume refuses a different run, keeps callback state across verbose settings, and says so
when given weights instead of a training state."""

from __future__ import annotations

import numpy as np
import pytest

import gradstep as gs
from gradstep import nn, optim
from gradstep.data import DataLoader, TensorDataset
from gradstep.train import Callback, EarlyStopping, ModelCheckpoint, fit


class StopAt(Callback):
    def __init__(self, epoch):
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs):
        if epoch == self.epoch:
            raise KeyboardInterrupt


def setup(n=240, batch=16, opt_cls=optim.Adam, seed=0, hidden=8):
    gs.manual_seed(seed)
    rng = np.random.default_rng(1)
    X = rng.standard_normal((n, 3))
    y = X @ [[1.0], [-1.0], [0.5]] + 0.3 * rng.standard_normal((n, 1))
    model = nn.Sequential(nn.Linear(3, hidden), nn.Tanh(), nn.Linear(hidden, 1))
    opt = opt_cls(model.parameters(), lr=0.05)
    train = DataLoader(TensorDataset(X[: n * 3 // 4], y[: n * 3 // 4]), batch, shuffle=True)
    val = DataLoader(TensorDataset(X[n * 3 // 4 :], y[n * 3 // 4 :]), 64)
    return model, opt, train, val


def interrupted(tmp_path, **kw):
    model, opt, train, val = setup(**kw)
    with pytest.raises(KeyboardInterrupt):
        fit(
            model,
            nn.MSELoss(),
            opt,
            train,
            val,
            30,
            callbacks=[ModelCheckpoint(tmp_path), EarlyStopping(patience=3), StopAt(4)],
            verbose=0,
        )
    return tmp_path / "last.ckpt"


def test_resume_with_another_verbose_keeps_early_stopping_and_history(tmp_path):
    model, opt, train, val = setup()
    ref_stop = EarlyStopping(patience=3)
    ref = fit(model, nn.MSELoss(), opt, train, val, 30, callbacks=[ref_stop], verbose=0)
    last = interrupted(tmp_path)
    saved = gs.load(last)
    assert "EarlyStopping#0" in saved["callbacks"] and "History#0" in saved["callbacks"]
    model, opt, train, val = setup()
    stop = EarlyStopping(patience=3)
    resumed = fit(
        model,
        nn.MSELoss(),
        opt,
        train,
        val,
        30,
        callbacks=[ModelCheckpoint(tmp_path), stop],
        verbose=1,
        resume_from=last,
    )
    assert resumed.history["val_loss"] == ref.history["val_loss"]
    assert stop.best == ref_stop.best and stop.best_epoch == ref_stop.best_epoch


@pytest.mark.parametrize(
    ("change", "what"),
    [
        ({"batch": 32}, "the batch size"),
        ({"n": 200}, "the number of training examples"),
        ({"opt_cls": optim.SGD}, "the optimizer"),
        ({"hidden": 9}, "the model's parameters"),
        ({"seed": 0, "n": 240, "batch": 16, "data": True}, "the training data"),
    ],
)
def test_a_different_run_is_refused_naming_the_difference(tmp_path, change, what):
    last = interrupted(tmp_path)
    data = change.pop("data", False)
    model, opt, train, val = setup(**change)
    if data:
        X, y = train.dataset.tensors if hasattr(train.dataset, "tensors") else (None, None)
        rng = np.random.default_rng(9)
        train = DataLoader(
            TensorDataset(rng.standard_normal((180, 3)), rng.standard_normal((180, 1))),
            16,
            shuffle=True,
        )
    with pytest.raises(ValueError, match=f"not the run that wrote it: {what}"):
        fit(
            model,
            nn.MSELoss(),
            opt,
            train,
            val,
            30,
            callbacks=[ModelCheckpoint(tmp_path), EarlyStopping(patience=3)],
            verbose=0,
            resume_from=last,
        )


def test_resuming_from_weights_says_so_and_weights_only_is_explicit(tmp_path):
    interrupted(tmp_path)
    model, opt, train, val = setup()
    with pytest.raises(ValueError, match="holds only a model's weights"):
        fit(model, nn.MSELoss(), opt, train, val, 3, verbose=0, resume_from=tmp_path / "best.ckpt")
    best = gs.load(tmp_path / "best.ckpt")["model"]
    model, opt, train, val = setup(opt_cls=optim.SGD, batch=8)
    history = fit(
        model,
        nn.MSELoss(),
        opt,
        train,
        val,
        2,
        verbose=0,
        resume_from=tmp_path / "best.ckpt",
        resume_weights_only=True,
    )
    assert len(history.epochs) == 2  # a new run: epoch 0 on
    model2, *_ = setup()
    model2.load_state_dict(best)
    assert not np.array_equal(model.state_dict()["0.weight"], best["0.weight"])  # it trained on


class CrashAfterCheckpoint(Callback):
    """Raises right after the epoch-end checkpoint of epoch ``n``: what disk holds then is what
    a kill -9 at that instant leaves."""

    def __init__(self, n):
        self.n = n

    def after_epoch_end(self, epoch, logs):
        if epoch == self.n:
            raise KeyboardInterrupt


@pytest.mark.parametrize("crash_epoch", [0, 2, 5])
def test_a_crash_at_an_epoch_boundary_with_early_stopping_resumes_identically(
    tmp_path, crash_epoch
):
    def callbacks(folder, extra=()):
        return [
            ModelCheckpoint(folder),
            EarlyStopping(patience=2, restore_best_weights=True),
            *extra,
        ]

    model, opt, train, val = setup()
    ref = fit(
        model, nn.MSELoss(), opt, train, val, 40, callbacks=callbacks(tmp_path / "ref"), verbose=0
    )
    ref_weights = model.state_dict()
    assert len(ref.epochs) > crash_epoch + 1  # the crash lands before early stopping
    model, opt, train, val = setup()
    with pytest.raises(KeyboardInterrupt):
        fit(
            model,
            nn.MSELoss(),
            opt,
            train,
            val,
            40,
            callbacks=callbacks(tmp_path / "c", [CrashAfterCheckpoint(crash_epoch)]),
            verbose=0,
        )
    model, opt, train, val = setup()
    resumed = fit(
        model,
        nn.MSELoss(),
        opt,
        train,
        val,
        40,
        callbacks=callbacks(tmp_path / "c"),
        verbose=0,
        resume_from=tmp_path / "c" / "last.ckpt",
    )
    assert resumed.history == ref.history and resumed.stop_reason == ref.stop_reason
    for k, v in ref_weights.items():
        np.testing.assert_array_equal(model.state_dict()[k], v)


def test_one_checkpoint_folder_one_run_and_a_dead_runs_lock_is_taken_over(tmp_path):
    import subprocess
    import sys

    model, opt, train, val = setup()
    first_cb = ModelCheckpoint(tmp_path)

    class SecondRunMeanwhile(Callback):
        def on_epoch_end(self, epoch, logs):
            if epoch == 0:
                m2, o2, t2, v2 = setup(seed=1)
                with pytest.raises(RuntimeError, match="in use by another training run"):
                    fit(
                        m2,
                        nn.MSELoss(),
                        o2,
                        t2,
                        v2,
                        1,
                        callbacks=[ModelCheckpoint(tmp_path)],
                        verbose=0,
                    )

    fit(
        model,
        nn.MSELoss(),
        opt,
        train,
        val,
        2,
        callbacks=[first_cb, SecondRunMeanwhile()],
        verbose=0,
    )
    assert gs.load(tmp_path / "last.ckpt")["epoch"] == 2  # the first run's, complete
    code = (
        "import os, sys, fcntl\n"
        "f = open(os.path.join(sys.argv[1], '.gradstep-lock'), 'a+')\n"
        "fcntl.flock(f.fileno(), fcntl.LOCK_EX)\n"
        "os.kill(os.getpid(), 9)\n"
    )
    assert subprocess.run([sys.executable, "-c", code, str(tmp_path)]).returncode == -9
    model, opt, train, val = setup()
    fit(
        model, nn.MSELoss(), opt, train, val, 1, callbacks=[ModelCheckpoint(tmp_path)], verbose=0
    )  # the killed run's lock does not block


def test_diverging_parameters_never_reach_a_checkpoint_file(tmp_path):
    model, opt, train, val = setup(opt_cls=optim.SGD)
    for g in opt.param_groups:
        g["lr"] = 1e38
    history = fit(
        model,
        nn.MSELoss(),
        opt,
        train,
        val,
        5,
        callbacks=[ModelCheckpoint(tmp_path, every_n_batches=1)],
        verbose=0,
    )
    assert history.stop_reason and "training stopped" in history.stop_reason
    assert "smaller learning rate" in history.stop_reason  # the data is finite
    if (tmp_path / "last.ckpt").exists():
        state = gs.load(tmp_path / "last.ckpt")
        assert all(np.all(np.isfinite(v)) for v in state["model"].values())
