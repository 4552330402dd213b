"""Lowercase functions over tensors (``import gradstep.functional as F``).

Each is the same op as the Tensor method and the ``nn`` module of that name. Arguments may be
Tensors, NumPy arrays or Python numbers; the result is always a Tensor.
"""

from __future__ import annotations

import numpy as np

from gradstep.operands import _constant, _floating, _pair, _raw
from gradstep.ops import activation, elementwise, linalg, loss, reduce, shape
from gradstep.tensor import Tensor
from gradstep.tensor_torch import _dim


def _t(x) -> Tensor:
    return x if isinstance(x, Tensor) else Tensor(x)


def _tf(x) -> Tensor:
    """A floating tensor: integers promote to the default dtype, as PyTorch's floating ops do."""
    return _floating(_t(x))


def sigmoid(x) -> Tensor:
    """1 / (1 + e^-x), finite and precise at any x (see :func:`ops.activation.stable_sigmoid`)."""
    return activation.Sigmoid.apply(_tf(x))


def relu(x) -> Tensor:
    """max(x, 0)."""
    return activation.ReLU.apply(_t(x))


def leaky_relu(x, negative_slope: float = 0.01) -> Tensor:
    """x for x > 0, negative_slope * x otherwise."""
    return activation.LeakyReLU.apply(_t(x), negative_slope)


def tanh(x) -> Tensor:
    return activation.Tanh.apply(_tf(x))


def softplus(x, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    """log(1 + e^(beta x)) / beta, a smooth ReLU that never overflows; x itself where
    beta x > threshold (as PyTorch)."""
    x = _tf(x)
    if beta == 1 and threshold >= 20:  # the op's own stable form equals x there to the last bit
        return activation.Softplus.apply(x)
    b = np.asarray(beta, dtype=x.dtype)
    smooth = activation.Softplus.apply(x * b) / b
    return where(x * b > threshold, x, smooth)


def silu(x) -> Tensor:
    """x * sigmoid(x) (also called swish)."""
    x = _tf(x)
    return x * activation.Sigmoid.apply(x)


def elu(x, alpha: float = 1.0) -> Tensor:
    """x for x > 0, alpha (e^x - 1) otherwise (the exponential is of min(x, 0): no overflow)."""
    x = _tf(x)
    neg = x.clip(max=0).expm1() * np.asarray(alpha, dtype=x.dtype)
    return where(x > 0, x, neg)


def selu(x) -> Tensor:
    """scale * elu(x, alpha) with the self-normalising constants (Klambauer et al., 2017)."""
    alpha, scale = 1.6732632423543772, 1.0507009873554805
    x = _tf(x)
    return elu(x, alpha) * np.asarray(scale, dtype=x.dtype)


def hardtanh(x, min_val: float = -1.0, max_val: float = 1.0) -> Tensor:
    """x clipped to [min_val, max_val]; the gradient is 1 strictly inside only (PyTorch's
    hardtanh, unlike its clamp, gives 0 at the bounds themselves)."""
    x = _tf(x)
    inside = (x > min_val) & (x < max_val)
    return where(inside, x, x.clip(min_val, max_val).detach())


def relu6(x) -> Tensor:
    return hardtanh(x, 0.0, 6.0)


def logsigmoid(x) -> Tensor:
    """log sigmoid(x) = -softplus(-x), finite at any x."""
    return -softplus(-_tf(x))


def gelu(x, approximate: str = "none") -> Tensor:
    """x * Phi(x), Phi the standard normal CDF (PyTorch's default, ``approximate="none"``), or
    PyTorch's tanh form 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) with
    ``approximate="tanh"``."""
    x = _tf(x)
    if approximate == "none":
        return activation.GELU.apply(x)
    if approximate != "tanh":
        raise ValueError(f"gelu: approximate is 'none' or 'tanh', got {approximate!r}")
    c = np.asarray(np.sqrt(2 / np.pi), dtype=x.dtype)
    k = np.asarray(0.044715, dtype=x.dtype)
    return x * 0.5 * (1 + (c * (x + k * x * x * x)).tanh())


def softmax(x, dim=None, *, axis=None) -> Tensor:
    """exp(x) / sum(exp(x)) along ``dim`` (default the last), computed after subtracting the
    max."""
    return loss.Softmax.apply(_tf(x), axis=_dim(dim, axis, -1))


def log_softmax(x, dim=None, *, axis=None) -> Tensor:
    """x - logsumexp(x) along ``dim`` (default the last); exact for inputs of any offset."""
    return loss.LogSoftmax.apply(_tf(x), axis=_dim(dim, axis, -1))


def logsumexp(x, dim=None, keepdim: bool = False, *, axis=None, keepdims=None) -> Tensor:
    """log(sum(exp(x))) over ``dim`` (all by default), computed after subtracting the max."""
    keep = bool(keepdim if keepdims is None else keepdims)
    return reduce.LogSumExp.apply(_tf(x), axis=_dim(dim, axis), keepdims=keep)


def linear(x, weight, bias=None) -> Tensor:
    """x @ weight.T + bias, with weight of shape (out_features, in_features)."""
    return linalg.Linear.apply(_t(x), weight, bias)


def _target(pred: Tensor, target):
    return target if isinstance(target, Tensor) else _constant(target, pred.dtype)


def mse_loss(input, target, reduction: str = "mean") -> Tensor:
    """Mean squared error, (input - target)^2 averaged (or summed, or kept per element)."""
    input = _t(input)
    return loss.MSE.apply(*_pair(input, _target(input, target)), reduction=reduction)


def l1_loss(input, target, reduction: str = "mean") -> Tensor:
    """Mean absolute error |input - target|: the lecture's MAE."""
    input = _t(input)
    return loss.L1.apply(*_pair(input, _target(input, target)), reduction=reduction)


def huber_loss(input, target, reduction: str = "mean", delta: float = 1.0) -> Tensor:
    """Squared error for |d| < delta, linear beyond: robust to outliers."""
    input = _t(input)
    return loss.Huber.apply(*_pair(input, _target(input, target)), reduction=reduction, delta=delta)


def binary_cross_entropy_with_logits(
    logits, target, weight=None, reduction: str = "mean", pos_weight=None
) -> Tensor:
    """Binary cross-entropy of sigmoid(logits) against targets in [0, 1], computed stably.

    ``pos_weight`` (one per class, broadcast over the last dimension) scales the positive
    term, ``weight`` every element, as PyTorch's: -w [p y log s(x) + (1 - y) log(1 - s(x))].
    """
    logits = _t(logits)
    if weight is None and pos_weight is None:
        return loss.BCEWithLogits.apply(
            *_pair(logits, _target(logits, target)), reduction=reduction
        )
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    x, y = _pair(logits, _target(logits, target))
    pos = logsigmoid(x) * y
    if pos_weight is not None:
        pos = pos * _pair(x, pos_weight)[1]
    out = -(pos + logsigmoid(-x) * (1 - y))
    if weight is not None:
        out = out * _pair(x, weight)[1]
    return out if reduction == "none" else (out.sum() if reduction == "sum" else out.mean())


def normalize(x, p: float = 2.0, dim: int = 1, eps: float = 1e-12) -> Tensor:
    """x / max(||x||_p, eps) along ``dim`` (PyTorch's F.normalize)."""
    x = _tf(x)
    n = x.norm(p, dim=dim, keepdim=True)
    return x / n.clip(min=eps)


def dropout(x, p: float = 0.5, training: bool = True, generator=None) -> Tensor:
    """Zero each element with probability p and scale the rest by 1/(1-p) (inverted dropout)."""
    from gradstep.random import default_generator

    if not 0 <= p <= 1:
        raise ValueError(f"dropout probability p must be in [0, 1], got {p}")
    x = _t(x)
    if not training or p == 0:
        return x
    if p == 1:  # everything dropped, as PyTorch: zeros, and a zero gradient
        return x * np.zeros((), dtype=x.dtype)
    return activation.Dropout.apply(x, p, generator or default_generator())


def where(condition, x, y) -> Tensor:
    """Elementwise ``x if condition else y``; the gradient flows to the chosen side."""
    cond = np.asarray(_raw(condition), dtype=bool)
    if not isinstance(x, Tensor) and not isinstance(y, Tensor):
        x = _t(x)
    x, y = _pair(x, y)
    return elementwise.Where.apply(cond, x, y)


def one_hot(labels, num_classes: int = -1) -> Tensor:
    """Integer labels of shape S as an int64 tensor of shape S + (num_classes,)."""
    labels = np.asarray(_raw(labels))
    if labels.dtype.kind not in "iu":
        raise TypeError(f"one_hot: labels must be integers, got dtype {labels.dtype}")
    n = int(labels.max()) + 1 if num_classes < 0 else num_classes
    if labels.size and (labels.min() < 0 or labels.max() >= n):
        raise ValueError(f"one_hot: a label is outside [0, {n})")
    return Tensor((labels[..., None] == np.arange(n)).astype(np.int64))


_PAD_MODES = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def pad(x, pad: tuple, mode: str = "constant", value: float = 0.0) -> Tensor:
    """PyTorch's pad: ``pad`` lists (before, after) pairs from the last dimension backwards.

    ``mode``: "constant" (``value``), "reflect" (mirrored, the edge not repeated),
    "replicate" (the edge repeated) or "circular" (wrapped around). The gradient is the
    input's part of the upstream gradient; in the other modes a cell read twice gets both.
    """
    if len(pad) % 2 or len(pad) // 2 > np.ndim(_raw(x)):
        raise ValueError(f"pad: needs (before, after) pairs for at most x.ndim dims, got {pad}")
    x = _t(x)
    widths = [(0, 0)] * x.ndim
    for i in range(len(pad) // 2):
        widths[x.ndim - 1 - i] = (int(pad[2 * i]), int(pad[2 * i + 1]))
    if mode in _PAD_MODES:
        out = x
        for d, (a, b) in enumerate(widths):
            if a or b:
                n = x.shape[d]
                if a < 0 or b < 0 or (mode == "reflect" and max(a, b) >= n) or n == 0:
                    raise ValueError(
                        f"pad: {mode} padding of ({a}, {b}) does not fit dimension {d} of size {n}"
                    )
                src = np.pad(np.arange(n), (a, b), mode=_PAD_MODES[mode])
                out = out.index_select(d, src)
        return out
    if mode != "constant":
        raise ValueError(f"pad: mode is constant, reflect, replicate or circular, got {mode!r}")
    shape = tuple(n + a + b for n, (a, b) in zip(x.shape, widths))
    inner = tuple(slice(a, a + n) for n, (a, _) in zip(x.shape, widths))
    mask = np.zeros(shape, dtype=bool)
    mask[inner] = True
    index = np.cumsum(mask.reshape(-1)) - 1  # where each padded cell reads from in x
    flat = x.reshape(-1)[np.where(mask.reshape(-1), index, 0)]
    return where(mask, flat.reshape(shape), np.asarray(value, dtype=x.dtype))


def einsum(subscripts: str, *operands) -> Tensor:
    """NumPy's and PyTorch's einsum (``...`` and the implicit output included), with the
    gradient of every operand. ``einsum("ij,jk", [a, b])`` (a list) is taken too."""
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    tensors = _same_dtype("einsum", list(operands))
    return linalg.Einsum.apply(*tensors, subscripts=subscripts)


def norm(x, p=2, dim=None, keepdim: bool = False) -> Tensor:
    """The p-norm over ``dim`` (all elements by default): p = 2 ("fro"), 1, inf, -inf, 0 or
    any other number."""
    return _t(x).norm(p, dim, keepdim)


def prod(x, dim=None, keepdim: bool = False) -> Tensor:
    return _t(x).prod(dim, keepdim)


def _same_dtype(name: str, tensors: list) -> list:
    tensors = [_t(t) for t in tensors]
    if not tensors:
        raise ValueError(f"{name} needs at least one tensor")
    dtypes = {str(t.dtype) for t in tensors}
    if len(dtypes) > 1:
        raise TypeError(f"{name}: tensors have different dtypes {sorted(dtypes)}")
    return tensors


def concatenate(tensors, dim=None, *, axis=None) -> Tensor:
    """Join tensors along an existing axis (``dim``, default 0)."""
    tensors = _same_dtype("concatenate", tensors)
    return shape.Concatenate.apply(*tensors, axis=_dim(dim, axis, 0))


def stack(tensors, dim=None, *, axis=None) -> Tensor:
    """Join tensors along a new axis (``dim``, default 0)."""
    tensors = _same_dtype("stack", tensors)
    return shape.Stack.apply(*tensors, axis=_dim(dim, axis, 0))


cat = concatenate


# PyTorch's losses with their full arguments (weight, ignore_index, label_smoothing, ...): the
# fused ops above stay the fast path for the plain case.
from gradstep.functional_losses import (  # noqa: E402 - needs the names above
    binary_cross_entropy as binary_cross_entropy,
)
from gradstep.functional_losses import cross_entropy as cross_entropy  # noqa: E402
from gradstep.functional_losses import nll_loss as nll_loss  # noqa: E402
from gradstep.functional_losses import smooth_l1_loss as smooth_l1_loss  # noqa: E402
