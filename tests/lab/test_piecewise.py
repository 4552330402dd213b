"""gradstep.lab.piecewise against independent computations: NumPy by hand for the target and
PyTorch (float64) for the curves and for Adam's training of the units."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import gradstep as gs
from gradstep.lab import piecewise as pw
from gradstep.lab.checkpoints import load_model
from gradstep.tensor import Tensor

START = {
    "sigmoid": ([9.0, 14.0, -11.0], [-2.5, -7.0, 8.2], [0.7, -0.9, -0.35], 0.25),
    "relu": ([5.3, -4.1, 7.7, 3.1], [-0.4, 2.3, -5.1, -1.7], [0.45, -0.3, 0.6, -0.2], 0.31),
}


def _torch_model(kind, w, b, c, c0):
    act = torch.nn.Sigmoid() if kind == "sigmoid" else torch.nn.ReLU()
    first, last = torch.nn.Linear(1, len(w)), torch.nn.Linear(len(w), 1)
    model = torch.nn.Sequential(first, act, last).double()
    with torch.no_grad():
        first.weight.copy_(torch.tensor(w, dtype=torch.float64)[:, None])
        first.bias.copy_(torch.tensor(b, dtype=torch.float64))
        last.weight.copy_(torch.tensor(c, dtype=torch.float64)[None, :])
        last.bias.fill_(c0)
    return model


def test_the_target_is_the_lectures_curve():
    x = np.linspace(0, 1, 1001)
    expected = 0.3 + np.zeros_like(x)
    for start, end, height in ((0.1, 0.3, 0.6), (0.45, 0.55, -0.8), (0.7, 0.8, 0.4)):
        expected += height * np.clip((x - start) / (end - start), 0, 1)
    np.testing.assert_allclose(pw.target(x), expected, atol=1e-15)
    # every corner is on the training grid, so the grid's target is exactly piecewise linear
    for corner in (0.1, 0.3, 0.45, 0.55, 0.7, 0.8):
        assert np.min(np.abs(pw.X - corner)) < 1e-12
    assert pw.target(pw.X)[[0, 60, 110, 200]] == pytest.approx([0.3, 0.9, 0.1, 0.5])


@pytest.mark.parametrize("kind", pw.KINDS)
def test_curve_parts_sum_and_loss_match_torch(kind):
    w, b, c, c0 = START[kind]
    got = pw.curve(kind, w, b, c, c0)
    xt = torch.tensor(pw.X, dtype=torch.float64)[:, None]
    act = torch.sigmoid if kind == "sigmoid" else torch.relu
    parts = [ci * act(bi + wi * xt[:, 0]) for wi, bi, ci in zip(w, b, c)]
    for mine, theirs in zip(got["parts"], parts, strict=True):
        np.testing.assert_allclose(mine, theirs.numpy(), rtol=1e-13, atol=1e-15)
    total = _torch_model(kind, w, b, c, c0)(xt)[:, 0].detach().numpy()
    np.testing.assert_allclose(got["sum"], total, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(got["constant"] + sum(got["parts"]), total, atol=1e-13)
    assert got["loss"] == pytest.approx(np.mean((total - pw.target(pw.X)) ** 2), rel=1e-12)
    # at other x the parts are drawn there, but the loss is still the grid's
    other = pw.curve(kind, w, b, c, c0, x=[0.05, 0.5])
    assert other["sum"].shape == (2,) and other["loss"] == got["loss"]


@pytest.mark.parametrize("kind", pw.KINDS)
def test_training_is_adam_on_the_full_grid_as_in_torch(kind):
    w, b, c, c0 = START[kind]
    points = list(pw.train(kind, w, b, c, c0, lr=0.03, steps=40))
    assert [p["step"] for p in points] == list(range(1, 41))
    assert [p["status"] for p in points] == ["running"] * 39 + ["done"]
    model = _torch_model(kind, w, b, c, c0)
    opt = torch.optim.Adam(model.parameters(), lr=0.03)
    xt = torch.tensor(pw.X, dtype=torch.float64)[:, None]
    yt = torch.tensor(pw.target(pw.X), dtype=torch.float64)[:, None]
    for p in points:
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(xt), yt).backward()
        opt.step()
        with torch.no_grad():
            loss = torch.nn.functional.mse_loss(model(xt), yt).item()
        first, last = model[0], model[2]
        np.testing.assert_allclose(p["w"], first.weight[:, 0].detach().numpy(), rtol=1e-9)
        np.testing.assert_allclose(p["b"], first.bias.detach().numpy(), rtol=1e-9)
        np.testing.assert_allclose(p["c"], last.weight[0].detach().numpy(), rtol=1e-9)
        assert p["c0"] == pytest.approx(last.bias.item(), rel=1e-9)
        assert p["loss"] == pytest.approx(loss, rel=1e-9)
    # the loss a point carries is the curve's loss at its units
    last_point = points[-1]
    units = (last_point["w"], last_point["b"], last_point["c"], last_point["c0"])
    assert pw.curve(kind, *units)["loss"] == pytest.approx(last_point["loss"], rel=1e-12)
    assert last_point["loss"] < pw.curve(kind, w, b, c, c0)["loss"]


def test_every_thins_the_points_but_not_the_steps():
    w, b, c, c0 = START["sigmoid"]
    every = list(pw.train("sigmoid", w, b, c, c0, 0.05, 10))
    thinned = list(pw.train("sigmoid", w, b, c, c0, 0.05, 10, every=3))
    assert [p["step"] for p in thinned] == [3, 6, 9, 10]
    for p in thinned:
        assert p == every[p["step"] - 1]


def test_a_loss_past_1e12_is_named_diverged():
    points = list(pw.train("relu", [1.0], [0.0], [1.0], 1e13, lr=0.1, steps=50))
    assert len(points) == 1 and points[0]["status"] == "diverged"
    assert points[0]["loss"] is None and points[0]["w"] is None


@pytest.mark.parametrize("kind", pw.KINDS)
@pytest.mark.parametrize("k", range(1, 11))
def test_default_units_fit_visibly_but_not_perfectly(kind, k):
    d = pw.default_units(kind, k)
    assert len(d["w"]) == len(d["b"]) == len(d["c"]) == k and d["kind"] == kind
    flat = np.mean((pw.target(pw.X) - np.mean(pw.target(pw.X))) ** 2)  # the best constant's
    loss = pw.curve(kind, d["w"], d["b"], d["c"], d["c0"])["loss"]
    assert loss > 5e-4  # imperfect: training has something to do
    if k >= 3:  # one or two steps are too coarse a staircase to beat a constant
        assert loss < flat


def test_default_relus_interpolate_the_target_at_their_knots():
    d = pw.default_units("relu")
    assert len(d["w"]) == pw.DEFAULT_UNITS["relu"] == 6
    assert len(pw.default_units("sigmoid")["w"]) == pw.DEFAULT_UNITS["sigmoid"] == 3
    knots = np.linspace(0, 1, 7)
    got = pw.curve("relu", d["w"], d["b"], d["c"], d["c0"], x=knots)["sum"]
    np.testing.assert_allclose(got, pw.target(knots), atol=1e-12)


@pytest.mark.parametrize("kind", pw.KINDS)
def test_the_checkpoint_loads_as_the_same_model(kind, tmp_path):
    w, b, c, c0 = START[kind]
    path = tmp_path / "piecewise.safetensors"
    gs.save(pw.checkpoint(kind, w, b, c, c0, {"kind": kind}), str(path))
    ckpt = gs.load(str(path))
    assert ckpt["architecture"] == {
        "in_features": 1,
        "hidden": [len(w)],
        "out_features": 1,
        "activation": kind,
    }
    assert ckpt["panel"] == "piecewise" and ckpt["settings"] == {"kind": kind}
    model = load_model(ckpt)
    x = np.linspace(-0.2, 1.2, 57)
    out = model(Tensor(x[:, None], dtype=np.float64)).data[:, 0]
    np.testing.assert_allclose(out, pw.curve(kind, w, b, c, c0, x=x)["sum"], rtol=1e-14)
    assert out.dtype == np.float64


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("tanh", [1.0], [0.0], [1.0], 0.0), "kind must be one of sigmoid, relu"),
        (("relu", [], [], [], 0.0), "must be 1 to 10, got 0"),
        (("relu", [1.0] * 11, [0.0] * 11, [1.0] * 11, 0.0), "must be 1 to 10, got 11"),
        (("relu", [1.0, 2.0], [0.0], [1.0, 1.0], 0.0), "one number per unit"),
    ],
)
def test_bad_units_are_refused(args, message):
    with pytest.raises(ValueError, match=message):
        pw.curve(*args)
    with pytest.raises(ValueError, match=message):
        next(pw.train(*args, lr=0.1, steps=1))


def test_a_learning_rate_must_be_positive():
    with pytest.raises(ValueError, match="lr must be greater than 0"):
        next(pw.train("relu", [1.0], [0.0], [1.0], 0.0, lr=0.0, steps=1))


def test_trainings_in_threads_do_not_touch_each_other_or_the_default_dtype():
    """Two tabs train in two worker threads at once: each gets the numbers it would alone,
    and neither changes the process's default dtype (a race on it made float32 models)."""
    from concurrent.futures import ThreadPoolExecutor

    before = gs.get_default_dtype()
    runs = [("relu", *START["relu"], 0.03), ("sigmoid", *START["sigmoid"], 0.05)] * 3
    alone = [list(pw.train(*r, steps=60)) for r in runs[:2]]
    curve = pw.curve("relu", *START["relu"])["loss"]

    def curves(_):  # what another tab's slider asks for meanwhile
        return {pw.curve("relu", *START["relu"])["loss"] for _ in range(200)}

    with ThreadPoolExecutor(8) as pool:
        drags = [pool.submit(curves, i) for i in range(2)]
        together = list(pool.map(lambda r: list(pw.train(*r, steps=60)), runs))
        assert all(d.result() == {curve} for d in drags)
    for i, points in enumerate(together):
        assert points == alone[i % 2]
    assert gs.get_default_dtype() == before
    model = pw.build_model("sigmoid", *START["sigmoid"])
    assert {p.data.dtype for p in model.parameters()} == {np.dtype(np.float64)}
