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


def _others_product(x, axes):
    """For each element, the product of the other elements reduced with it over ``axes``:
    exclusive products from the left times those from the right, so zeros need no division."""
    rest = [a for a in range(x.ndim) if a not in axes]
    moved = np.transpose(x, rest + list(axes))
    flat = moved.reshape(moved.shape[: len(rest)] + (-1,))
    ones = np.ones(flat.shape[:-1] + (1,), dtype=x.dtype)
    left = np.cumprod(np.concatenate([ones, flat[..., :-1]], axis=-1), axis=-1)
    rev = np.flip(flat, axis=-1)
    right = np.flip(np.cumprod(np.concatenate([ones, rev[..., :-1]], axis=-1), axis=-1), axis=-1)
    return np.transpose((left * right).reshape(moved.shape), np.argsort(rest + list(axes)))


class Prod(Function):
    """y = product of x over axes;  dy/dx_i = the product of the other elements (computed
    without dividing by x_i, so it is exact where x_i or another element is 0)."""

    def forward(self, x, axis=None, keepdims=False):
        self.x = x
        self.axes = _normalize_axis(axis, x.ndim)
        self.keepdims = keepdims
        with np.errstate(over="ignore", under="ignore", invalid="ignore"):
            return np.prod(x, axis=self.axes, keepdims=keepdims)

    def backward(self, g):
        x = self.x
        g = _expand(g, x.shape, self.axes, self.keepdims)
        if x.size == 0:
            return np.zeros(x.shape, dtype=g.dtype)
        with np.errstate(over="ignore", under="ignore", invalid="ignore"):
            return g * _others_product(x, self.axes)


class Norm(Function):
    """y = (sum |x|^p)^(1/p) over axes (p = 2 by default; inf: max |x|, -inf: min |x|, 0: the
    count of non-zeros). dy/dx = sign(x) |x|^(p-1) / y^(p-1): x / y for p = 2, sign(x) for
    p = 1, shared between tied extremes for +-inf. Where y = 0 the gradient is 0 (PyTorch's
    choice: the norm has no derivative there, and 0 keeps a training step finite)."""

    def forward(self, x, p=2.0, axis=None, keepdims=False):
        self.x, self.p, self.keepdims = x, float(p), keepdims
        self.axes = _normalize_axis(axis, x.ndim)
        a, axes, p = np.abs(x), self.axes, self.p
        with np.errstate(over="ignore", under="ignore"):
            if np.isinf(p):
                if x.size == 0:
                    raise ValueError(f"an inf-norm of an empty tensor of shape {x.shape}")
                y = (np.max if p > 0 else np.min)(a, axis=axes, keepdims=True)
            elif p == 0:
                y = np.sum(x != 0, axis=axes, keepdims=True).astype(x.dtype)
            elif p == 1:
                y = np.sum(a, axis=axes, keepdims=True)
            elif p == 2:
                y = np.sqrt(np.sum(x * x, axis=axes, keepdims=True))
            else:
                y = np.sum(a**p, axis=axes, keepdims=True) ** (1 / p)
        self.y = y
        return y if keepdims else np.squeeze(y, axis=axes)

    def backward(self, g):
        x, y, p = self.x, self.y, self.p
        g = _expand(g, x.shape, self.axes, self.keepdims)
        if p == 0:
            return np.zeros(x.shape, dtype=g.dtype)
        if np.isinf(p):
            mask = np.abs(x) == y
            count = mask.sum(axis=self.axes, keepdims=True).astype(g.dtype)
            return g * np.sign(x) * mask / count
        if p == 1:
            return g * np.sign(x)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
            scaled = x / y if p == 2 else np.sign(x) * np.abs(x) ** (p - 1) / y ** (p - 1)
        return g * np.where(y == 0, np.zeros((), dtype=x.dtype), scaled)
