"""Softmax family and losses, each fused into one node with a closed-form backward.

Every loss takes ``reduction`` in {'mean', 'sum', 'none'} and refuses an empty batch: a mean
over zero samples is NaN, and a NaN loss in epoch 7 is much harder to trace than an error now.
"""

from __future__ import annotations

import numpy as np

from gradstep.autograd import Function
from gradstep.backend import const
from gradstep.ops.activation import stable_sigmoid

REDUCTIONS = ("mean", "sum", "none")


def _reduce(loss, reduction):
    # .sum() / n rather than np.mean: the same pairwise sum without NumPy's Python wrapper
    if reduction == "mean":
        return loss.sum() / loss.size
    if reduction == "sum":
        return loss.sum()
    return loss


def _scale(g, n, reduction, dtype):
    """The factor each element's gradient gets from the reduction."""
    if reduction == "mean":
        return np.divide(g, const(n, g, dtype))
    return g


def _check(name, pred, target, reduction):
    if reduction not in REDUCTIONS:
        raise ValueError(f"{name}: reduction must be one of {REDUCTIONS}, got {reduction!r}")
    if pred.size == 0:
        raise ValueError(f"{name}: empty batch (input of shape {pred.shape}); nothing to average")
    if target is not None and pred.shape != target.shape:
        raise ValueError(
            f"{name}: input shape {pred.shape} and target shape {target.shape} differ; "
            "reshape one of them (broadcasting here is almost always a bug)"
        )


def _checker(name):
    """The ``Function.check`` of a loss of two same-shaped arrays (run once per shape when
    compiled)."""

    def check(pred, target, reduction="mean", **_):
        _check(name, pred, target, reduction)

    return check


def _labels(labels):
    """Class labels as an array (a list becomes a NumPy one; CuPy arrays stay where they are)."""
    return labels if hasattr(labels, "dtype") else np.asarray(labels)


def stable_log_softmax(x, axis):
    """(x - m) - log(sum(exp(x - m))) with m the max along ``axis``.

    Subtracting m first is exact (the shifted values are what gets rounded, nothing else), so
    log_softmax(x + c) equals log_softmax(x) up to the rounding of x + c, and float32 keeps its
    precision at |x| ~ 1000 where x - logsumexp(x) would lose four digits.
    """
    m = np.max(x, axis=axis, keepdims=True)
    shifted = x - np.where(np.isfinite(m), m, np.zeros((), dtype=x.dtype))
    with np.errstate(divide="ignore"):
        return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))


class Softmax(Function):
    """y_i = exp(x_i - max) / sum_j exp(x_j - max);  dx = y * (g - sum(g * y))."""

    def forward(self, x, axis=-1):
        self.axis = axis
        if x.size == 0:
            self.y = x.copy()
            return self.y
        m = np.max(x, axis=axis, keepdims=True)
        e = np.exp(x - np.where(np.isfinite(m), m, np.zeros((), x.dtype)))
        self.y = e / np.sum(e, axis=axis, keepdims=True)
        return self.y

    def backward(self, g):
        y = self.y
        return y * (g - np.sum(g * y, axis=self.axis, keepdims=True))


class LogSoftmax(Function):
    """y = x - logsumexp(x);  dx = g - softmax(x) * sum(g). Exact for shifted input."""

    def forward(self, x, axis=-1):
        self.axis = axis
        if x.size == 0:
            self.y = x.copy()
            return self.y
        self.y = stable_log_softmax(x, axis)
        return self.y

    def backward(self, g):
        return g - np.exp(self.y) * np.sum(g, axis=self.axis, keepdims=True)


class CrossEntropy(Function):
    """loss_n = -log softmax(logits_n)[label_n];  dlogits = softmax - onehot(label).

    ``logits`` of shape (N, C), ``labels`` integers of shape (N,) in [0, C).
    """

    @staticmethod
    def check(logits, labels, reduction="mean"):
        if logits.ndim != 2:
            raise ValueError(
                f"cross_entropy: logits must have shape (batch, classes), got {logits.shape}"
            )
        _check("cross_entropy", logits, None, reduction)
        labels = _labels(labels)
        if labels.dtype.kind not in "iu":
            raise TypeError(
                f"cross_entropy: labels must be integer class indices, got dtype {labels.dtype}"
            )
        n = logits.shape[0]
        if labels.shape != (n,):
            raise ValueError(
                f"cross_entropy: labels must have shape ({n},) for logits {logits.shape}, "
                f"got {labels.shape}"
            )

    def forward(self, logits, labels, reduction="mean"):
        labels = _labels(labels)  # the range is a property of the values: checked every call
        n, c = logits.shape
        bad = (labels < 0) | (labels >= c)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"cross_entropy: label {int(labels[i])} at index {i} is outside [0, {c})"
            )
        self.labels, self.reduction, self.n = labels, reduction, n
        self.logp = stable_log_softmax(logits, 1)
        loss = -self.logp[np.arange(n), labels]
        return _reduce(loss, reduction)

    def backward(self, g):
        grad = np.exp(self.logp)
        grad[np.arange(self.n), self.labels] -= 1
        if self.reduction == "none":
            grad *= g[:, None]
        else:
            grad *= _scale(g, self.n, self.reduction, grad.dtype)
        return grad, None

    def lower(self, L, logits, labels, reduction="mean"):
        if reduction != "mean" or labels.dtype.kind not in "iu" or logits.ndim != 2:
            raise L.unsupported(f"cross_entropy with reduction={reduction!r} (native: 'mean')")
        n, c = logits.shape
        L.check(
            f"labels_outside({labels}, {c}, status)",
            "cross_entropy: label {1} at index {0} is outside [0, " + f"{c})",
        )
        logp = L.buffer(logits.shape, "logp")
        loss = L.scalar("cross_entropy")
        L.emit(f"{loss} = _T(cross_entropy_forward({logits}, {labels}, {logp}))")
        L.keep(self, logp=logp, labels=labels, n=n)
        return loss

    def lower_backward(self, L, g, grads):
        k = L.kept_by(self)
        if grads[0] is not None:
            scale = f"({g} / _T({k['n']}))"
            L.emit(f"cross_entropy_backward({scale}, {k['logp']}, {k['labels']}, {grads[0]})")


class BCEWithLogits(Function):
    """loss = max(x, 0) - x t + log(1 + e^-|x|), the stable form of -[t log s + (1-t) log(1-s)].

    dx = sigma(x) - t, dt = -x, with s = sigma(x).
    """

    check = staticmethod(_checker("binary_cross_entropy_with_logits"))

    def forward(self, x, t, reduction="mean"):
        self.x, self.t, self.reduction = x, t, reduction
        loss = np.maximum(x, 0) - x * t + np.log1p(np.exp(-np.abs(x)))
        return _reduce(loss, reduction)

    def backward(self, g):
        nx, nt = self.needs_input_grad
        g = _scale(g, self.x.size, self.reduction, self.x.dtype)
        gx = g * (stable_sigmoid(self.x) - self.t) if nx else None
        gt = -g * self.x if nt else None
        return gx, gt


class MSE(Function):
    """loss = (a - b)^2;  da = 2 (a - b), db = -da."""

    check = staticmethod(_checker("mse_loss"))

    def forward(self, a, b, reduction="mean"):
        self.d, self.reduction = a - b, reduction
        return _reduce(self.d * self.d, reduction)

    def backward(self, g):
        d = self.d
        ga = const(2, d) * d
        ga *= _scale(g, d.size, self.reduction, d.dtype)
        return ga, (-ga if self.needs_input_grad[1] else None)

    def lower(self, L, a, b, reduction="mean"):
        return _lower_difference_loss(self, L, a, b, reduction, "mse")

    def lower_backward(self, L, g, grads):
        _lower_difference_loss_backward(self, L, g, grads, "mse")


def _lower_difference_loss(fn, L, a, b, reduction, kernel, *extra):
    """The native form of a mean loss of ``d = a - b`` (MSE, L1, Huber): ``<kernel>_forward``
    fills ``d`` and returns the mean, ``<kernel>_backward`` writes the gradients from ``d``;
    ``extra`` are the loss's own numbers (Huber's delta), passed after ``d`` to both."""
    if reduction != "mean" or a.shape != b.shape or b.dtype != a.dtype or a.dtype != L.dtype:
        raise L.unsupported(
            f"{kernel} loss with reduction={reduction!r} of shapes {a.shape}, {b.shape} "
            f"(native: 'mean' of equal shapes and dtypes)"
        )
    d = L.buffer(a.shape, "diff")
    loss = L.scalar(kernel)
    numbers = "".join(f", _T({x!r})" for x in extra)
    L.emit(f"{loss} = _T({kernel}_forward({a}, {b}{numbers}, {d}))")
    L.keep(fn, d=d, numbers=numbers)
    return loss


def _lower_difference_loss_backward(fn, L, g, grads, kernel):
    k = L.kept_by(fn)
    d = k["d"]
    ga, gb = grads
    if ga is None:
        raise L.unsupported(f"{kernel} loss with a gradient for its target only")
    gb = gb if gb is not None else None
    L.emit(f"{kernel}_backward(({g} / _T({d.size})), {d}{k['numbers']}, {ga}, {gb})")


class L1(Function):
    """loss = |a - b| (the lecture's MAE);  da = sign(a - b), db = -da."""

    check = staticmethod(_checker("l1_loss"))

    def forward(self, a, b, reduction="mean"):
        self.d, self.reduction = a - b, reduction
        return _reduce(np.abs(self.d), reduction)

    def backward(self, g):
        ga = np.sign(self.d) * _scale(g, self.d.size, self.reduction, self.d.dtype)
        return ga, (-ga if self.needs_input_grad[1] else None)

    def lower(self, L, a, b, reduction="mean"):
        return _lower_difference_loss(self, L, a, b, reduction, "l1")

    def lower_backward(self, L, g, grads):
        _lower_difference_loss_backward(self, L, g, grads, "l1")


class Huber(Function):
    """loss = d^2 / 2 if |d| < delta else delta (|d| - delta / 2), d = a - b;  da = clip(d)."""

    check = staticmethod(_checker("huber_loss"))

    def forward(self, a, b, reduction="mean", delta=1.0):
        if not delta > 0:
            raise ValueError(f"huber_loss: delta must be positive, got {delta}")
        self.d, self.reduction, self.delta = a - b, reduction, delta
        ad = np.abs(self.d)
        loss = np.where(ad < delta, 0.5 * self.d * self.d, delta * (ad - 0.5 * delta))
        return _reduce(loss.astype(a.dtype, copy=False), reduction)

    def backward(self, g):
        scaled = _scale(g, self.d.size, self.reduction, self.d.dtype)
        ga = np.clip(self.d, -self.delta, self.delta) * scaled
        return ga, (-ga if self.needs_input_grad[1] else None)

    def lower(self, L, a, b, reduction="mean", delta=1.0):
        return _lower_difference_loss(self, L, a, b, reduction, "huber", float(delta))

    def lower_backward(self, L, g, grads):
        _lower_difference_loss_backward(self, L, g, grads, "huber")
