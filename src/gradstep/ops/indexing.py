"""Writes at index positions: scatter (PyTorch's ``scatter``/``scatter_add``)."""

from __future__ import annotations

import numpy as np

from gradstep.autograd import Function


def _positions(index, dim: int) -> tuple:
    """The full index tuple that addresses, for each element of ``index``, the element of the
    target whose coordinate along ``dim`` is that element's value (PyTorch's rule)."""
    grid = list(np.indices(index.shape, sparse=True))
    grid[dim] = index
    return tuple(grid)


class Scatter(Function):
    """y = x with y[..., index[i], ...] = src[i] along ``dim`` (``add``: += src[i], repeats
    adding up). dy/dx = 1 except where written over (without ``add``); dy/dsrc_i = g at the
    position src_i went to (a gather of g)."""

    def forward(self, x, index, src, dim=0, add=False):
        if index.dtype.kind not in "iu":
            raise TypeError(f"scatter: index must be integers, got {index.dtype}")
        if index.ndim != x.ndim:
            raise ValueError(f"scatter: index has {index.ndim} dims, the tensor has {x.ndim}")
        dim = dim % max(x.ndim, 1)
        bad = (index < -x.shape[dim]) | (index >= x.shape[dim])
        if bad.any():
            raise IndexError(
                f"scatter: index {int(index[bad][0])} is out of range for dim {dim} of size "
                f"{x.shape[dim]}"
            )
        self.where = _positions(index, dim)
        self.add = add
        self.src_shape, self.index_shape = np.shape(src), index.shape
        out = x.copy()
        part = src if np.ndim(src) == 0 else src[tuple(slice(0, n) for n in index.shape)]
        if add:
            np.add.at(out, self.where, part)
        else:
            out[self.where] = part
        return out

    def backward(self, g):
        gx = gsrc = None
        if self.needs_input_grad[0]:
            gx = g
            if not self.add:
                gx = g.copy()
                gx[self.where] = 0
        if len(self.needs_input_grad) > 2 and self.needs_input_grad[2]:
            gsrc = np.zeros(self.src_shape, dtype=g.dtype)
            gsrc[tuple(slice(0, n) for n in self.index_shape)] = g[self.where]
        return gx, None, gsrc
