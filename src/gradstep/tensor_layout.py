"""Where a tensor lives and how it is cut, in PyTorch's words: ``device``, ``cpu()``,
``cuda()`` (refused: the engine is NumPy on the CPU), ``contiguous()``, ``chunk``, ``split`` and
``nonzero``. Mixed into :class:`gradstep.tensor.Tensor`."""

from __future__ import annotations

import numpy as np


class Layout:
    """Mixed into Tensor (no state of its own)."""

    __slots__ = ()

    @property
    def device(self):
        from gradstep.compat import device

        return device("cpu")

    is_cuda = False

    def cpu(self):
        """The tensor itself: it is on the CPU already."""
        return self

    def cuda(self, *args, **kwargs):
        raise ValueError("cuda(): gradstep runs on the CPU (NumPy); use .cpu() or .to('cpu')")

    def contiguous(self):
        """The tensor itself (NumPy copies where an op needs a contiguous array)."""
        return self

    def chunk(self, chunks: int, dim: int = 0) -> tuple:
        """``chunks`` pieces along ``dim``, each of ceil(n / chunks) but the last (PyTorch's
        rule), as views in the graph."""
        n = self.shape[dim]
        size = -(-n // int(chunks))
        return self.split(size, dim) if n else (self,)

    def split(self, split_size_or_sections, dim: int = 0) -> tuple:
        """Pieces of ``split_size`` along ``dim`` (the last may be smaller), or of the listed
        sizes."""
        n = self.shape[dim]
        if isinstance(split_size_or_sections, (int, np.integer)):
            step = int(split_size_or_sections)
            if step <= 0:
                raise ValueError(f"split: split_size must be positive, got {step}")
            sizes = [min(step, n - s) for s in range(0, n, step)]
        else:
            sizes = [int(s) for s in split_size_or_sections]
            if sum(sizes) != n:
                raise ValueError(f"split: sizes {sizes} do not add up to {n} (dim {dim})")
        out, start = [], 0
        lead = (slice(None),) * (dim % self.ndim)
        for k in sizes:
            out.append(self[lead + (slice(start, start + k),)])
            start += k
        return tuple(out)

    def nonzero(self, as_tuple: bool = False):
        """Indices of the non-zero elements: (n, ndim) int64, or one array per dim."""
        idx = np.nonzero(self.numpy())
        if as_tuple:
            return tuple(type(self)(i.astype(np.int64)) for i in idx)
        return type(self)(np.stack(idx, axis=-1).astype(np.int64).reshape(-1, self.ndim))
