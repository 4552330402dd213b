"""Shape ops: reshape, transpose, indexing, joining. Gradients are moved, never computed."""

from __future__ import annotations

import numpy as np

from gradstep.autograd import Function


class Reshape(Function):
    """y = x with a new shape;  the gradient is reshaped back."""

    def forward(self, x, shape):
        self.shape = x.shape
        try:
            return x.reshape(shape)
        except ValueError:
            raise ValueError(f"cannot reshape a tensor of shape {x.shape} into {shape}") from None

    def backward(self, g):
        return g.reshape(self.shape)


class Transpose(Function):
    """y = x with its axes permuted;  the gradient is permuted back."""

    def forward(self, x, axes):
        self.inverse = None if axes is None else tuple(np.argsort(axes))
        return np.transpose(x, axes)

    def backward(self, g):
        return np.transpose(g, self.inverse)


def _is_basic_index(index) -> bool:
    """True when ``index`` selects each element at most once (no integer arrays)."""
    items = index if isinstance(index, tuple) else (index,)
    for i in items:
        if i is None or i is Ellipsis or isinstance(i, (slice, int, np.integer)):
            continue
        if isinstance(i, np.ndarray) and i.dtype == bool:
            continue
        return False
    return True


class GetItem(Function):
    """y = x[index];  the gradient is scattered back. Repeated integer indices accumulate."""

    def forward(self, x, index):
        self.shape, self.dtype, self.index = x.shape, x.dtype, index
        return x[index]

    def backward(self, g):
        out = np.zeros(self.shape, dtype=self.dtype)
        if _is_basic_index(self.index):
            out[self.index] = g
        else:
            np.add.at(out, self.index, g)
        return out


class Concatenate(Function):
    """y = the inputs joined along an existing axis;  each gets its slice of the gradient."""

    def forward(self, *arrays, axis=0):
        self.axis = axis
        self.bounds = np.cumsum([a.shape[axis] for a in arrays])[:-1]
        return np.concatenate(arrays, axis=axis)

    def backward(self, g):
        return tuple(np.split(g, self.bounds, axis=self.axis))


class Stack(Function):
    """y = the inputs stacked along a new axis;  each gets its slice of the gradient."""

    def forward(self, *arrays, axis=0):
        self.axis = axis
        return np.stack(arrays, axis=axis)

    def backward(self, g):
        return tuple(np.moveaxis(g, self.axis, 0))
