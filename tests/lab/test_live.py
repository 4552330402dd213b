"""gradstep.lab.live: the lecture's experiment trained epoch by epoch, checked against
run_experiment, against PyTorch in float64, and under two trainings at once."""

from __future__ import annotations

import math
import threading

import numpy as np
import pytest
import torch

import gradstep as gs
from gradstep import nn
from gradstep.io import dumps, loads
from gradstep.lab.checkpoints import load_model
from gradstep.lab.experiments import experiments, run_experiment, windows
from gradstep.lab.live import overfitting, train_live


def _by_name(name):
    return next(e for e in experiments() if e.name == name)


def _curve(events):
    return [(e["epoch"], e["updates"], e["train_mae"], e["val_mae"]) for e in events]


@pytest.mark.parametrize("name", ["linear, 7 days", "1 layer of 100 ReLU"])
def test_float32_ends_on_run_experiments_own_numbers(name):
    # the same windows, standardisation, init, batch order, Adam, L1 loss and schedule
    events = list(train_live(name, 64, 3e-3, 3, seed=2, dtype=np.float32))
    ref = run_experiment(_by_name(name), 3, seed=2)
    assert events[-1]["train_mae"] == ref["train_mae"]
    assert events[-1]["val_mae"] == ref["test_mae"]
    assert events[-1]["status"] == "done"


def test_the_initial_weights_are_manual_seed_then_mlp():
    training = train_live("2 layers of 100 ReLU", 64, 1e-3, 1, seed=5)
    gs.manual_seed(5)
    with gs.default_dtype(np.float64):
        ref = nn.mlp(56, [100, 100], 1)
    for k, v in ref.state_dict().items():
        np.testing.assert_array_equal(training.model.state_dict()[k], v)


def _standardised(days):
    """The windows standardised by hand (NumPy), as the lecture's experiment does."""
    Xtr, ytr, Xte, yte = windows(days)
    mean, std = Xtr.mean(axis=0), Xtr.std(axis=0)
    return (Xtr - mean) / std, ytr, (Xte - mean) / std, yte, ytr.mean(), ytr.std()


def _torch_reference(hidden, activation, days, batch_size, lr, epochs, seed, optimizer):
    """The same training written in PyTorch (float64): the initial weights and each epoch's
    order drawn from numpy's default_rng(seed) in the order gradstep draws them."""
    Xtr, ytr, Xte, yte, y_mean, y_std = _standardised(days)
    rng = np.random.default_rng(seed)
    layers, width = [], days
    for h in [*hidden, 1]:
        lin = torch.nn.Linear(width, h, dtype=torch.float64)
        bound = 1 / math.sqrt(width)
        w = rng.uniform(-bound, bound, (h, width))
        b = rng.uniform(-bound, bound, (h,))
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(w))
            lin.bias.copy_(torch.from_numpy(b))
        layers += [lin, torch.nn.ReLU() if activation == "relu" else torch.nn.Sigmoid()]
        width = h
    model = torch.nn.Sequential(*layers[:-1])
    make = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD}[optimizer]
    opt = make(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    X, Y = torch.from_numpy(Xtr), torch.from_numpy((ytr - y_mean) / y_std)[:, None]
    curve, updates = [], 0
    for epoch in range(1, epochs + 1):
        order = torch.from_numpy(rng.permutation(len(X)))
        for start in range(0, len(X), batch_size):
            idx = order[start : start + batch_size]
            opt.zero_grad()
            torch.nn.functional.l1_loss(model(X[idx]), Y[idx]).backward()
            opt.step()
            updates += 1
        sched.step()
        with torch.no_grad():
            maes = [
                float(
                    np.mean(np.abs(model(torch.from_numpy(A)).numpy()[:, 0] * y_std + y_mean - y))
                )
                for A, y in ((Xtr, ytr), (Xte, yte))
            ]
        curve.append((epoch, updates, *maes))
    return curve


@pytest.mark.parametrize(
    ("name", "hidden", "activation", "days", "optimizer"),
    [
        ("2 layers of 100 ReLU", [100, 100], "relu", 56, "adam"),
        ("100 sigmoids, 56 days", [100], "sigmoid", 56, "sgd"),
        ("linear, 28 days", [], "relu", 28, "adam"),
    ],
)
def test_every_epoch_matches_pytorch_in_float64(name, hidden, activation, days, optimizer):
    got = _curve(train_live(name, 100, 0.01, 4, seed=3, optimizer=optimizer))
    ref = _torch_reference(hidden, activation, days, 100, 0.01, 4, 3, optimizer)
    assert [g[:2] for g in got] == [r[:2] for r in ref]
    np.testing.assert_allclose([g[2:] for g in got], [r[2:] for r in ref], rtol=0, atol=1e-9)
    assert got[-1][1] == 4 * math.ceil(len(windows(days)[1]) / 100)  # an update per batch


def test_the_same_settings_give_the_same_numbers_and_a_new_seed_others():
    a = _curve(train_live("1 layer of 100 ReLU", 32, 3e-3, 3, seed=1))
    b = _curve(train_live("1 layer of 100 ReLU", 32, 3e-3, 3, seed=1))
    c = _curve(train_live("1 layer of 100 ReLU", 32, 3e-3, 3, seed=2))
    assert a == b and a != c


def test_two_trainings_at_once_each_get_their_own_numbers():
    configs = [("2 layers of 100 ReLU", 16, 3e-3, 4, 0), ("linear, 7 days", 8, 0.05, 20, 4)]
    alone = [_curve(train_live(*c)) for c in configs]
    results = [None, None]

    def run(i):
        results[i] = _curve(train_live(*configs[i]))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == alone
    # and alternating epochs in one thread, as two streams of one server do
    a, b = train_live(*configs[0]), train_live(*configs[1])
    mixed = [[], []]
    for _ in range(20):
        for i, t in enumerate((a, b)):
            e = next(t, None)
            if e is not None:
                mixed[i].append((e["epoch"], e["updates"], e["train_mae"], e["val_mae"]))
    assert mixed == alone


def test_overfitting_is_named_when_validation_rises_while_training_falls():
    deep = list(train_live("2 layers of 100 ReLU", 64, 3e-3, 30))
    assert deep[-1]["overfitting"]
    vals = [e["val_mae"] for e in deep]
    best = int(np.argmin(vals))
    assert vals[-1] > vals[best] and deep[-1]["train_mae"] < deep[best]["train_mae"]
    assert not deep[best]["overfitting"]  # not at the best epoch itself
    linear = list(train_live("linear, 7 days", 64, 3e-3, 30))
    assert not any(e["overfitting"] for e in linear)
    assert linear[-1]["val_mae"] <= min(e["val_mae"] for e in linear) * 1.01
    h = [{"train_mae": 3.0, "val_mae": v} for v in (2.0, 2.5, 2.6, 2.7, 2.8, 2.9)]
    assert not overfitting(h)  # the training error did not fall: not overfitting
    assert overfitting([{**e, "train_mae": 3.0 - k / 10} for k, e in enumerate(h)])


def test_the_export_alone_predicts_degrees():
    training = train_live("1 layer of 100 ReLU", 64, 3e-3, 3, seed=7)
    last = list(training)[-1]
    ckpt = loads(dumps(training.trained.checkpoint()))
    s = ckpt["settings"]
    assert (ckpt["panel"], s["model"], s["epochs_done"], s["batch_size"]) == (
        "models",
        "1 layer of 100 ReLU",
        3,
        64,
    )
    assert ckpt["architecture"]["hidden"] == [100]
    model = load_model(ckpt)
    _, _, Xte, yte = windows(56)
    X = gs.tensor((Xte - s["x_mean"]) / s["x_scale"], dtype=np.float64)
    degrees = model(X).numpy()[:, 0] * s["y_std"] + s["y_mean"]
    assert float(np.mean(np.abs(degrees - yte))) == pytest.approx(last["val_mae"], abs=1e-9)
    np.testing.assert_allclose(training.trained.predict(Xte), degrees, rtol=0, atol=1e-9)


def test_a_huge_rate_is_reported_not_hidden():
    events = list(train_live("linear, 7 days", 64, 1e3, 3, optimizer="sgd"))
    assert events[-1]["train_mae"] > 100  # sgd with rate 1000 leaps far past the minimum
    assert events[-1]["status"] in ("done", "diverged")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("cubic", 64, 1e-3, 3), "unknown model 'cubic'"),
        (("linear, 7 days", 0, 1e-3, 3), "batch_size must be at least 1"),
        (("linear, 7 days", 2.5, 1e-3, 3), "batch_size must be a whole number"),
        (("linear, 7 days", 64, 0.0, 3), "lr must be a finite number greater than 0"),
        (("linear, 7 days", 64, math.nan, 3), "lr must be a finite number greater than 0"),
        (("linear, 7 days", 64, 1e-3, 0), "epochs must be a whole number >= 1"),
        (("linear, 7 days", 64, 1e-3, 3, -1), "seed must be a whole number >= 0"),
        (("linear, 7 days", 64, 1e-3, 3, 0, "rmsprop"), "optimizer must be one of adam, sgd"),
    ],
)
def test_bad_settings_are_refused_with_a_message(args, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        train_live(*args)
