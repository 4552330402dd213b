"""The fit loop: learning, NaN stop, early stopping, exact resume, reproducibility."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

import gradstep as gs
from gradstep import functional as F
from gradstep import nn, optim
from gradstep.data import DataLoader
from gradstep.train import Callback, EarlyStopping, History, ModelCheckpoint, Trainer, fit
from tests.train import job

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def regression_data(n=200, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.uniform(-1, 1, (n, 1))
    return X, 1.5 * X - 0.5


def test_fit_learns_a_line_and_logs_per_epoch(tmp_path):
    gs.manual_seed(0)
    X, y = regression_data()
    model = nn.Linear(1, 1)
    hist = fit(
        model,
        nn.MSELoss(),
        optim.SGD(model.parameters(), lr=0.1),
        DataLoader((X[:150], y[:150]), 16, shuffle=True),
        DataLoader((X[150:], y[150:]), 50),
        epochs=60,
        verbose=0,
    )
    assert hist.history["val_loss"][-1] < 1e-4
    assert hist.history["epoch"] == list(range(1, 61))
    np.testing.assert_allclose(model.weight.data, [[1.5]], atol=1e-2)
    hist.save_json(tmp_path / "h.json")
    hist.save_csv(tmp_path / "h.csv")
    assert len(json.loads((tmp_path / "h.json").read_text())["epochs"]) == 60
    assert (tmp_path / "h.csv").read_text().splitlines()[0].startswith("epoch,")


def test_nan_loss_stops_at_that_step_names_it_and_writes_nothing_after(tmp_path):
    gs.manual_seed(0)
    X, y = regression_data(64)
    model = nn.Linear(1, 1)
    # Batches are not shuffled: batch 3 of epoch 2 is rows 32..47; poison it after epoch 1.

    class Poison(Callback):
        def on_epoch_end(self, epoch, logs):
            if epoch == 0:
                X_loader.dataset.arrays[0][40] = np.nan

    X_loader = DataLoader((X, y), 16)
    ck = ModelCheckpoint(tmp_path, monitor="loss", every_n_batches=1)
    hist = fit(
        model,
        nn.MSELoss(),
        optim.SGD(model.parameters(), lr=0.1),
        X_loader,
        epochs=5,
        callbacks=[Poison(), ck],
        verbose=0,
    )
    assert "epoch 2, batch 3" in hist.stop_reason and "nan" in hist.stop_reason
    assert len(hist.epochs) == 1  # epoch 2 never finished
    assert np.isfinite(model.weight.data).all()
    state = gs.load(tmp_path / "last.ckpt")
    assert (state["epoch"], state["batch"]) == (1, 2)  # the last good step
    np.testing.assert_array_equal(state["model"]["weight"], model.weight.data)


def test_early_stopping_restores_best_weights():
    gs.manual_seed(0)
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((40, 5)), rng.standard_normal((40, 1))
    Xv, yv = rng.standard_normal((40, 5)), rng.standard_normal((40, 1))  # pure noise: overfits
    model = nn.mlp(5, [64], 1)
    best = {}

    class Snap(Callback):
        def on_epoch_end(self, epoch, logs):
            best.setdefault("all", []).append((logs["val_loss"], model.state_dict()))

    es = EarlyStopping(patience=3, restore_best_weights=True)
    hist = fit(
        model,
        nn.MSELoss(),
        optim.Adam(model.parameters(), lr=1e-2),
        DataLoader((X, y), 8),
        DataLoader((Xv, yv), 40),
        epochs=200,
        callbacks=[Snap(), es],
        verbose=0,
    )
    assert len(hist.epochs) < 200 and "early stopping" in hist.stop_reason
    vloss, weights = min(best["all"], key=lambda t: t[0])
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, weights[k])


def test_resume_mid_epoch_is_bit_identical(tmp_path):
    reference = job.digest(job.run(None))

    class Interrupt(Callback):
        def on_batch_end(self, batch, logs):
            if self.trainer.epoch == 1 and batch == 7:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        job.run(str(tmp_path), extra_callbacks=[Interrupt()])
    state = gs.load(tmp_path / "last.ckpt")
    # the interrupt fires before that batch's checkpoint: the last one is after batch index 6
    assert (state["epoch"], state["batch"]) == (1, 7)
    assert job.digest(job.run(str(tmp_path))) == reference


def _digest_in_fresh_process(seed: int) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "tests.train.job", "-", str(seed)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return out.stdout.split()[-1]


def test_same_seed_two_processes_bit_identical_other_seed_differs():
    a, b = _digest_in_fresh_process(5), _digest_in_fresh_process(5)
    assert a == b
    assert _digest_in_fresh_process(6) != a


def test_bad_arguments_are_clear():
    model = nn.Linear(1, 1)
    opt = optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="epochs"):
        fit(model, nn.MSELoss(), opt, DataLoader((np.zeros((4, 1)), np.zeros((4, 1)))), epochs=0)
    with pytest.raises(KeyError, match="val_loader"):
        fit(
            model,
            nn.MSELoss(),
            opt,
            DataLoader((np.zeros((4, 1)), np.zeros((4, 1)))),
            epochs=2,
            callbacks=[EarlyStopping()],
            verbose=0,
        )
    assert isinstance(Trainer(model, nn.MSELoss(), opt).history, History)


def _fit_run(compile_step: bool):
    gs.manual_seed(5)
    X, Y = regression_data(n=203)  # 203 rows, batch 16: a last batch of 11 gets its own trace
    with gs.default_dtype(np.float64):
        model = nn.Sequential(nn.Linear(1, 16), nn.Sigmoid(), nn.Dropout(0.2), nn.Linear(16, 1))
        data = gs.data.TensorDataset(X, Y)
    opt = optim.Adam(model.parameters(), lr=0.02)
    trainer = Trainer(model, nn.MSELoss(), opt, verbose=0, compile=compile_step)
    history = trainer.fit(
        DataLoader(data, 16, shuffle=True, generator=np.random.default_rng(1)),
        DataLoader(data, 64),
        epochs=4,
    )
    return model.state_dict(), history.history, trainer


def test_compiled_fit_is_bit_identical_to_eager_and_replays():
    params_eager, hist_eager, _ = _fit_run(False)
    params_fast, hist_fast, trainer = _fit_run("replay")
    assert trainer.history.compile_backend == "replay"
    for k in params_eager:
        assert params_eager[k].tobytes() == params_fast[k].tobytes(), k
    assert hist_eager == hist_fast
    step = trainer._forward_backward
    assert step.traces == 2 and step.replays == 4 * 13 - 2  # 13 batches per epoch
    val = trainer._evaluate_batch  # validation: 64, 64, 64, 11 rows, in eval mode, no grad
    assert val.traces == 2 and val.replays == 4 * 4 - 2


def test_a_loss_computing_with_numpy_on_data_falls_back_to_eager_in_fit():
    def weighted_mse(out, y):  # NumPy on .data: a trace would freeze the first batch's weights
        w = np.where(y.data > 0, 2.0, 1.0)
        return ((out - y) ** 2 * w).mean()

    def run(compile_step):
        gs.manual_seed(0)
        X, Y = regression_data(n=64)
        with gs.default_dtype(np.float64):
            model = nn.Linear(1, 1)
            data = gs.data.TensorDataset(X, Y)
        trainer = Trainer(
            model,
            weighted_mse,
            optim.SGD(model.parameters(), lr=0.1),
            verbose=0,
            compile=compile_step,
        )
        trainer.fit(DataLoader(data, 8, shuffle=True, generator=np.random.default_rng(0)), epochs=2)
        return model.state_dict(), trainer

    eager, _ = run(False)
    with pytest.warns(gs.CompileWarning, match="a replay differs from eager execution"):
        fast, trainer = run(True)
    for k in eager:
        assert eager[k].tobytes() == fast[k].tobytes()
    # traced once, then eager for good: no retrace per batch (nor a max_traces notice)
    assert trainer._forward_backward.replays == 0 and trainer._forward_backward.traces == 1
    assert trainer.history.compile_backend == "eager"
    assert "results differ" in trainer.history.compile_notice


def _native_fit_run(compile_mode, poison_row=None):
    gs.manual_seed(5)
    X, Y = regression_data(n=203)
    if poison_row is not None:
        X = X.copy()
        X[poison_row] = np.nan
    with gs.default_dtype(np.float64):
        model = nn.Sequential(nn.Linear(1, 16), nn.Sigmoid(), nn.Linear(16, 1))
        data = gs.data.TensorDataset(X, Y)
    opt = optim.Adam(model.parameters(), lr=0.02)
    trainer = Trainer(model, nn.MSELoss(), opt, verbose=0, compile=compile_mode)
    history = trainer.fit(DataLoader(data, 16), DataLoader(data, 64), epochs=4)
    return model.state_dict(), history, trainer


@pytest.mark.parametrize("mode", ["native", True])
def test_native_fit_equals_eager_to_rounding_with_the_update_after_the_check(mode):
    """compile="native", and the default (True, "auto") with numba installed: every batch runs
    native, the 12 full batches of 16 rows of each epoch and the last of 11 (two traces, one
    compiled function: sizes are its arguments)."""
    params_eager, hist_eager, _ = _native_fit_run(False)
    params_native, hist_native, trainer = _native_fit_run(mode)
    step = trainer._forward_backward
    assert step is trainer._native_step
    assert step.backend == ("native" if mode == "native" else "auto")
    assert step.traces == 2 and step.replays == 4 * 13 - 2
    (a, b) = step.native_programs
    assert a._fn is b._fn and a.compiled_source == b.compiled_source
    assert hist_native.compile_seconds == sum(step.compile_seconds) > 0
    assert hist_native.compile_backend == "native" and hist_native.compile_notice is None
    for k in params_eager:
        np.testing.assert_allclose(params_native[k], params_eager[k], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(hist_native.history["loss"], hist_eager.history["loss"], rtol=1e-12)


def test_a_loss_no_trace_can_follow_is_reported_as_eager_with_one_warning():
    """A loss reading .item(): every step runs eagerly; History says so, and the user gets one
    warning (the full batches' step and the last batch's are one step to them)."""
    gs.manual_seed(0)
    X, Y = regression_data(n=20)  # batches of 8, 8 and 4
    with gs.default_dtype(np.float64):
        model = nn.Linear(1, 1)
        data = gs.data.TensorDataset(X, Y)

    def loss_fn(out, y):
        loss = F.mse_loss(out, y)
        return loss * (1.0 if loss.item() < 1e9 else 0.5)

    with pytest.warns(gs.CompileWarning, match=r"fit's forward and backward.*item\(\)") as w:
        history = fit(
            model,
            loss_fn,
            optim.SGD(model.parameters(), lr=0.1),
            DataLoader(data, 8),
            epochs=2,
            verbose=0,
        )
    assert len(w) == 1
    assert history.compile_backend == "eager" and "item()" in history.compile_notice


def test_the_default_fit_replays_a_model_with_no_native_kernel_and_says_which_op(capsys):
    """compile=True: no warning (a model with Dropout is an ordinary model), the reason in
    history.compile_notice, and one line on stderr where a progress bar shows (verbose=1)."""
    gs.manual_seed(0)
    X, Y = regression_data(n=40)
    with gs.default_dtype(np.float64):
        model = nn.Sequential(nn.Linear(1, 4), nn.Dropout(0.1), nn.Linear(4, 1))
        data = gs.data.TensorDataset(X, Y)
    for verbose in (0, 1):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            history = fit(
                model,
                nn.MSELoss(),
                optim.SGD(model.parameters(), lr=0.1),
                DataLoader(data, 8),
                epochs=1,
                verbose=verbose,
            )
        assert history.compile_backend == "replay"
        assert history.compile_notice == "no native step: op Dropout has no native kernel"
        err = capsys.readouterr().err
        notice = "no native step: op Dropout has no native kernel; replayed with NumPy"
        assert (notice in err) == bool(verbose)


def test_a_native_fit_notice_names_fit_and_points_at_the_fit_call():
    gs.manual_seed(0)
    X, Y = regression_data(n=32)
    with gs.default_dtype(np.float64):
        model = nn.Sequential(nn.Linear(1, 4), nn.GELU(), nn.Linear(4, 1))
        data = gs.data.TensorDataset(X, Y)
    trainer = Trainer(
        model, nn.MSELoss(), optim.SGD(model.parameters(), lr=0.1), verbose=0, compile="native"
    )
    with pytest.warns(gs.CompileWarning, match=r"fit's forward and backward\): no native") as w:
        trainer.fit(DataLoader(data, 8), epochs=1)
    assert w[0].filename == __file__


def test_native_fit_stops_at_a_nan_loss_before_the_update():
    eager, hist_e, _ = _native_fit_run(False, poison_row=40)  # batch 3 of epoch 1
    native, hist_n, trainer = _native_fit_run("native", poison_row=40)
    assert hist_n.stop_reason == hist_e.stop_reason and "epoch 1, batch 3" in hist_n.stop_reason
    # the cause is the data (row 40 is the batch's row 8), not the learning rate
    assert "inputs hold NaN or inf, first at its row 8" in hist_n.stop_reason
    assert "learning rate" not in hist_n.stop_reason
    for k in eager:
        assert np.all(np.isfinite(native[k]))
        np.testing.assert_allclose(native[k], eager[k], rtol=1e-12, atol=1e-15)


def test_fit_says_whether_it_compiled_the_native_step_or_loaded_it(tmp_path, monkeypatch, capsys):
    from gradstep.tracing import native_program

    monkeypatch.setenv("GRADSTEP_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(native_program, "_LOADED", {})  # as a fresh process
    X, Y = regression_data(n=40)
    runs = []
    for _ in range(2):
        gs.manual_seed(0)
        with gs.default_dtype(np.float64):
            model = nn.Sequential(nn.Linear(1, 5), nn.LeakyReLU(0.3), nn.Linear(5, 1))
            data = gs.data.TensorDataset(X, Y)
        history = fit(
            model,
            nn.L1Loss(),
            optim.RMSprop(model.parameters(), lr=0.01),
            DataLoader(data, 8),
            epochs=1,
            verbose=1,
        )
        runs.append((history.compile_backend, history.compile_cached, capsys.readouterr().err))
    (b1, c1, err1), (b2, c2, err2) = runs
    assert (b1, c1, b2, c2) == ("native", False, "native", True)
    assert "native step: compiled in" in err1 and str(tmp_path) in err1
    assert "native step: loaded from the cache in" in err2
