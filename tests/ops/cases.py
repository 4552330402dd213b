"""The op-case table: one row per op drives every op test (forward, gradient, dtype, stability).

Each row names the gradstep function, a float64 NumPy reference, the PyTorch function, the
shapes it takes, the domain of each input and whether it must stay finite at +-1000. Adding an op
means adding a row here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

import gradstep as gs
import gradstep.functional as F


@dataclass(frozen=True)
class OpCase:
    name: str
    gs: Callable
    ref: Callable
    torch: Callable
    kind: str = "unary"  # unary | binary | matmul | linear | loss | rows | classify | join
    domain: tuple = ("real",)  # per input: real | positive | nonzero | unit | offgrid
    finite_at_1000: bool = False
    min_dims: int = 0
    nonempty: bool = False

    def __str__(self) -> str:
        return self.name


def _np_sigmoid(x):
    with np.errstate(over="ignore"):
        return np.where(x >= 0, 1 / (1 + np.exp(-x)), np.exp(x) / (1 + np.exp(x)))


def _np_lse(x, axis, keepdims=False):
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)
    out = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    return out if keepdims else np.squeeze(out, axis=axis)


def _np_log_softmax(x):
    return x - _np_lse(x, -1, keepdims=True)


def _np_huber(a, b):
    d = np.abs(a - b)
    return np.mean(np.where(d < 1, 0.5 * d * d, d - 0.5))


def _np_bce(x, t):
    return np.mean(np.maximum(x, 0) - x * t + np.log1p(np.exp(-np.abs(x))))


def _labels(n: int, c: int) -> np.ndarray:
    return (np.arange(n) * 7 + 3) % c


def _np_ce(x):
    n, c = x.shape
    return -np.mean(_np_log_softmax(x)[np.arange(n), _labels(n, c)])


def _torch():
    import torch

    return torch


def _tdims(x, axis):
    return tuple(range(x.ndim)) if axis is None else (axis,)


def _treduce(name, axis=None, keepdims=False):
    def fn(x):
        torch = _torch()
        if x.ndim == 0:
            return x * 1
        return getattr(torch, name)(x, dim=_tdims(x, axis), keepdim=keepdims)

    return fn


def _t_ce(x):
    torch = _torch()
    n, c = x.shape
    return torch.nn.functional.cross_entropy(x, torch.as_tensor(_labels(n, c)))


def _np_gelu(x):
    from scipy.special import erfc

    return 0.5 * x * erfc(-x / np.sqrt(2))


def _pad_widths(x, before, after):
    return [(0, 0)] * (x.ndim - 1) + [(before, after)]


def _scatter_index(shape):
    """An index for scatter_add along axis 0 with repeats (row i goes to row 2i mod n)."""
    n = shape[0]
    rows = ((np.arange(n) * 2) % n).reshape((n,) + (1,) * (len(shape) - 1))
    return np.broadcast_to(rows, shape).copy()  # writable: torch warns on a read-only array


def _shift_index(shape):
    """A permutation along axis 0 (row i goes to row i + 1 mod n): scatter without repeats."""
    n = shape[0]
    rows = ((np.arange(n) + 1) % n).reshape((n,) + (1,) * (len(shape) - 1))
    return np.broadcast_to(rows, shape).copy()


def _np_scatter_shift(x):
    return 3 * np.roll(x, 1, axis=0)  # every row is written: out[(i + 1) % n] = 3 x[i]


def _np_scatter_add(x):
    out = x.copy()
    idx = _scatter_index(x.shape)
    grid = list(np.indices(x.shape, sparse=True))
    grid[0] = idx
    np.add.at(out, tuple(grid), 2 * x)
    return out


def _tf(name):
    def fn(*a, **k):
        return getattr(_torch().nn.functional, name)(*a, **k)

    return fn


CASES = [
    # elementwise, unary
    OpCase("neg", lambda x: -x, np.negative, lambda x: -x, finite_at_1000=True),
    OpCase("abs", abs, np.abs, lambda x: x.abs(), domain=("nonzero",), finite_at_1000=True),
    OpCase("exp", lambda x: x.exp(), np.exp, lambda x: x.exp()),
    OpCase("log", lambda x: x.log(), np.log, lambda x: x.log(), domain=("positive",)),
    OpCase("sqrt", lambda x: x.sqrt(), np.sqrt, lambda x: x.sqrt(), domain=("positive",)),
    OpCase("square", lambda x: x**2, np.square, lambda x: x**2, finite_at_1000=True),
    OpCase("pow_half", lambda x: x**0.5, np.sqrt, lambda x: x**0.5, domain=("positive",)),
    OpCase("rpow", lambda x: 2.0**x, lambda x: 2.0**x, lambda x: 2.0**x),
    OpCase("scale_shift", lambda x: 2.5 * x - 1, lambda x: 2.5 * x - 1, lambda x: 2.5 * x - 1),
    OpCase("reciprocal", lambda x: 1 / x, np.reciprocal, lambda x: 1 / x, domain=("nonzero",)),
    OpCase(
        "clip",
        lambda x: x.clip(-1, 1),
        lambda x: np.clip(x, -1, 1),
        lambda x: x.clamp(-1, 1),
        domain=("offgrid",),
        finite_at_1000=True,
    ),
    OpCase("sin", lambda x: x.sin(), np.sin, lambda x: x.sin(), finite_at_1000=True),
    OpCase("cos", lambda x: x.cos(), np.cos, lambda x: x.cos(), finite_at_1000=True),
    OpCase("log1p", lambda x: x.log1p(), np.log1p, lambda x: x.log1p(), domain=("positive",)),
    OpCase("expm1", lambda x: x.expm1(), np.expm1, lambda x: x.expm1()),
    OpCase("log2", lambda x: x.log2(), np.log2, lambda x: x.log2(), domain=("positive",)),
    OpCase(
        "rsqrt",
        lambda x: x.rsqrt(),
        lambda x: 1 / np.sqrt(x),
        lambda x: x.rsqrt(),
        domain=("positive",),
    ),
    # activations
    OpCase("silu", F.silu, lambda x: x * _np_sigmoid(x), _tf("silu"), finite_at_1000=True),
    OpCase(
        "elu",
        F.elu,
        lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0))),
        _tf("elu"),
        finite_at_1000=True,
    ),
    OpCase(
        "selu",
        F.selu,
        lambda x: (
            1.0507009873554805 * np.where(x > 0, x, 1.6732632423543772 * np.expm1(np.minimum(x, 0)))
        ),
        _tf("selu"),
        finite_at_1000=True,
    ),
    OpCase(
        "hardtanh",
        F.hardtanh,
        lambda x: np.clip(x, -1, 1),
        _tf("hardtanh"),
        domain=("offgrid",),
        finite_at_1000=True,
    ),
    OpCase(
        "relu6",
        lambda x: F.relu6(x * 4),
        lambda x: np.clip(x * 4, 0, 6),
        lambda x: _torch().nn.functional.relu6(x * 4),
        domain=("nonzero",),
        finite_at_1000=True,
    ),
    OpCase(
        "logsigmoid",
        F.logsigmoid,
        lambda x: -np.logaddexp(0, -x),
        _tf("logsigmoid"),
        finite_at_1000=True,
    ),
    OpCase(
        "gelu_tanh",
        lambda x: F.gelu(x, approximate="tanh"),
        lambda x: 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3))),
        lambda x: _torch().nn.functional.gelu(x, approximate="tanh"),
    ),
    OpCase(
        "gelu",
        F.gelu,
        _np_gelu,
        _tf("gelu"),
        finite_at_1000=True,
    ),
    OpCase(
        "softplus_beta",
        lambda x: F.softplus(x, beta=2.0, threshold=3.0),
        lambda x: np.where(2 * x > 3, x, np.logaddexp(0, 2 * x) / 2),
        lambda x: _torch().nn.functional.softplus(x, beta=2.0, threshold=3.0),
        domain=("offgrid",),
        finite_at_1000=True,
    ),
    OpCase("sigmoid", F.sigmoid, _np_sigmoid, lambda x: x.sigmoid(), finite_at_1000=True),
    OpCase(
        "relu",
        F.relu,
        lambda x: np.maximum(x, 0),
        lambda x: x.relu(),
        domain=("nonzero",),
        finite_at_1000=True,
    ),
    OpCase(
        "leaky_relu",
        F.leaky_relu,
        lambda x: np.where(x > 0, x, 0.01 * x),
        _tf("leaky_relu"),
        domain=("nonzero",),
        finite_at_1000=True,
    ),
    OpCase("tanh", F.tanh, np.tanh, lambda x: x.tanh(), finite_at_1000=True),
    OpCase(
        "softplus", F.softplus, lambda x: np.logaddexp(0, x), _tf("softplus"), finite_at_1000=True
    ),
    # softmax family: along the last axis
    OpCase(
        "softmax",
        F.softmax,
        lambda x: np.exp(_np_log_softmax(x)),
        lambda x: x.softmax(-1),
        kind="rows",
        min_dims=1,
        nonempty=True,
        finite_at_1000=True,
    ),
    OpCase(
        "log_softmax",
        F.log_softmax,
        _np_log_softmax,
        lambda x: x.log_softmax(-1),
        kind="rows",
        min_dims=1,
        nonempty=True,
        finite_at_1000=True,
    ),
    OpCase(
        "logsumexp",
        lambda x: F.logsumexp(x, axis=-1),
        lambda x: _np_lse(x, -1),
        lambda x: x.logsumexp(-1),
        kind="rows",
        min_dims=1,
        nonempty=True,
        finite_at_1000=True,
    ),
    # reductions
    OpCase("sum", lambda x: x.sum(), np.sum, _treduce("sum")),
    OpCase(
        "sum_axis0_keep",
        lambda x: x.sum(axis=0, keepdims=True),
        lambda x: np.sum(x, axis=0, keepdims=True),
        _treduce("sum", 0, True),
        min_dims=1,
    ),
    OpCase("mean", lambda x: x.mean(), np.mean, _treduce("mean"), nonempty=True),
    OpCase(
        "mean_last",
        lambda x: x.mean(axis=-1),
        lambda x: np.mean(x, axis=-1),
        _treduce("mean", -1),
        min_dims=1,
        nonempty=True,
    ),
    OpCase("max", lambda x: x.max(), np.max, _treduce("amax"), nonempty=True),
    OpCase("prod", lambda x: x.prod(), np.prod, lambda x: x.prod()),
    OpCase(
        "prod_last_keep",
        lambda x: x.prod(-1, keepdim=True),
        lambda x: np.prod(x, axis=-1, keepdims=True),
        lambda x: x.prod(-1, keepdim=True),
        min_dims=1,
    ),
    OpCase(
        "norm",
        lambda x: x.norm(),
        lambda x: np.sqrt(np.sum(x * x)),
        lambda x: x.norm(),
        domain=("nonzero",),
        nonempty=True,
    ),
    OpCase(
        "norm_p3_last",
        lambda x: x.norm(3, dim=-1),
        lambda x: np.sum(np.abs(x) ** 3, axis=-1) ** (1 / 3),
        lambda x: x.norm(3, dim=-1),
        domain=("nonzero",),
        min_dims=1,
        nonempty=True,
    ),
    OpCase(
        "norm_1_first_keep",
        lambda x: x.norm(1, dim=0, keepdim=True),
        lambda x: np.sum(np.abs(x), axis=0, keepdims=True),
        lambda x: x.norm(1, dim=0, keepdim=True),
        domain=("nonzero",),
        min_dims=1,
        nonempty=True,
    ),
    OpCase(
        "scatter_add",
        lambda x: x.scatter_add(0, _scatter_index(x.shape), x * 2),
        _np_scatter_add,
        lambda x: x.scatter_add(0, _torch().as_tensor(_scatter_index(x.shape)), x * 2),
        min_dims=1,
        nonempty=True,
    ),
    OpCase(
        "scatter_shift",
        lambda x: x.scatter(0, _shift_index(x.shape), x * 3),
        _np_scatter_shift,
        lambda x: x.scatter(0, _torch().as_tensor(_shift_index(x.shape)), x * 3),
        min_dims=1,
        nonempty=True,
    ),
    OpCase(
        "pad_replicate",
        lambda x: F.pad(x, (2, 1), mode="replicate"),
        lambda x: np.pad(x, _pad_widths(x, 2, 1), mode="edge"),
        lambda x: _tf("pad")(
            x.reshape((1,) * (3 - x.ndim) + x.shape), (2, 1), mode="replicate"
        ).reshape(x.shape[:-1] + (x.shape[-1] + 3,)),
        min_dims=1,
        nonempty=True,
    ),
    OpCase(
        "pad_circular",
        lambda x: F.pad(x, (1, 1), mode="circular"),
        lambda x: np.pad(x, _pad_widths(x, 1, 1), mode="wrap"),
        lambda x: _tf("pad")(
            x.reshape((1,) * (3 - x.ndim) + x.shape), (1, 1), mode="circular"
        ).reshape(x.shape[:-1] + (x.shape[-1] + 2,)),
        min_dims=1,
        nonempty=True,
    ),
    OpCase(
        "max_last_keep",
        lambda x: x.max(axis=-1, keepdims=True),
        lambda x: np.max(x, axis=-1, keepdims=True),
        _treduce("amax", -1, True),
        min_dims=1,
        nonempty=True,
    ),
    OpCase(
        "min_axis0",
        lambda x: x.min(axis=0),
        lambda x: np.min(x, axis=0),
        _treduce("amin", 0),
        min_dims=1,
        nonempty=True,
    ),
    OpCase(
        "var_last",
        lambda x: x.var(-1, correction=0),
        lambda x: np.var(x, axis=-1),
        lambda x: x.var(-1, correction=0),
        min_dims=1,
        nonempty=True,
    ),
    OpCase(
        "cumsum_last",
        lambda x: x.cumsum(-1),
        lambda x: np.cumsum(x, axis=-1),
        lambda x: x.cumsum(-1),
        min_dims=1,
    ),
    # shape
    OpCase("reshape", lambda x: x.reshape(-1), lambda x: x.reshape(-1), lambda x: x.reshape(-1)),
    OpCase(
        "transpose",
        lambda x: x.T,
        lambda x: x.T,
        lambda x: x.permute(tuple(reversed(range(x.ndim)))),
    ),
    OpCase(
        "slice", lambda x: x[..., ::2], lambda x: x[..., ::2], lambda x: x[..., ::2], min_dims=1
    ),
    OpCase(
        "gather_repeat",
        lambda x: x[np.array([0, 0, -1, 0])],
        lambda x: x[np.array([0, 0, -1, 0])],
        lambda x: x[[0, 0, -1, 0]],
        min_dims=1,
        nonempty=True,
    ),
    # binary, broadcasting
    OpCase(
        "add",
        lambda a, b: a + b,
        np.add,
        lambda a, b: a + b,
        kind="binary",
        domain=("real", "real"),
        finite_at_1000=True,
    ),
    OpCase(
        "sub",
        lambda a, b: a - b,
        np.subtract,
        lambda a, b: a - b,
        kind="binary",
        domain=("real", "real"),
        finite_at_1000=True,
    ),
    OpCase(
        "mul",
        lambda a, b: a * b,
        np.multiply,
        lambda a, b: a * b,
        kind="binary",
        domain=("real", "real"),
        finite_at_1000=True,
    ),
    OpCase(
        "div",
        lambda a, b: a / b,
        np.divide,
        lambda a, b: a / b,
        kind="binary",
        domain=("real", "nonzero"),
    ),
    OpCase(
        "pow",
        lambda a, b: a**b,
        np.power,
        lambda a, b: a**b,
        kind="binary",
        domain=("positive", "real"),
    ),
    OpCase(
        "where",
        lambda a, b: F.where(a.data > 0, a, b),
        lambda a, b: np.where(a > 0, a, b),
        lambda a, b: _torch().where(a > 0, a, b),
        kind="binary",
        domain=("nonzero", "real"),
        finite_at_1000=True,
    ),
    OpCase(
        "concatenate",
        lambda a, b: F.concatenate([a, b], axis=0),
        lambda a, b: np.concatenate([a, b]),
        lambda a, b: _torch().cat([a, b]),
        kind="join",
        domain=("real", "real"),
    ),
    OpCase(
        "stack",
        lambda a, b: F.stack([a, b], axis=-1),
        lambda a, b: np.stack([a, b], -1),
        lambda a, b: _torch().stack([a, b], -1),
        kind="same",
        domain=("real", "real"),
    ),
    # linear algebra
    OpCase(
        "matmul",
        lambda a, b: a @ b,
        np.matmul,
        lambda a, b: a @ b,
        kind="matmul",
        domain=("real", "real"),
    ),
    OpCase(
        "einsum_matmul",
        lambda a, b: gs.einsum("...ij,...jk->...ik", a, b) if a.ndim > 1 and b.ndim > 1 else a @ b,
        np.matmul,
        lambda a, b: (
            _torch().einsum("...ij,...jk->...ik", a, b) if a.ndim > 1 and b.ndim > 1 else a @ b
        ),
        kind="matmul",
        domain=("real", "real"),
    ),
    OpCase(
        "einsum_outer_trace",
        lambda a, b: gs.einsum("i,j->ij", a.reshape(-1), b.reshape(-1)),
        lambda a, b: np.einsum("i,j->ij", a.reshape(-1), b.reshape(-1)),
        lambda a, b: _torch().einsum("i,j->ij", a.reshape(-1), b.reshape(-1)),
        kind="same",
        domain=("real", "real"),
    ),
    OpCase(
        "linear",
        F.linear,
        lambda x, w, b: x @ w.T + b,
        _tf("linear"),
        kind="linear",
        domain=("real", "real", "real"),
    ),
    OpCase(
        "maximum",
        lambda a, b: a.maximum(b),
        np.maximum,
        lambda a, b: _torch().maximum(a, b),
        kind="same",
        domain=("real", "shifted"),
        finite_at_1000=True,
    ),
    OpCase(
        "minimum",
        lambda a, b: a.minimum(b),
        np.minimum,
        lambda a, b: _torch().minimum(a, b),
        kind="same",
        domain=("real", "shifted"),
        finite_at_1000=True,
    ),
    # losses
    OpCase(
        "mse_loss",
        F.mse_loss,
        lambda a, b: np.mean((a - b) ** 2),
        _tf("mse_loss"),
        kind="same",
        domain=("real", "real"),
        nonempty=True,
        finite_at_1000=True,
    ),
    OpCase(
        "l1_loss",
        F.l1_loss,
        lambda a, b: np.mean(np.abs(a - b)),
        _tf("l1_loss"),
        kind="same",
        domain=("real", "shifted"),
        nonempty=True,
        finite_at_1000=True,
    ),
    OpCase(
        "huber_loss",
        F.huber_loss,
        _np_huber,
        _tf("huber_loss"),
        kind="same",
        domain=("real", "real"),
        nonempty=True,
        finite_at_1000=True,
    ),
    OpCase(
        "bce_with_logits",
        F.binary_cross_entropy_with_logits,
        _np_bce,
        _tf("binary_cross_entropy_with_logits"),
        kind="same",
        domain=("real", "unit"),
        nonempty=True,
        finite_at_1000=True,
    ),
    OpCase(
        "cross_entropy",
        lambda x: F.cross_entropy(x, _labels(*x.shape)),
        _np_ce,
        _t_ce,
        kind="classify",
        nonempty=True,
        finite_at_1000=True,
    ),
]


def draw_values(rng: np.random.Generator, shape: tuple, domain: str) -> np.ndarray:
    """float64 values of ``shape`` from a domain where the op is smooth and well-conditioned."""
    x = rng.uniform(-2.0, 2.0, size=shape)
    if domain == "positive":
        return np.abs(x) + 0.5
    if domain == "nonzero":
        return np.sign(x + 1e-12) * (np.abs(x) + 0.3)
    if domain == "unit":
        return (x + 2.0) / 4.0
    if domain == "shifted":  # set from the first input by draw_inputs: see there
        return x
    if domain == "offgrid":  # keep clear of clip's corners at -1 and 1
        return np.where(np.abs(np.abs(x) - 1) < 0.05, x * 0.8, x)
    return x


def shift_apart(arrays: list, domains, rng: np.random.Generator) -> list:
    """Replace each "shifted" input by the first input plus an offset of 0.2 to 0.8 in size:
    a loss with a kink where its inputs are equal (l1) is then never sampled near it (two
    independent draws within 1e-6 of each other made the float64 gradcheck fail, rarely)."""
    out = list(arrays)
    for i, d in enumerate(domains):
        if d == "shifted" and out[0].shape == out[i].shape:
            offset = rng.uniform(0.2, 0.8, out[0].shape) * rng.choice([-1.0, 1.0], out[0].shape)
            out[i] = out[0] + offset
    return out
