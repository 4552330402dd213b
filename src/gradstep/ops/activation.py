"""Activations. Each keeps its *output* when the derivative is a function of it."""

from __future__ import annotations

import numpy as np

from gradstep.autograd import Function
from gradstep.backend import const
from gradstep.ops.elementwise import select


def stable_sigmoid(x, out=None):
    """sigma(x) = 1 / (1 + e^-x) without overflow and with full relative precision in both tails.

    Split by sign: for x >= 0 use 1 / (1 + e^-x); for x < 0 use e^x / (1 + e^x). Both only ever
    exponentiate a non-positive number, so nothing overflows, and sigmoid(-100) is 3.7e-44 rather
    than the 0 that 0.5 * (1 + tanh(x / 2)) would give. Seven calls that reuse their arrays
    (and ``out``, when given).
    """
    zero, one = const(0, x), const(1, x)  # 0-d arrays: faster than Python numbers, same bits
    positive = np.greater_equal(x, zero)
    if out is None and not x.ndim:  # a 0-d x: an array out, not a NumPy scalar
        out = np.empty_like(x)
    y = np.abs(x, out=out)
    np.negative(y, out=y)
    np.exp(y, out=y)  # e = exp(-|x|)
    d = np.add(y, one)
    np.divide(y, d, out=y)  # e / (1 + e), the x < 0 branch
    np.divide(one, d, out=y, where=positive)  # 1 / (1 + e) where x >= 0
    return y


def _lower_elementwise(fn, L, x, kernel: str):
    """The native forward of an activation whose backward needs only its output."""
    if x.dtype != L.dtype:
        raise L.unsupported(f"{kernel} of a {x.dtype} value in a {L.dtype} step")
    y = L.buffer(x.shape, kernel)
    L.emit(f"{kernel}_forward({x}, {y})")
    L.keep(fn, y=y)
    return y


def _lower_elementwise_backward(fn, L, g, grads, kernel: str):
    if grads[0] is not None:
        L.emit(f"{kernel}_backward({g}, {L.kept_by(fn)['y']}, {grads[0]})")


class Sigmoid(Function):
    """y = sigma(x);  dy/dx = y (1 - y), so the output y is kept, not the input."""

    def forward(self, x):
        self.y = stable_sigmoid(x)
        return self.y

    def backward(self, g):
        y = self.y
        gx = g * y
        gx *= const(1, y) - y
        return gx

    def lower(self, L, x):
        if x.dtype != np.float32 or L.dtype != np.float32:
            return _lower_elementwise(self, L, x, "sigmoid")
        y, tmp = L.buffer(x.shape, "sigmoid"), L.buffer(x.shape, "exp_bits")
        L.emit(f"sigmoid_forward_f32({x}, {y}, {tmp})")  # a vectorized exp (see the kernel)
        L.keep(self, y=y)
        return y

    def lower_backward(self, L, g, grads):
        _lower_elementwise_backward(self, L, g, grads, "sigmoid")


class ReLU(Function):
    """y = max(x, 0);  dy/dx = 1 where x > 0, else 0 (0 at 0, as PyTorch)."""

    def forward(self, x):
        zero = const(0, x)
        self.mask = x > zero
        return np.maximum(x, zero)  # not x * mask: that turns -inf into NaN

    def backward(self, g):
        return select(g, self.mask)  # inf upstream: 0, not NaN

    def lower(self, L, x):
        return _lower_elementwise(self, L, x, "relu")

    def lower_backward(self, L, g, grads):
        _lower_elementwise_backward(self, L, g, grads, "relu")


class LeakyReLU(Function):
    """y = x if x > 0 else slope * x;  dy/dx = 1 or slope."""

    def forward(self, x, slope):
        self.scale = np.where(x > 0, np.ones((), x.dtype), np.asarray(slope, dtype=x.dtype))
        return x * self.scale

    def backward(self, g):
        return g * self.scale

    def lower(self, L, x, slope):
        if x.dtype != L.dtype:
            raise L.unsupported(f"leaky_relu of a {x.dtype} value in a {L.dtype} step")
        y = L.buffer(x.shape, "leaky_relu")
        L.emit(f"leaky_relu_forward({x}, _T({float(slope)!r}), {y})")
        L.keep(self, x=x, slope=float(slope))
        return y

    def lower_backward(self, L, g, grads):
        k = L.kept_by(self)
        if grads[0] is not None:
            L.emit(f"leaky_relu_backward({g}, {k['x']}, _T({k['slope']!r}), {grads[0]})")


class Tanh(Function):
    """y = tanh(x);  dy/dx = 1 - y^2 from the kept output."""

    def forward(self, x):
        self.y = np.tanh(x)
        return self.y

    def backward(self, g):
        return g * (1 - self.y * self.y)

    def lower(self, L, x):
        return _lower_elementwise(self, L, x, "tanh")

    def lower_backward(self, L, g, grads):
        _lower_elementwise_backward(self, L, g, grads, "tanh")


class Softplus(Function):
    """y = log(1 + e^x) = max(x, 0) + log1p(e^-|x|);  dy/dx = sigma(x).

    The second form never overflows and keeps precision for large negative x.
    """

    def forward(self, x):
        self.x = x
        return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))

    def backward(self, g):
        return g * stable_sigmoid(self.x)


class Dropout(Function):
    """y = x * mask / (1 - p) with mask ~ Bernoulli(1 - p);  dy/dx = mask / (1 - p).

    The mask is drawn inside the op from ``rng`` so that a replayed step (gradstep.compile)
    draws a new one, in the same order as eager execution would.
    """

    def forward(self, x, p, rng):
        keep = rng.random(x.shape, dtype=np.float64) >= p
        self.mask = keep.astype(x.dtype) / np.asarray(1 - p, dtype=x.dtype)
        return x * self.mask

    def backward(self, g):
        return g * self.mask, None, None


class GELU(Function):
    """y = x Phi(x), Phi the standard normal CDF, written erfc(-x / sqrt 2) / 2 (no
    cancellation for negative x);  dy/dx = Phi(x) + x phi(x), phi the normal density.

    erfc comes from SciPy (installed with scikit-learn), imported on first use so the engine
    still imports NumPy alone.
    """

    def forward(self, x):
        from scipy.special import erfc

        self.x = x
        self.cdf = (0.5 * erfc(-x / np.sqrt(2.0))).astype(x.dtype, copy=False)
        return x * self.cdf

    def backward(self, g):
        x = self.x
        with np.errstate(over="ignore"):  # x^2 overflowing gives exp(-inf) = 0, the limit
            pdf = np.exp(-0.5 * x * x) / np.asarray(np.sqrt(2 * np.pi), dtype=x.dtype)
        return g * (self.cdf + x * pdf)
