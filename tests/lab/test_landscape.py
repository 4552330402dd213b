"""Loss landscapes (gradstep.lab.landscape): the batched grid against one engine pass per point,
the weight landscape against PyTorch on the same weights, filter normalisation, path
projection, weight names, and the caller's model left as it was."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import gradstep as gs
from gradstep import functional as F
from gradstep import nn, optim
from gradstep.lab import landscape as L
from gradstep.lab import landscape_grid

RNG = np.random.default_rng(0)
X1 = RNG.uniform(-1, 1, (100, 1))  # the course's HW2-2 data: 1 -> 128 ReLU -> 1
Y1 = np.sin(3 * X1)
X3 = RNG.standard_normal((24, 3))
Y3 = np.sin(X3 @ np.array([[1.0], [-2.0], [0.5]]))
LABELS = RNG.integers(0, 4, 24)
TORCH_ACT = {
    "relu": torch.relu,
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "leaky_relu": lambda z: torch.nn.functional.leaky_relu(z, 0.01),
}


def _model(act="relu", hidden=(8, 6), inp=3, out=1, seed=1):
    gs.manual_seed(seed)
    return nn.mlp(inp, list(hidden), out, act)


def _snapshot(model):
    return [(n, p.data.dtype, p.data.copy()) for n, p in model.named_parameters()]


def _unchanged(model, snap):
    now = _snapshot(model)
    assert [(n, d) for n, d, _ in now] == [(n, d) for n, d, _ in snap]
    assert all(np.array_equal(a, b) for (_, _, a), (_, _, b) in zip(now, snap))


def _close(a, b, tol=1e-12):
    assert np.max(np.abs(a - b)) <= tol * max(1.0, float(np.max(np.abs(b))))


def _torch_loss(params, act, X, y, loss="mse"):
    """The loss of an MLP with these (NumPy) parameters, by PyTorch in float64."""
    ps = [torch.tensor(np.asarray(p, np.float64)) for p in params]
    h = torch.tensor(X)
    for i in range(len(ps) // 2):
        h = h @ ps[2 * i].T + ps[2 * i + 1]
        if i < len(ps) // 2 - 1:
            h = TORCH_ACT[act](h)
    if loss == "ce":
        return float(torch.nn.functional.cross_entropy(h, torch.tensor(y)))
    return float(((h - torch.tensor(y)) ** 2).mean())


def _both(fn, *args, **kw):
    """A landscape computed batched and by the engine's loop, checked to agree."""
    fast, slow = fn(*args, **kw), fn(*args, **kw, batched=False)
    assert fast["batched"] and fast["fallback_reason"] is None
    assert not slow["batched"]
    _close(fast["loss"], slow["loss"])
    return fast


# --- batched == one engine pass per point ------------------------------------------------
@pytest.mark.parametrize("act", ["relu", "leaky_relu", "sigmoid", "tanh"])
@pytest.mark.parametrize("loss", ["mse", "ce"])
def test_batched_grid_equals_the_engine_loop(act, loss):
    out, y, loss_fn = (1, Y3, nn.MSELoss()) if loss == "mse" else (4, LABELS, nn.CrossEntropyLoss())
    model = _model(act, out=out)
    snap = _snapshot(model)
    alphas, betas = np.linspace(-1.5, 1.5, 7), np.linspace(-1, 1, 5)
    for ignore in (True, False):
        d1, d2 = L.filter_normalized_directions(model, seed=3, ignore_biases=ignore)
        r = _both(L.direction_landscape, model, loss_fn, X3, y, d1, d2, alphas, betas)
        assert r["loss"].shape == (5, 7)
    pairs = [
        ("0.weight[3, 0]", "0.weight[5, 2]"),  # one layer, two units
        ("0.bias[1]", "2.weight[4, 7]"),  # the change goes through a layer and moves again
        ("2.weight[0, 1]", "4.bias[0]"),  # later layers: the first ones computed once
        ("4.weight[0, 5]", "0.weight[0, 0]"),
        ("4.weight[0, 5]", "4.bias[0]"),  # the output only: one of four logits moves
    ]
    for first, second in pairs:
        r = _both(L.weight_landscape, model, loss_fn, X3, y, first, second, 0.8, 5)
        assert r["loss"].shape == (5, 5)
    _unchanged(model, snap)


@pytest.mark.parametrize(
    "act",
    [
        nn.SiLU(),
        nn.ELU(0.7),
        nn.Softplus(),
        nn.GELU(),
        nn.GELU("tanh"),
        nn.Identity(),
        nn.LeakyReLU(0.2),
        nn.Dropout(0.3).eval(),
    ],
)
def test_every_batched_activation_matches_its_op(act):
    gs.manual_seed(2)
    model = nn.Sequential(nn.Linear(3, 6), act, nn.Linear(6, 1))
    d1, d2 = L.filter_normalized_directions(model, seed=0)
    grid = np.linspace(-2, 2, 5)
    _both(L.direction_landscape, model, nn.MSELoss(), X3, Y3, d1, d2, grid, grid)


@pytest.mark.parametrize(
    "loss_fn, y, out",
    [
        (nn.MSELoss(reduction="sum"), Y3, 1),
        (F.mse_loss, Y3, 1),
        (F.cross_entropy, LABELS, 4),
        (nn.CrossEntropyLoss(reduction="sum"), LABELS, 4),
        (nn.BCEWithLogitsLoss(), (Y3 > 0).astype(float), 1),
        (F.binary_cross_entropy_with_logits, (Y3 > 0).astype(float), 1),
    ],
)
def test_batched_losses_match_their_ops(loss_fn, y, out):
    model = _model("tanh", out=out)
    d1, d2 = L.filter_normalized_directions(model, seed=1)
    grid = np.linspace(-1, 1, 4)
    _both(L.direction_landscape, model, loss_fn, X3, y, d1, d2, grid, grid)


def test_bce_on_probabilities_is_batched_too():
    gs.manual_seed(4)
    model = nn.Sequential(nn.Linear(3, 5), nn.ReLU(), nn.Linear(5, 1), nn.Sigmoid())
    d1, d2 = L.filter_normalized_directions(model, seed=2)
    grid = np.linspace(-1, 1, 5)
    _both(
        L.direction_landscape, model, nn.BCELoss(), X3, (Y3 > 0).astype(float), d1, d2, grid, grid
    )


def test_nested_sequential_is_batched():
    gs.manual_seed(5)
    model = nn.Sequential(nn.Sequential(nn.Linear(3, 4), nn.Tanh()), nn.Linear(4, 1))
    r = _both(L.weight_landscape, model, nn.MSELoss(), X3, Y3, "0.0.weight[1, 2]", "1.bias[0]")
    assert r["first"] == "0.0.weight[1, 2]"


class _Custom(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(3, 5), nn.Linear(5, 1)

    def forward(self, x):
        return self.b(F.relu(self.a(x)) * 2.0)


@pytest.mark.parametrize(
    "model, loss_fn, why",
    [
        (_Custom(), nn.MSELoss(), "not an nn.Sequential"),
        (nn.Sequential(nn.Linear(3, 4), nn.Hardtanh(), nn.Linear(4, 1)), nn.MSELoss(), "Hardtanh"),
        (nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1)), nn.L1Loss(), "L1Loss"),
        (nn.Sequential(nn.Linear(3, 1)), nn.HuberLoss(), "HuberLoss"),
    ],
)
def test_other_models_fall_back_to_the_engine(model, loss_fn, why):
    snap = _snapshot(model)
    d1, d2 = L.filter_normalized_directions(model, seed=0)
    grid = np.linspace(-1, 1, 3)
    r = L.direction_landscape(model, loss_fn, X3, Y3, d1, d2, grid, grid)
    assert not r["batched"] and why in r["fallback_reason"]
    f = L.LossFunction(model, loss_fn, X3, Y3, freeze=False)
    assert r["loss"][1, 1] == f.value()
    assert r["loss"][0, 2] == f.value(f.theta + 1.0 * d1 + (-1.0) * d2)
    with pytest.raises(ValueError, match=f"no batched evaluation.*{why}"):
        L.direction_landscape(model, loss_fn, X3, Y3, d1, d2, grid, grid, batched=True)
    _unchanged(model, snap)


def test_layers_without_bias_and_other_inputs():
    gs.manual_seed(6)
    model = nn.Sequential(nn.Linear(3, 5, bias=False), nn.ReLU(), nn.Linear(5, 1))
    d1, d2 = L.filter_normalized_directions(model, seed=0)
    grid = np.linspace(-1, 1, 3)
    _both(L.direction_landscape, model, nn.MSELoss(), X3, Y3, d1, d2, grid, grid)
    _both(L.weight_landscape, model, nn.MSELoss(), X3, Y3, "0.weight[1, 1]", "2.bias[0]", 1, 3)
    seq, y_seq = RNG.standard_normal((6, 4, 3)), RNG.standard_normal((6, 4, 1))
    r = L.direction_landscape(model, nn.MSELoss(), seq, y_seq, d1, d2, grid, grid)
    assert not r["batched"] and "input of shape (6, 4, 3)" in r["fallback_reason"]


@pytest.mark.parametrize(
    "loss_fn, y, why",
    [
        (nn.CrossEntropyLoss(label_smoothing=0.1), LABELS, "label_smoothing"),
        (nn.CrossEntropyLoss(weight=np.ones(4)), LABELS, "weight="),
        (
            nn.BCEWithLogitsLoss(pos_weight=np.ones(4)),
            (RNG.random((24, 4)) > 0.5) * 1.0,
            "pos_weight",
        ),
    ],
)
def test_loss_options_without_a_batched_form_fall_back(loss_fn, y, why):
    model = _model(out=4)
    r = L.weight_landscape(model, loss_fn, X3, y, "0.weight[0, 0]", "4.bias[1]", 1, 3)
    assert not r["batched"] and why in r["fallback_reason"]
    assert r["loss"][1, 1] == r["center_loss"]


def test_cross_entropy_with_ignored_labels_falls_back():
    model = _model(out=4)
    y = LABELS.copy()
    y[0] = -100
    r = L.weight_landscape(model, nn.CrossEntropyLoss(), X3, y, "0.weight[0, 0]", "0.bias[0]", 1, 3)
    assert not r["batched"] and "class indices" in r["fallback_reason"]


# --- centre, PyTorch, chunks -------------------------------------------------------------
def test_centre_of_the_grid_is_the_models_loss():
    model = _model("relu", hidden=[128], inp=1)
    loss = _torch_loss([p.data for p in model.parameters()], "relu", X1, Y1)
    w = L.weight_landscape(model, nn.MSELoss(), X1, Y1, "0.weight[3, 0]", "2.weight[0, 7]")
    assert w["loss"].shape == (41, 41) and w["center_loss"] == pytest.approx(loss, rel=1e-12)
    assert w["first_grid"][20] == w["center"][0] and w["second_grid"][20] == w["center"][1]
    assert w["loss"][20, 20] == pytest.approx(loss, rel=1e-12)
    d1, d2 = L.filter_normalized_directions(model, seed=0)
    d = L.direction_landscape(model, nn.MSELoss(), X1, Y1, d1, d2, [-1, 0, 1], [0, 1])
    assert d["loss"][0, 1] == pytest.approx(loss, rel=1e-12)
    assert d["center_loss"] == pytest.approx(loss, rel=1e-12)


def test_weight_landscape_equals_pytorch_after_setting_the_weights():
    model = _model("relu", hidden=[128], inp=1)
    params = [p.data.astype(np.float64) for p in model.parameters()]
    first, second = np.linspace(-2, 2, 9), np.array([-0.5, 0.3, 1.7])
    r = L.weight_landscape(
        model, nn.MSELoss(), X1, Y1, "model.0.weight[3, 0]", "2.weight[0, 7]",
        first_grid=first, second_grid=second,
    )  # fmt: skip
    assert r["batched"] and r["loss"].shape == (3, 9)
    for i, v2 in enumerate(second):
        for j, v1 in enumerate(first):
            ps = [p.copy() for p in params]
            ps[0][3, 0], ps[2][0, 7] = v1, v2
            assert r["loss"][i, j] == pytest.approx(_torch_loss(ps, "relu", X1, Y1), rel=1e-12)


def test_direction_landscape_equals_pytorch_off_the_centre():
    model = _model("sigmoid", out=4)
    params = [p.data.astype(np.float64) for p in model.parameters()]
    d1, d2 = L.filter_normalized_directions(model, seed=7, ignore_biases=False)
    r = L.direction_landscape(model, nn.CrossEntropyLoss(), X3, LABELS, d1, d2, [0.5], [-1.25])
    theta = np.concatenate([p.ravel() for p in params]) + 0.5 * d1 - 1.25 * d2
    sizes = np.cumsum([p.size for p in params])[:-1]
    ps = [t.reshape(p.shape) for t, p in zip(np.split(theta, sizes), params)]
    assert r["loss"][0, 0] == pytest.approx(_torch_loss(ps, "sigmoid", X3, LABELS, "ce"), rel=1e-12)


def test_result_does_not_depend_on_the_block_size(monkeypatch):
    model = _model("tanh", hidden=[16, 8])
    d1, d2 = L.filter_normalized_directions(model, seed=0)
    alphas, betas = np.linspace(-1, 1, 23), np.linspace(-1, 1, 17)
    whole = L.direction_landscape(model, nn.MSELoss(), X3, Y3, d1, d2, alphas, betas)["loss"]
    w_whole = L.weight_landscape(model, nn.MSELoss(), X3, Y3, "0.weight[2, 1]", "2.weight[3, 3]")
    for chunk in (1, 2_000, 50_000):
        monkeypatch.setattr(landscape_grid, "CHUNK", chunk)  # the batched pass reads it
        part = L.direction_landscape(model, nn.MSELoss(), X3, Y3, d1, d2, alphas, betas)["loss"]
        _close(part, whole, 1e-13)
        w = L.weight_landscape(model, nn.MSELoss(), X3, Y3, "0.weight[2, 1]", "2.weight[3, 3]")
        _close(w["loss"], w_whole["loss"], 1e-13)


def test_a_plane_where_nothing_moves_is_flat():
    model = _model()
    zero = np.zeros(model.num_parameters())
    r = L.direction_landscape(model, nn.MSELoss(), X3, Y3, zero, zero, [0, 1], [2, 3, 4])
    assert r["batched"] and np.all(r["loss"] == r["center_loss"])


def test_a_float32_model_is_evaluated_in_float64_and_kept():
    model = _model("tanh")
    assert model.parameters().__next__().dtype == np.float32
    snap = _snapshot(model)
    r = _both(L.weight_landscape, model, nn.MSELoss(), X3, Y3, "2.weight[0, 0]", "2.bias[1]", 1, 5)
    assert r["loss"].dtype == np.float64
    _unchanged(model, snap)


# --- directions and paths -----------------------------------------------------------------
def test_filter_normalised_directions():
    model = _model("relu", hidden=[16, 8])
    params = [p.data.astype(np.float64) for p in model.parameters()]
    d1, d2 = L.filter_normalized_directions(model, seed=11)
    e1, _ = L.filter_normalized_directions(model, seed=11)
    f1, f2 = L.filter_normalized_directions(model, seed=11, ignore_biases=False)
    assert np.array_equal(d1, e1) and not np.allclose(d1, d2)
    assert d1.shape == (model.num_parameters(),) and d1.dtype == np.float64
    start = 0
    for p in params:
        for d, f in ((d1, f1), (d2, f2)):
            block, fblock = d[start : start + p.size], f[start : start + p.size]
            if p.ndim == 1:  # biases: zero (Li et al.), or the bias itself
                assert np.all(block == 0) and np.array_equal(fblock, p)
            else:
                rows = block.reshape(p.shape)
                assert np.allclose(np.linalg.norm(rows, axis=1), np.linalg.norm(p, axis=1))
                assert np.array_equal(block, fblock)  # weights drawn the same either way
        start += p.size
    assert not np.array_equal(d1, L.filter_normalized_directions(model, seed=12)[0])


def test_project_path_recovers_coordinates_in_a_skew_plane():
    rng = np.random.default_rng(3)
    P = 50
    center, d1 = rng.standard_normal(P), rng.standard_normal(P)
    d2 = 0.6 * d1 + rng.standard_normal(P)  # not orthogonal
    a, b = rng.uniform(-2, 2, 8), rng.uniform(-2, 2, 8)
    path = center + a[:, None] * d1 + b[:, None] * d2
    pa, pb, res = L.project_path(path, center, d1, d2)
    assert np.allclose(pa, a, atol=1e-10) and np.allclose(pb, b, atol=1e-10)
    assert np.all(res < 1e-12)
    # off the plane: a displacement d1 + v with v orthogonal to the plane
    Q, _ = np.linalg.qr(np.stack([d1, d2], 1))
    v = rng.standard_normal(P)
    v -= Q @ (Q.T @ v)
    v *= 3 / np.linalg.norm(v)
    pa, pb, res = L.project_path(center + d1 + v, center, d1, d2)
    assert pa[0] == pytest.approx(1) and pb[0] == pytest.approx(0, abs=1e-12)
    assert res[0] == pytest.approx(3 / np.linalg.norm(d1 + v))
    assert L.project_path(center, center, d1, d2)[2][0] == 0  # the centre: nothing off-plane
    with pytest.raises(ValueError, match="parallel"):
        L.project_path(path, center, d1, 2 * d1)
    with pytest.raises(ValueError, match="d2 has 3 entries"):
        L.project_path(path, center, d1, d1[:3])


def test_training_path_and_its_pca_plane():
    model = _model("tanh", hidden=[6])
    start = np.concatenate([p.data.ravel() for p in model.parameters()]).astype(np.float64)
    path = L.training_path(model, nn.MSELoss(), X3, Y3, lambda ps: optim.SGD(ps, lr=0.1), 10, 3)
    assert path.shape == (5, model.num_parameters())  # steps 0, 3, 6, 9 and the last, 10
    assert np.array_equal(path[0], start)
    end = np.concatenate([p.data.ravel() for p in model.parameters()])
    assert np.array_equal(path[-1], end)
    f = L.LossFunction(model, nn.MSELoss(), X3, Y3, freeze=False)
    assert f.value(path[-1]) < f.value(path[0])
    again = L.training_path(model, nn.MSELoss(), X3, Y3, optim.Adam(model.parameters()), 2)
    assert again.shape == (3, model.num_parameters()) and np.array_equal(again[0], path[-1])
    d1, d2, captured = L.pca_directions(path)
    a, b, res = L.project_path(path, path[-1], d1, d2)
    assert 0 < captured <= 1 + 1e-12 and res[-1] == 0
    # the captured share is what the projection leaves: sum |off|^2 = (1 - captured) sum |disp|^2
    disp = np.linalg.norm(path - path[-1], axis=1)
    assert np.sum((res * disp) ** 2) == pytest.approx((1 - captured) * np.sum(disp**2), abs=1e-12)
    with pytest.raises(ValueError, match="every must be an integer >= 1"):
        L.training_path(model, nn.MSELoss(), X3, Y3, optim.SGD(model.parameters(), 0.1), 1, 0)
    with pytest.raises(ValueError, match="one line"):
        L.pca_directions(np.outer(np.arange(4.0), np.ones(5)))
    with pytest.raises(ValueError, match="none of the model's parameters"):
        L.training_path(model, nn.MSELoss(), X3, Y3, optim.SGD(_model().parameters(), 0.1), 1)


# --- names and bad input ------------------------------------------------------------------
def test_weight_names_in_every_form():
    model = _model("relu", hidden=[128], inp=1)
    want = ("0.weight", (3, 0))
    for name in ("0.weight[3, 0]", "model.0.weight[3, 0]", "0.weight[3,0]", "0.weight[3][0]"):
        assert L.scalar_parameter(model, name) == want
    assert L.scalar_parameter(model, " 0.weight [ -125 , 0 ] ") == want
    assert L.scalar_parameter(model, ("0.weight", (3, 0))) == want
    assert L.scalar_parameter(model, "0.bias[2]") == ("0.bias", (2,))
    assert L.scalar_parameter(model, "2.bias") == ("2.bias", (0,))  # one element: no index
    assert L.scalar_parameter(model, "2.bias[0]") == ("2.bias", (0,))


@pytest.mark.parametrize(
    "name, message",
    [
        ("0.wieght[3, 0]", r"no parameter '0.wieght'.*0\.weight \(128, 1\), 0\.bias \(128,\)"),
        ("model.1.weight[0, 0]", r"no parameter 'model.1.weight'.*2\.weight \(1, 128\)"),
        ("0.weight[3]", r"'0.weight' has shape \(128, 1\).*2 indices.*got 1"),
        ("0.weight", r"'0.weight' has shape \(128, 1\).*'0.weight\[0, 0\]'"),
        ("0.bias[1, 2]", r"'0.bias' has shape \(128,\).*1 index"),
        ("0.weight[128, 0]", r"index 128 .* outside 0\.\.127 \(dimension 0 of '0.weight'"),
        ("0.weight[3, -2]", r"index -2 .* outside 0\.\.0 \(dimension 1"),
        ("0.weight[a, 0]", r"'a' is not an integer index"),
        ("0.weight[3, 0", "cannot read"),
        ("", "cannot read"),
    ],
)
def test_bad_weight_names_say_what_is_wrong(name, message):
    model = _model("relu", hidden=[128], inp=1)
    with pytest.raises(ValueError, match=message):
        L.scalar_parameter(model, name)


def test_bad_landscape_arguments():
    model = _model()
    snap = _snapshot(model)
    d1, d2 = L.filter_normalized_directions(model)
    per_item = nn.MSELoss(reduction="none")
    cases = [
        (lambda: L.weight_landscape(model, nn.MSELoss(), X3, Y3, "0.weight[1,1]", "0.weight[1][1]"),
         "same weight, 0.weight"),
        (lambda: L.weight_landscape(model, nn.MSELoss(), X3, Y3, "0.bias[0]", "0.bias[1]", -1),
         "span must be positive"),
        (lambda: L.weight_landscape(model, nn.MSELoss(), X3, Y3, "0.bias[0]", "0.bias[1]", 1, 1),
         "resolution must be an integer >= 2"),
        (lambda: L.direction_landscape(model, nn.MSELoss(), X3, Y3, d1[:5], d2, [0], [0]),
         "d1 has 5 entries; the model has"),
        (lambda: L.direction_landscape(model, nn.MSELoss(), X3, Y3, d1, d2, [[0, 1]], [0]),
         "alphas must be a non-empty 1-D array"),
        (lambda: L.direction_landscape(model, nn.MSELoss(), X3, Y3, d1, d2, [np.nan], [0]),
         "alphas holds non-finite"),
        (lambda: L.direction_landscape(model, per_item, X3, Y3, d1, d2, [0], [0]),
         "must return one number"),
    ]  # fmt: skip
    for call, message in cases:
        with pytest.raises(ValueError, match=message):
            call()
    _unchanged(model, snap)
