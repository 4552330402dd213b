"""PyTorch's everyday Tensor vocabulary, checked against PyTorch itself (values and gradients)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

import gradstep as gs
import gradstep.functional as F

RNG = np.random.default_rng(0)
X = RNG.standard_normal((3, 4, 5))


def pair(x=X):
    return gs.tensor(x, requires_grad=True, dtype=np.float64), torch.tensor(x, requires_grad=True)


def same(ours, theirs, tol=1e-12):
    np.testing.assert_allclose(np.asarray(ours.data), theirs.detach().numpy(), rtol=tol, atol=tol)


CALLS = [
    ("sum dim", lambda t: t.sum(1)),
    ("sum dim keepdim", lambda t: t.sum(dim=-1, keepdim=True)),
    ("sum tuple dims", lambda t: t.sum(dim=(0, 2))),
    ("mean dim", lambda t: t.mean(dim=0)),
    ("amax", lambda t: t.amax(1)),
    ("amin keepdim", lambda t: t.amin(dim=2, keepdim=True)),
    ("max dim values", lambda t: t.max(1)[0]),
    ("max dim .values", lambda t: t.max(dim=2, keepdim=True).values),
    ("min dim values", lambda t: t.min(0).values),
    ("view", lambda t: t.view(-1, 5)),
    ("view tuple", lambda t: t.view((12, 5))),
    ("unsqueeze", lambda t: t.unsqueeze(1)),
    ("unsqueeze last", lambda t: t.unsqueeze(-1)),
    ("squeeze", lambda t: t.unsqueeze(0).squeeze()),
    ("squeeze dim", lambda t: t.unsqueeze(2).squeeze(2)),
    ("squeeze non-1 dim", lambda t: t.squeeze(1)),
    ("flatten", lambda t: t.flatten()),
    ("flatten from 1", lambda t: t.flatten(1)),
    ("flatten 0..1", lambda t: t.flatten(0, 1)),
    ("expand", lambda t: t[:, :1, :].expand(3, 4, 5)),
    ("expand -1 and new dim", lambda t: t[:1].expand(2, -1, 4, 5)),
    ("t", lambda t: t[0].t()),
    ("add alpha", lambda t: t.add(t * 2, alpha=0.5)),
    ("sub", lambda t: t.sub(1.5)),
    ("mul div", lambda t: t.mul(3).div(t * t + 1)),
    ("pow", lambda t: (t * t + 1).pow(0.5)),
    ("matmul", lambda t: t[0].matmul(t[1].t())),
    ("neg", lambda t: t.neg()),
    ("clone", lambda t: t.clone() * 2),
    ("softmax dim", lambda t: t.softmax(dim=1)),
    ("log_softmax dim", lambda t: t.log_softmax(1)),
    ("logsumexp dim", lambda t: t.logsumexp(dim=2, keepdim=True)),
]


@pytest.mark.parametrize(("name", "call"), CALLS, ids=[c[0] for c in CALLS])
def test_call_equals_pytorch_with_gradient(name, call):
    ours, theirs = pair()
    a, b = call(ours), call(theirs)
    assert tuple(a.shape) == tuple(b.shape), name
    same(a, b)
    seed = RNG.standard_normal(tuple(b.shape))
    a.backward(seed)
    b.backward(torch.tensor(seed))
    same(gs.tensor(ours.grad, dtype=np.float64), theirs.grad)


def test_max_dim_returns_values_and_indices_as_pytorch():
    ours, theirs = pair()
    values, indices = ours.max(1)
    ref = theirs.max(1)
    same(values, ref.values)
    np.testing.assert_array_equal(indices.data, ref.indices.numpy())
    _, pred = gs.tensor(X[0]).max(1)  # the homework idiom
    np.testing.assert_array_equal(pred.data, torch.tensor(X[0]).max(1)[1].numpy())
    assert float(ours.max()) == theirs.detach().max().item()
    np.testing.assert_array_equal(ours.max(axis=1).data, ref.values.detach().numpy())  # NumPy
    np.testing.assert_array_equal(ours.argmin(dim=2).data, theirs.argmin(dim=2).numpy())
    np.testing.assert_array_equal(
        ours.argmax(1, keepdim=True).data, theirs.argmax(1, keepdim=True).numpy()
    )


def test_size_numel_dim_and_the_numpy_spellings():
    t = gs.tensor(X)
    assert t.size() == (3, 4, 5) == tuple(torch.tensor(X).size())
    assert t.size(1) == 4 and t.size(-1) == 5
    assert t.size == 60 and t.numel() == 60 and t.dim() == 3  # NumPy's size stays an int
    with pytest.raises(TypeError, match="not both"):
        t.sum(dim=0, axis=1)


def test_dtype_methods_and_to():
    t = gs.tensor([1.7, -2.2, 0.0])
    assert t.long().dtype == np.int64 and t.long().tolist() == [1, -2, 0]
    assert t.int().dtype == np.int32 and t.bool().tolist() == [True, True, False]
    assert t.double().dtype == np.float64 and t.to(np.float64).dtype == np.float64
    assert t.to("cpu") is t and t.to("cpu", np.float64).dtype == np.float64
    assert t.to(gs.tensor([1.0], dtype=np.float64)).dtype == np.float64
    assert t.type() == "float32" and t.type(np.float64).dtype == np.float64
    with pytest.raises(ValueError, match="CPU"):
        t.to("cuda")
    assert t.isnan().tolist() == [False] * 3
    assert gs.tensor([1.0, np.inf]).isfinite().tolist() == [True, False]
    assert t.gt(0).tolist() == [True, False, False] and t.le(0).tolist() == [False, True, True]
    c = gs.tensor([1, 2]).clone()
    assert c.tolist() == [1, 2] and c.data is not gs.tensor([1, 2]).data


def test_functional_and_namespace_take_dim():
    ours, theirs = pair()
    same(F.softmax(ours, dim=1), torch.softmax(theirs, dim=1))
    same(F.softmax(ours, 1), torch.softmax(theirs, 1))
    same(F.log_softmax(ours, axis=2), torch.log_softmax(theirs, 2))
    same(gs.cat([ours, ours], dim=1), torch.cat([theirs, theirs], dim=1))
    same(gs.stack([ours, ours], dim=-1), torch.stack([theirs, theirs], dim=-1))
    same(gs.exp(ours), torch.exp(theirs))
    same(gs.sum(ours, dim=1), torch.sum(theirs, dim=1))
    same(gs.matmul(ours[0], ours[1].t()), torch.matmul(theirs[0], theirs[1].t()))
    same(gs.clamp(ours, min=0), torch.clamp(theirs, min=0))
    same(gs.relu([-1.0, 2.0]), torch.relu(torch.tensor([-1.0, 2.0])))


def test_dropout_p_one_gives_zeros_and_a_zero_gradient():
    x = gs.tensor(np.ones((2, 3)), requires_grad=True)
    y = F.dropout(x, p=1.0)
    assert np.all(y.data == 0)
    y.sum().backward()
    assert np.all(x.grad == 0)


def test_submodules_after_a_plain_import_and_the_core_stays_light():
    code = (
        "import sys, gradstep as gs\n"
        "heavy = {'pandas', 'torch', 'sklearn', 'matplotlib'}\n"
        "assert not heavy & set(sys.modules), heavy & set(sys.modules)\n"
        "print(gs.nn.Linear(2, 3).weight.shape, gs.optim.SGD.__name__,"
        " gs.data.DataLoader.__name__)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["(3,", "2)", "SGD", "DataLoader"]
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        gs.nope  # noqa: B018


def test_module_call_takes_any_arguments():
    class Scale(gs.nn.Module):
        def forward(self, x, y, *, factor=1.0):
            return (x + y) * factor

    out = Scale()(np.ones(3), gs.tensor([1.0, 2.0, 3.0]), factor=2.0)
    assert out.tolist() == [4.0, 6.0, 8.0]


def test_early_stopping_starts_afresh_on_a_second_fit():
    from gradstep import nn, optim
    from gradstep.data import DataLoader, TensorDataset
    from gradstep.train import EarlyStopping, fit

    rng = np.random.default_rng(1)
    X_, y = rng.standard_normal((64, 2)), rng.standard_normal((64, 1))
    stop = EarlyStopping("loss", patience=2)
    model = nn.Linear(2, 1)
    fit(
        model,
        nn.MSELoss(),
        optim.SGD(model.parameters(), lr=0.1),
        DataLoader(TensorDataset(X_, y), 16),
        epochs=30,
        callbacks=[stop],
        verbose=0,
    )
    first_best = stop.best
    model2 = nn.Linear(2, 1)
    h = fit(
        model2,
        nn.MSELoss(),
        optim.SGD(model2.parameters(), lr=1e-4),
        DataLoader(TensorDataset(X_ * 100, y * 100), 16),
        epochs=30,
        callbacks=[stop],
        verbose=0,
    )
    assert len(h.epochs) > 3 and stop.best != first_best  # not stopped by the first run's best
    with pytest.raises(ValueError, match="unknown metric 'acc'; known: accuracy"):
        fit(
            model,
            nn.MSELoss(),
            optim.SGD(model.parameters(), lr=0.1),
            DataLoader(TensorDataset(X_, y), 16),
            metrics=["acc"],
            verbose=0,
        )


EXPRESSIONS = [
    "x / 2",
    "x + 0.5",
    "x.exp()",
    "x ** 0.5",
    "0.7 ** x",
    "x / x",
    "x.sigmoid()",
    "x.tanh()",
    "x.sqrt()",
    "x.log()",
    "x * 2",
    "x ** 2",
    "x // 2",
    "x % 2",
    "x - 1",
    "F.sigmoid(x)",
    "x / 2.5 % 0.7",
    "-7 // x",
    "x.float() // 2",
]


def test_integer_mean_and_softmax_are_floats_where_pytorch_refuses():
    x = gs.tensor([1, 2, 3])
    assert x.mean().dtype == np.float32 and float(x.mean()) == 2.0
    assert F.softmax(x, 0).dtype == np.float32


@pytest.mark.parametrize("expr", EXPRESSIONS)
def test_integer_tensors_promote_as_in_pytorch(expr):
    ours = eval(expr, {"x": gs.tensor([1, 2, 3]), "F": F, "np": np})
    theirs = eval(expr, {"x": torch.tensor([1, 2, 3]), "F": torch.nn.functional, "np": np})
    assert np.dtype(str(theirs.dtype).removeprefix("torch.")) == ours.dtype, expr
    np.testing.assert_allclose(
        np.asarray(ours.data, np.float64), theirs.double().numpy(), rtol=1e-6
    )
    w = gs.tensor([0.5, 0.25, 2.0], requires_grad=True)
    if ours.dtype.kind == "f" and ours.shape == (3,):
        (w * ours).sum().backward()  # mixes with float32 parameters
        assert w.grad.dtype == np.float32


@pytest.mark.parametrize(
    "index",
    [
        (0, slice(None), [0, 1]),
        (1, [0, 2], slice(None)),
        ([0, 1], slice(None), [0, 1]),
        (0, [1, 2], [0, 3]),
        (slice(None), 1, [0, 3]),
        (-1, slice(1, 3), [3, 0, 3]),
    ],
)
def test_an_integer_beside_an_index_array_follows_pytorchs_axis_order(index):
    ours, theirs = pair(np.arange(24.0).reshape(2, 3, 4))
    a = ours[index]
    b = theirs[tuple(torch.tensor(i) if isinstance(i, list) else i for i in index)]
    assert a.shape == tuple(b.shape)
    same(a, b)
    seed = RNG.standard_normal(a.shape)
    a.backward(seed)
    b.backward(torch.tensor(seed))
    same(gs.tensor(ours.grad, dtype=np.float64), theirs.grad)


def test_module_apply_to_and_a_reassigned_buffer_stays_in_the_state_dict():
    from gradstep import nn

    class Norm(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(2, 2)
            self.register_buffer("running_mean", np.zeros(2))

        def forward(self, x):
            self.running_mean = self.running_mean * 0.9 + x.data.mean(axis=0) * 0.1
            return self.lin(x)

    m = Norm()
    m(np.ones((4, 2), np.float32))
    assert "running_mean" in m.state_dict()  # dropped out before
    np.testing.assert_allclose(m.state_dict()["running_mean"], [0.1, 0.1])
    seen = []
    m.apply(lambda mod: seen.append(type(mod).__name__))
    assert seen == ["Linear", "Norm"]
    m.to(np.float64)
    assert m.lin.weight.dtype == np.float64 and m.running_mean.dtype == np.float64
    assert m.to("cpu") is m
    with pytest.raises(ValueError, match="CPU"):
        m.to("cuda")


@pytest.mark.parametrize(
    "call",
    [
        lambda t: t.std(),
        lambda t: t.std(1),
        lambda t: t.var(dim=0, keepdim=True),
        lambda t: t.var(unbiased=False),
        lambda t: t.std(2, correction=0),
        lambda t: t.cumsum(dim=1),
    ],
)
def test_std_var_cumsum_equal_pytorch(call):
    ours, theirs = pair()
    a, b = call(ours), call(theirs)
    same(a, b, 1e-10)
    a.sum().backward()
    b.sum().backward()
    same(gs.tensor(ours.grad, dtype=np.float64), theirs.grad, 1e-10)


def test_steps_masks_and_closeness():
    t = gs.tensor([-1.5, 0.0, 2.5, 3.5])
    assert t.sign().tolist() == [-1, 0, 1, 1] and t.floor().tolist() == [-2, 0, 2, 3]
    assert t.ceil().tolist() == [-1, 0, 3, 4] and t.round().tolist() == [-2, 0, 2, 4]
    m = (t > 0) & (t < 3)
    assert m.tolist() == [False, False, True, False] and (~m).tolist() == [True, True, False, True]
    assert ((t < 0) | (t > 3)).tolist() == [True, False, False, True]
    assert (t > -5).all().item() and not (t > 0).all().item() and (t > 3).any().item()
    assert t.allclose(t + 1e-9) and not t.allclose(t + 1e-3)
    assert t.isclose(gs.tensor([-1.5, 1.0, 2.5, 3.5])).tolist() == [True, False, True, True]


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        ("SiLU()", "SiLU()"),
        ("ELU(0.5)", "ELU(0.5)"),
        ("SELU()", "SELU()"),
        ("GELU()", "GELU()"),
        ("GELU('tanh')", "GELU(approximate='tanh')"),
        ("Hardtanh(-2.0, 1.5)", "Hardtanh(-2.0, 1.5)"),
        ("ReLU6()", "ReLU6()"),
        ("LogSigmoid()", "LogSigmoid()"),
        ("Softplus(beta=2.0, threshold=3.0)", "Softplus(beta=2.0, threshold=3.0)"),
    ],
)
def test_activation_modules_equal_pytorchs(ours, theirs):
    x = np.linspace(-8, 8, 33)
    a, b = pair(x)
    out_a, out_b = eval(f"gs.nn.{ours}")(a), eval(f"torch.nn.{theirs}")(b)
    same(out_a, out_b, 1e-12)
    out_a.sum().backward()
    out_b.sum().backward()
    same(gs.tensor(a.grad, dtype=np.float64), b.grad, 1e-12)


LOSS_CASES = [
    ("ce plain", {}, "int"),
    ("ce weight", {"weight": [0.2, 1.0, 3.0, 0.5]}, "int"),
    ("ce ignore", {"ignore_index": 2}, "int"),
    ("ce smoothing", {"label_smoothing": 0.1}, "int"),
    ("ce all", {"weight": [0.2, 1.0, 3.0, 0.5], "ignore_index": 1, "label_smoothing": 0.2}, "int"),
    ("ce sum", {"reduction": "sum", "label_smoothing": 0.3}, "int"),
    ("ce none", {"reduction": "none", "weight": [1.0, 2.0, 3.0, 4.0]}, "int"),
    ("ce probs", {}, "prob"),
    ("ce probs smoothing weight", {"label_smoothing": 0.1, "weight": [1.0, 2.0, 0.5, 1.0]}, "prob"),
    ("ce NCd", {"weight": [0.2, 1.0, 3.0, 0.5]}, "ncd"),
    ("ce NCd probs", {}, "ncd-prob"),
]


@pytest.mark.parametrize(("name", "kwargs", "kind"), LOSS_CASES, ids=[c[0] for c in LOSS_CASES])
def test_cross_entropy_arguments_equal_pytorchs(name, kwargs, kind):
    rng = np.random.default_rng(3)
    shape = (6, 4, 3) if kind.startswith("ncd") else (6, 4)
    logits = rng.standard_normal(shape) * 3
    if kind in ("int", "ncd"):
        target = rng.integers(0, 4, (6, 3) if kind == "ncd" else 6)
        ours_t, theirs_t = target, torch.tensor(target)
    else:
        p = rng.random(shape)
        p /= p.sum(axis=1, keepdims=True)
        ours_t, theirs_t = gs.tensor(p, dtype=np.float64), torch.tensor(p)
    kw_t = {
        k: torch.tensor(v, dtype=torch.float64) if k == "weight" else v for k, v in kwargs.items()
    }
    kw_g = {k: np.array(v) if k == "weight" else v for k, v in kwargs.items()}
    a, b = pair(logits)
    out_a = F.cross_entropy(a, ours_t, **kw_g)
    out_b = torch.nn.functional.cross_entropy(b, theirs_t, **kw_t)
    same(out_a, out_b, 1e-10)
    out_a.sum().backward()
    out_b.sum().backward()
    same(gs.tensor(a.grad, dtype=np.float64), b.grad, 1e-10)


def test_nll_bce_smooth_l1_and_their_modules_equal_pytorchs():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((5, 3))
    labels = np.array([0, 2, 1, 2, 0])
    a, b = pair(x)
    la, lb = F.log_softmax(a, 1), torch.log_softmax(b, 1)
    w = [1.0, 0.5, 2.0]
    same(
        F.nll_loss(la, labels, np.array(w), ignore_index=1),
        torch.nn.functional.nll_loss(
            lb, torch.tensor(labels), torch.tensor(w, dtype=torch.float64), ignore_index=1
        ),
    )
    same(gs.nn.NLLLoss()(la, labels), torch.nn.NLLLoss()(lb, torch.tensor(labels)))
    p = rng.random((5, 3))
    p[0, 0], p[1, 1] = 0.0, 1.0  # the clamp at -100
    t = (rng.random((5, 3)) > 0.5).astype(float)
    pa, pb = pair(p)
    out_a, out_b = (
        F.binary_cross_entropy(pa, t),
        torch.nn.functional.binary_cross_entropy(pb, torch.tensor(t)),
    )
    same(out_a, out_b, 1e-10)
    same(
        gs.nn.BCELoss(reduction="sum")(pa, t),
        torch.nn.BCELoss(reduction="sum")(pb, torch.tensor(t)),
    )
    y = rng.standard_normal((5, 3))
    for beta in (1.0, 0.5, 0.0):
        same(
            F.smooth_l1_loss(a, y, beta=beta),
            torch.nn.functional.smooth_l1_loss(b, torch.tensor(y), beta=beta),
        )
    same(gs.nn.SmoothL1Loss(beta=2.0)(a, y), torch.nn.SmoothL1Loss(beta=2.0)(b, torch.tensor(y)))
    ce_a = gs.nn.CrossEntropyLoss(weight=np.array(w), label_smoothing=0.1)(a, labels)
    ce_b = torch.nn.CrossEntropyLoss(
        weight=torch.tensor(w, dtype=torch.float64), label_smoothing=0.1
    )(b, torch.tensor(labels))
    same(ce_a, ce_b)


def test_embedding_and_layernorm_equal_pytorchs_through_a_shared_state_dict():
    emb = gs.nn.Embedding(7, 3, padding_idx=0, dtype=np.float64)
    temb = torch.nn.Embedding(7, 3, padding_idx=0, dtype=torch.float64)
    temb.load_state_dict({k: torch.tensor(v) for k, v in emb.state_dict().items()})
    idx = np.array([[1, 0, 3], [3, 6, 0]])
    a, b = emb(idx), temb(torch.tensor(idx))
    same(a, b)
    seed = RNG.standard_normal(a.shape)
    a.backward(seed)
    b.backward(torch.tensor(seed))
    same(gs.tensor(emb.weight.grad, dtype=np.float64), temb.weight.grad)  # repeats add, pad 0
    with pytest.raises(IndexError, match="outside"):
        emb(np.array([7]))
    ln = gs.nn.LayerNorm((4, 5), dtype=np.float64)
    ln.weight.data[...] = RNG.standard_normal((4, 5))
    tln = torch.nn.LayerNorm((4, 5), dtype=torch.float64)
    tln.load_state_dict({k: torch.tensor(v) for k, v in ln.state_dict().items()})
    x, tx = pair()
    out, ref = ln(x), tln(tx)
    same(out, ref, 1e-10)
    out.sum().backward()
    ref.sum().backward()
    same(gs.tensor(x.grad, dtype=np.float64), tx.grad, 1e-10)
    same(gs.tensor(ln.weight.grad, dtype=np.float64), tln.weight.grad, 1e-10)


def test_init_functions_follow_pytorchs_bounds():
    from gradstep.nn import init

    w = gs.nn.Linear(300, 200).weight
    init.xavier_uniform_(w)
    bound = np.sqrt(6 / 500)
    assert np.abs(w.data).max() <= bound and np.abs(w.data).max() > 0.9 * bound
    init.kaiming_uniform_(w, nonlinearity="relu")
    assert np.abs(w.data).max() <= np.sqrt(2) * np.sqrt(3 / 300)
    init.kaiming_normal_(w, mode="fan_out", nonlinearity="relu")
    assert abs(w.data.std() - np.sqrt(2 / 200)) < 0.01
    init.xavier_normal_(w, gain=2.0)
    assert abs(w.data.std() - 2 * np.sqrt(2 / 500)) < 0.01
    init.zeros_(w)
    assert not w.data.any()
    init.constant_(w, 0.5)
    init.ones_(gs.nn.Linear(2, 2).bias)
    assert np.all(w.data == 0.5) and w.dtype == np.float32
    with pytest.raises(ValueError, match="2 dimensions"):
        init.xavier_uniform_(gs.nn.Linear(2, 2).bias)


def test_a_layer_built_with_float64_is_float64():
    layer = gs.nn.Linear(3, 2, dtype=np.float64)  # was silently float32
    assert layer.weight.dtype == np.float64 and layer.bias.dtype == np.float64
    assert gs.nn.Linear(3, 2).weight.dtype == np.float32


GATHER = np.random.default_rng(5).integers(0, 4, (3, 2, 5))  # repeats: gradients add
SCATTER = np.stack([np.random.default_rng(k).permutation(4)[:2] for k in range(15)], -1)
SCATTER = SCATTER.reshape(2, 3, 5).transpose(1, 0, 2)  # (3, 2, 5), distinct along dim 1
INDEX_CALLS = [
    ("gather", lambda t, m: t.gather(1, m.tensor(GATHER))),
    ("index_select", lambda t, m: t.index_select(2, m.tensor([4, 0, 4]))),
    ("masked_fill", lambda t, m: t.masked_fill(t > 0.5, -1.0)),
    ("flip", lambda t, m: t.flip(0, 2)),
    ("repeat", lambda t, m: t[0].repeat(2, 1, 3)),
    ("tril", lambda t, m: t.tril()),
    ("triu -1", lambda t, m: t.triu(-1)),
    ("sort values", lambda t, m: t.sort(dim=1)[0]),
    ("sort desc values", lambda t, m: t.sort(dim=-1, descending=True).values),
    ("topk values", lambda t, m: t.topk(2, dim=1).values),
    ("scatter", lambda t, m: t.scatter(1, m.tensor(SCATTER), t[:, :2] * 3)),
    ("scatter value", lambda t, m: t.scatter(2, m.tensor(GATHER), value=-2.0)),
    ("scatter_add", lambda t, m: t.scatter_add(1, m.tensor(SCATTER), t[:, 1:3] * 2)),
    ("scatter_add repeats", lambda t, m: t.scatter_add(1, m.tensor(GATHER[..., :4]), t[:, :2, :4])),
    ("prod dim", lambda t, m: t.prod(1)),
    ("prod with zeros", lambda t, m: (t * (t > 0.3)).prod(dim=2, keepdim=True)),
    ("norm", lambda t, m: t.norm()),
    ("norm p dim", lambda t, m: t.norm(3, dim=1)),
    ("norm inf", lambda t, m: t.norm(float("inf"), dim=(0, 2))),
    ("norm 1 keepdim", lambda t, m: t.norm(p=1, dim=-1, keepdim=True)),
    ("einsum batch matmul", lambda t, m: m.einsum("bij,bkj->bik", t, t * 2)),
    ("einsum implicit", lambda t, m: m.einsum("ijk,ijl", t, t.exp())),
    ("einsum diagonal", lambda t, m: m.einsum("ii->i", t[0, :, :4])),
    ("einsum ellipsis", lambda t, m: m.einsum("...j,j->...", t, t[0, 0])),
    ("pad reflect", lambda t, m: m.nn.functional.pad(t, (2, 1, 1, 2), mode="reflect")),
    ("pad replicate", lambda t, m: m.nn.functional.pad(t, (3, 0), mode="replicate")),
    ("pad circular", lambda t, m: m.nn.functional.pad(t, (1, 2, 2, 1), mode="circular")),
    ("gelu exact", lambda t, m: m.nn.functional.gelu(t * 3)),
    ("GELU module", lambda t, m: m.nn.GELU()(t * 3)),
]


@pytest.mark.parametrize(("name", "call"), INDEX_CALLS, ids=[c[0] for c in INDEX_CALLS])
def test_indexing_calls_equal_pytorch_with_gradient(name, call):
    ours, theirs = pair()
    a, b = call(ours, gs), call(theirs, torch)
    assert tuple(a.shape) == tuple(b.shape), name
    same(a, b)
    seed = RNG.standard_normal(tuple(b.shape))
    a.backward(seed)
    b.backward(torch.tensor(seed))
    same(gs.tensor(ours.grad, dtype=np.float64), theirs.grad)


def test_sort_topk_indices_one_hot_pad_and_constructors():
    x = np.array([[3.0, 1.0, 2.0, 1.0], [0.0, 5.0, 5.0, -1.0]])
    ours, theirs = gs.tensor(x), torch.tensor(x)
    stable = theirs.sort(dim=1, stable=True).indices
    np.testing.assert_array_equal(ours.sort(1).indices.data, stable)
    np.testing.assert_array_equal(ours.topk(2).indices.data[:, 0], theirs.topk(2).indices[:, 0])
    np.testing.assert_array_equal(
        F.one_hot(np.array([0, 2, 1]), 4).data,
        torch.nn.functional.one_hot(torch.tensor([0, 2, 1]), 4).numpy(),
    )
    a, b = pair(x)
    pa = F.pad(a, (1, 2, 0, 1), value=-3.0)
    pb = torch.nn.functional.pad(b, (1, 2, 0, 1), value=-3.0)
    same(pa, pb)
    seed = RNG.standard_normal(pa.shape)
    pa.backward(seed)
    pb.backward(torch.tensor(seed))
    same(gs.tensor(a.grad, dtype=np.float64), b.grad)
    assert gs.full((2, 3), 7.0).tolist() == torch.full((2, 3), 7.0).tolist()
    assert gs.eye(3).tolist() == torch.eye(3).tolist()
    np.testing.assert_allclose(gs.linspace(0, 1, 5).data, torch.linspace(0, 1, 5).numpy())
    r = gs.randint(0, 5, (100,))
    assert r.dtype == np.int64 and r.data.min() >= 0 and r.data.max() < 5


def _net(lib):
    """The same network in gradstep or PyTorch (lib is gs or torch)."""

    class Net(lib.nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = lib.nn.ModuleList([lib.nn.Linear(3, 4), lib.nn.Linear(4, 4)])
            self.blocks.append(lib.nn.Linear(4, 2))
            self.heads = lib.nn.ModuleDict({"a": lib.nn.Linear(2, 1), "b": lib.nn.Softmax(dim=1)})

        def forward(self, x):
            for block in self.blocks:
                x = block(x).tanh()
            return self.heads["b"](x), self.heads["a"](x)

    return Net()


def test_module_list_and_dict_register_like_pytorchs():
    ours, theirs = _net(gs).double(), _net(torch).double()
    assert list(ours.state_dict()) == list(theirs.state_dict())
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    x = RNG.standard_normal((5, 3))
    for a, b in zip(ours(gs.tensor(x, dtype=np.float64)), theirs(torch.tensor(x))):
        same(a, b, 1e-12)
    assert len(ours.blocks) == 3 and isinstance(ours.blocks[1:], gs.nn.ModuleList)
    assert "a" in ours.heads and list(ours.heads.keys()) == ["a", "b"]
    ours.eval()
    assert not ours.blocks[0].training and not ours.heads["a"].training
    with pytest.raises(TypeError, match="not a Module"):
        ours.blocks.append("layer")
    logp = gs.nn.LogSoftmax(dim=1)(gs.tensor(x, dtype=np.float64))
    same(logp, torch.nn.LogSoftmax(dim=1)(torch.tensor(x)), 1e-12)
