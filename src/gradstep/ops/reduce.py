"""Reductions with NumPy's ``axis=`` and ``keepdims=``."""

from __future__ import annotations

import numpy as np

from gradstep.autograd import Function


def _normalize_axis(axis, ndim: int):
    """``axis`` as a sorted tuple of non-negative ints (all axes for None)."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    out = []
    for a in axes:
        if not -ndim <= a < max(ndim, 1):
            raise ValueError(f"axis {a} is out of range for a tensor with {ndim} dimensions")
        out.append(int(a) % max(ndim, 1))
    if len(set(out)) != len(out):
        raise ValueError(f"repeated axis in {axis}")
    return tuple(sorted(out))


def _expand(g, shape, axes, keepdims):
    """Give ``g`` back the reduced axes as size-1 dims so it broadcasts against ``shape``."""
    if not keepdims and axes:
        g = np.expand_dims(g, axes)
    return g


class Sum(Function):
    """y = sum of x over axes;  dy/dx = 1 at every element that was summed."""

    def forward(self, x, axis=None, keepdims=False):
        self.shape = x.shape
        self.axes = _normalize_axis(axis, x.ndim)
        self.keepdims = keepdims
        return np.sum(x, axis=self.axes, keepdims=keepdims)

    def backward(self, g):
        return np.broadcast_to(_expand(g, self.shape, self.axes, self.keepdims), self.shape)


class Cumsum(Function):
    """y_i = x_0 + ... + x_i along ``axis``;  dx_j = sum of g_i for i >= j (a reversed
    cumulative sum of the upstream gradient)."""

    def forward(self, x, axis=0):
        self.axis = axis
        return np.cumsum(x, axis=axis)

    def backward(self, g):
        flipped = np.flip(g, axis=self.axis)
        return np.flip(np.cumsum(flipped, axis=self.axis), axis=self.axis)


class Mean(Function):
    """y = mean of x over axes;  dy/dx = 1/n where n is the number of elements averaged."""

    def forward(self, x, axis=None, keepdims=False):
        self.shape = x.shape
        self.axes = _normalize_axis(axis, x.ndim)
        self.keepdims = keepdims
        self.n = int(np.prod([x.shape[a] for a in self.axes], dtype=np.int64))
        total = np.sum(x, axis=self.axes, keepdims=keepdims)
        if self.n == 0:  # NaN, as NumPy and PyTorch give, without NumPy's warning
            return np.full(np.shape(total), np.nan, dtype=x.dtype)
        return total / np.asarray(self.n, dtype=x.dtype)

    def backward(self, g):
        g = _expand(g, self.shape, self.axes, self.keepdims) / np.asarray(
            max(self.n, 1), dtype=g.dtype
        )
        return np.broadcast_to(g, self.shape)


class _Extremum(Function):
    """Max or min over axes; the gradient is shared equally between tied extrema (as amax)."""

    reduce = None

    def forward(self, x, axis=None, keepdims=False):
        if x.size == 0:
            raise ValueError(f"{type(self).__name__.lower()} of an empty tensor of shape {x.shape}")
        self.x = x
        self.axes = _normalize_axis(axis, x.ndim)
        self.keepdims = keepdims
        self.y = type(self).reduce(x, axis=self.axes, keepdims=True)
        return self.y if keepdims else np.squeeze(self.y, axis=self.axes)

    def backward(self, g):
        mask = self.x == self.y
        count = mask.sum(axis=self.axes, keepdims=True)
        return _expand(g, self.x.shape, self.axes, self.keepdims) * mask / count.astype(g.dtype)


class Max(_Extremum):
    """y = max of x over axes."""

    reduce = staticmethod(np.max)


class Min(_Extremum):
    """y = min of x over axes."""

    reduce = staticmethod(np.min)


def stable_logsumexp(x, axes, keepdims=True):
    """log(sum(exp(x))) over ``axes`` with the max subtracted first; +-inf and NaN safe."""
    m = np.max(x, axis=axes, keepdims=True)
    m = np.where(np.isfinite(m), m, np.zeros((), dtype=x.dtype))
    with np.errstate(divide="ignore"):  # log(0) = -inf for a row of -inf is the right answer
        out = np.log(np.sum(np.exp(x - m), axis=axes, keepdims=True)) + m
    return out if keepdims else np.squeeze(out, axis=axes)


class LogSumExp(Function):
    """y = log sum exp(x);  dy/dx = exp(x - y) = softmax(x)."""

    def forward(self, x, axis=None, keepdims=False):
        if x.size == 0:
            raise ValueError(f"logsumexp of an empty tensor of shape {x.shape}")
        self.x = x
        self.axes = _normalize_axis(axis, x.ndim)
        self.keepdims = keepdims
        self.y = stable_logsumexp(x, self.axes, keepdims=True)
        return self.y if keepdims else np.squeeze(self.y, axis=self.axes)

    def backward(self, g):
        return _expand(g, self.x.shape, self.axes, self.keepdims) * np.exp(self.x - self.y)
