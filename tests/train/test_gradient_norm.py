"""GradientNorm: the batch gradient's L2 norm, averaged over each epoch, and the full training
gradient's, equal to PyTorch's; in logs before any callback reads them; exact across a resume."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

import gradstep as gs
from gradstep import nn, optim
from gradstep.data import DataLoader, TensorDataset
from gradstep.train import Callback, EarlyStopping, GradientNorm, ModelCheckpoint, fit
from gradstep.train.callbacks import parameter_grad_norm


def data(n=40, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 3))
    y = np.tanh(X @ [[1.0], [-2.0], [0.5]]) + 0.1 * rng.standard_normal((n, 1))
    return X, y


def tiny_model(seed=0, dropout=False):
    gs.manual_seed(seed)
    layers = [nn.Linear(3, 5), nn.Tanh()] + ([nn.Dropout(0.3)] if dropout else [])
    return nn.Sequential(*layers, nn.Linear(5, 1))


def torch_copy(model):
    lin = [m for m in model.modules() if isinstance(m, nn.Linear)]
    t = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.Tanh(), torch.nn.Linear(5, 1)).double()
    with torch.no_grad():
        for tm, gm in zip([t[0], t[2]], lin):
            tm.weight.copy_(torch.from_numpy(np.array(gm.weight.data, np.float64)))
            tm.bias.copy_(torch.from_numpy(np.array(gm.bias.data, np.float64)))
    return t


def torch_norm(params) -> float:
    return float(torch.linalg.vector_norm(torch.cat([p.grad.reshape(-1) for p in params])))


@pytest.mark.parametrize("compiled", [True, False])
def test_grad_norm_is_the_mean_batch_norm_and_the_full_norm_as_torch_computes_them(compiled):
    X, y = data()
    epochs, lr, bs = 4, 0.1, 16  # batches of 16, 16 and 8 rows
    with gs.default_dtype(np.float64):
        model = tiny_model()
        ref = torch_copy(model)
        hist = fit(
            model,
            nn.MSELoss(),
            optim.SGD(model.parameters(), lr=lr),
            DataLoader(TensorDataset(X, y), bs),
            epochs=epochs,
            callbacks=[GradientNorm(full=True)],
            verbose=0,
            compile=compiled,
        )
    opt = torch.optim.SGD(ref.parameters(), lr=lr)
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    means, fulls = [], []
    for _ in range(epochs):
        norms = []
        for i in range(0, len(X), bs):
            opt.zero_grad()
            torch.nn.functional.mse_loss(ref(Xt[i : i + bs]), yt[i : i + bs]).backward()
            norms.append(torch_norm(ref.parameters()))
            opt.step()
        means.append(np.mean(norms))
        opt.zero_grad()
        torch.nn.functional.mse_loss(ref(Xt), yt).backward()  # every row, end-of-epoch weights
        fulls.append(torch_norm(ref.parameters()))
    h = hist.history
    np.testing.assert_allclose(h["grad_norm"], means, rtol=1e-12)
    np.testing.assert_allclose(h["grad_norm_full"], fulls, rtol=1e-12)
    assert h["epoch"] == [1, 2, 3, 4] and len(h["loss"]) == epochs


def test_parameter_grad_norm_counts_every_parameter_once_and_skips_missing_gradients():
    a, b = nn.Parameter(np.zeros(3)), nn.Parameter(np.zeros((2, 2)))
    a.grad, b.grad = np.array([3.0, 0.0, 0.0]), np.array([[0.0, 4.0], [0.0, 0.0]])
    c = nn.Parameter(np.zeros(2))  # no gradient: counts as zero
    assert parameter_grad_norm([a, b, c]) == 5.0


def test_early_stopping_and_checkpoint_monitor_grad_norm_listed_before_it(tmp_path):
    X, y = data(64)
    model = tiny_model()
    stop = EarlyStopping(monitor="grad_norm", patience=0)
    ckpt = ModelCheckpoint(tmp_path, monitor="grad_norm")
    hist = fit(
        model,
        nn.MSELoss(),
        optim.SGD(model.parameters(), lr=0.5, momentum=0.9),
        DataLoader(TensorDataset(X, y), 8, shuffle=True),
        epochs=30,
        callbacks=[stop, ckpt, GradientNorm()],  # the readers first: on_epoch_logs fills logs
        verbose=0,
    )
    gn = hist.history["grad_norm"]
    # patience 0: the run ends at the first epoch whose grad_norm is not below the best so far
    first_worse = next((i for i in range(1, len(gn)) if gn[i] >= min(gn[:i])), None)
    assert first_worse is not None and len(gn) == first_worse + 1
    assert "early stopping" in hist.stop_reason and "grad_norm" in hist.stop_reason
    assert stop.best == min(gn) and stop.best_epoch == int(np.argmin(gn))
    assert float(gs.load(tmp_path / "best.ckpt")["grad_norm"]) == min(gn)
    hist.save_csv(tmp_path / "h.csv")
    lines = (tmp_path / "h.csv").read_text().splitlines()
    assert "grad_norm" in lines[0].split(",") and len(lines) == len(gn) + 1


def test_the_full_pass_draws_no_random_number_and_leaves_training_unchanged():
    X, y = data()

    def run(callbacks):
        model = tiny_model(seed=3, dropout=True)
        hist = fit(
            model,
            nn.MSELoss(),
            optim.Adam(model.parameters(), lr=0.01),
            DataLoader(TensorDataset(X, y), 16, shuffle=True),
            epochs=3,
            callbacks=callbacks,
            verbose=0,
        )
        return hist.history, model.state_dict()

    plain, w_plain = run([])
    logged, w_logged = run([GradientNorm(full=True)])
    assert logged["loss"] == plain["loss"]
    assert all(np.isfinite(logged["grad_norm_full"])) and "grad_norm_full" not in plain
    for k, v in w_plain.items():
        np.testing.assert_array_equal(v, w_logged[k])


class Interrupt(Callback):
    def on_batch_end(self, batch, logs):
        if self.trainer.epoch == 1 and batch == 2:
            raise KeyboardInterrupt


def resumable(tmp_path, extra=(), resume=False):
    X, y = data(48)
    model = tiny_model(seed=1)
    return fit(
        model,
        nn.MSELoss(),
        optim.SGD(model.parameters(), lr=0.05, momentum=0.5),
        DataLoader(TensorDataset(X, y), 8, shuffle=True),
        epochs=3,
        callbacks=[
            ModelCheckpoint(tmp_path, monitor="loss", every_n_batches=2),
            GradientNorm(),
            *extra,
        ],
        verbose=0,
        resume_from=tmp_path / "last.ckpt" if resume else None,
    )


def test_a_resume_mid_epoch_keeps_the_epochs_partial_mean(tmp_path):
    reference = resumable(tmp_path / "ref").history["grad_norm"]
    with pytest.raises(KeyboardInterrupt):
        resumable(tmp_path / "run", extra=[Interrupt()])
    state = gs.load(tmp_path / "run" / "last.ckpt")
    assert (state["epoch"], state["batch"]) == (1, 2)  # two batches into epoch 2
    assert state["callbacks"]["GradientNorm#0"]["count"] == 2
    assert resumable(tmp_path / "run", resume=True).history["grad_norm"] == reference


@pytest.mark.parametrize(
    ("monitor", "others", "hint"),
    [
        ("grad_norm", [], "add GradientNorm() to the callbacks"),
        ("grad_norm_full", [GradientNorm()], "add GradientNorm(full=True) to the callbacks"),
    ],
)
def test_monitoring_grad_norm_without_the_callback_says_what_to_add(monitor, others, hint):
    X, y = data()
    model = tiny_model()
    with pytest.raises(KeyError, match=re.escape(hint)):
        fit(
            model,
            nn.MSELoss(),
            optim.SGD(model.parameters(), lr=0.1),
            DataLoader(TensorDataset(X, y), 16),
            callbacks=[EarlyStopping(monitor=monitor), *others],
            verbose=0,
        )
