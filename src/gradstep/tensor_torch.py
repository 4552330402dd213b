"""PyTorch's everyday Tensor vocabulary, beside NumPy's: the methods a course's homework loop
uses (``dim=``/``keepdim=``, ``out.max(1)`` giving values and indices, ``view``, ``unsqueeze``,
``size()``, ``long()``, ``add``/``mul``/...). Each is built from the engine's existing ops, so
its gradient is theirs; :class:`gradstep.tensor.Tensor` inherits these.

Where the two libraries disagree, the spelling decides: ``x.max(1)`` / ``x.max(dim=1)`` is
PyTorch's (a ``(values, indices)`` pair), ``x.max(axis=1)`` is NumPy's (values); ``x.size`` is
NumPy's element count and ``x.size()`` PyTorch's shape.
"""

from __future__ import annotations

from collections import namedtuple

import numpy as np

from gradstep.operands import _derived, _floating
from gradstep.ops import elementwise, reduce
from gradstep.ops import shape as shape_ops

#: What ``x.max(dim)`` / ``x.min(dim)`` return, as ``torch.return_types.max``.
ValuesIndices = namedtuple("ValuesIndices", ["values", "indices"])


class Size(int):
    """The element count (NumPy's ``x.size``) that is also PyTorch's ``x.size()``: called, it
    gives the shape, or one dimension's length with ``x.size(d)``."""

    def __new__(cls, shape: tuple):
        obj = super().__new__(cls, int(np.prod(shape, dtype=np.int64)))
        obj.shape = tuple(shape)
        return obj

    def __call__(self, dim=None):
        return self.shape if dim is None else self.shape[dim]


def _dim(dim, axis, default=None):
    """PyTorch's ``dim=`` or NumPy's ``axis=`` (both spellings are taken; not both at once)."""
    if dim is not None and axis is not None and dim != axis:
        raise TypeError(f"give dim= or axis=, not both (dim={dim!r}, axis={axis!r})")
    return dim if dim is not None else (axis if axis is not None else default)


def _keep(keepdim, keepdims) -> bool:
    return bool(keepdim if keepdims is None else keepdims)


def _no_out(name: str, out) -> None:
    """NumPy's ``np.sum(t)`` calls ``t.sum(axis=, out=None, ...)``: ``out`` is taken but must
    be None (a tensor's result is a new tensor)."""
    if out is not None:
        raise TypeError(f"{name}: out= is not supported; use the returned tensor")


def _as(t, dtype):
    return t if dtype is None else t.astype(dtype)


def _arg(fn, axis, keepdims):
    """A derived (no-gradient, traceable) index computation: argmax/argmin along ``axis``."""

    def arg(a):
        return np.asarray(fn(a, axis=axis, keepdims=keepdims))

    return arg


def _elementwise(fn):
    def apply(a):
        return fn(a)

    return apply


def _copy(a):
    return a.copy()


def _argsort(dim, descending):
    def argsort(a):
        if descending:  # stable and descending: sort the negation (ties keep their order)
            return np.argsort(-a, axis=dim, kind="stable")
        return np.argsort(a, axis=dim, kind="stable")

    return argsort


def _close(rtol, atol, equal_nan):
    def close(a, b):
        return np.isclose(a, b, rtol=rtol, atol=atol, equal_nan=equal_nan)

    return close


class TorchNames:
    """Mixed into Tensor (no state of its own)."""

    __slots__ = ()

    # --- reductions with dim= / keepdim= --------------------------------------------------------
    def sum(self, dim=None, keepdim=False, *, axis=None, keepdims=None, dtype=None, out=None):
        _no_out("sum", out)
        x = _as(self, dtype)
        return reduce.Sum.apply(x, axis=_dim(dim, axis), keepdims=_keep(keepdim, keepdims))

    def mean(self, dim=None, keepdim=False, *, axis=None, keepdims=None, dtype=None, out=None):
        _no_out("mean", out)
        x = _floating(_as(self, dtype))  # the mean of integers is a float of the default dtype
        return reduce.Mean.apply(x, axis=_dim(dim, axis), keepdims=_keep(keepdim, keepdims))

    def prod(self, dim=None, keepdim=False, *, axis=None, keepdims=None, dtype=None, out=None):
        """The product over ``dim`` (all elements by default); its gradient is exact at zeros."""
        _no_out("prod", out)
        x = _as(self, dtype)
        return reduce.Prod.apply(x, axis=_dim(dim, axis), keepdims=_keep(keepdim, keepdims))

    def norm(self, p="fro", dim=None, keepdim=False):
        """The p-norm over ``dim`` (all elements by default): "fro" or 2, 1, inf, -inf, 0 (the
        count of non-zeros) or any other p. The gradient at a zero norm is 0, as PyTorch's."""
        if p in ("fro", None):
            p = 2
        elif isinstance(p, str):
            raise ValueError(f"norm: p is a number or 'fro', got {p!r}")
        return reduce.Norm.apply(_floating(self), p=float(p), axis=dim, keepdims=bool(keepdim))

    def _extreme(self, op, arg, dim, keepdim, axis, keepdims):
        keep = _keep(keepdim, keepdims)
        if dim is None:  # NumPy's axis=, or everything: the values alone
            return op.apply(self, axis=axis, keepdims=keep)
        if axis is not None:
            raise TypeError("give dim= or axis=, not both")
        values = op.apply(self, axis=dim, keepdims=keep)
        return ValuesIndices(values, _derived(_arg(arg, dim, keep), self))

    def max(self, dim=None, keepdim=False, *, axis=None, keepdims=None, out=None):
        """``x.max()``: the maximum; ``x.max(dim)``: PyTorch's ``(values, indices)`` along
        ``dim``; ``x.max(axis=d)``: NumPy's values. Tied maxima share the gradient (as
        ``torch.amax``). ``gs.max(a, b)`` with a tensor for ``dim`` is ``maximum``."""
        _no_out("max", out)
        if isinstance(dim, (TorchNames, np.ndarray)):
            return self.maximum(dim)
        return self._extreme(reduce.Max, np.argmax, dim, keepdim, axis, keepdims)

    def min(self, dim=None, keepdim=False, *, axis=None, keepdims=None, out=None):
        """As :meth:`max`, for the minimum."""
        _no_out("min", out)
        if isinstance(dim, (TorchNames, np.ndarray)):
            return self.minimum(dim)
        return self._extreme(reduce.Min, np.argmin, dim, keepdim, axis, keepdims)

    def amax(self, dim=None, keepdim=False):
        return reduce.Max.apply(self, axis=dim, keepdims=keepdim)

    def amin(self, dim=None, keepdim=False):
        return reduce.Min.apply(self, axis=dim, keepdims=keepdim)

    def argmax(self, dim=None, keepdim=False, *, axis=None):
        return _derived(_arg(np.argmax, _dim(dim, axis), keepdim), self)

    def argmin(self, dim=None, keepdim=False, *, axis=None):
        return _derived(_arg(np.argmin, _dim(dim, axis), keepdim), self)

    def var(self, dim=None, keepdim=False, *, correction=None, unbiased=None, axis=None):
        """Variance over ``dim``: sum (x - mean)^2 / (n - correction), correction 1 by default
        (PyTorch's; ``unbiased=False`` is correction 0, NumPy's default)."""
        if correction is None:
            correction = 1 if unbiased is None or unbiased else 0
        x = _floating(self)
        axes = _dim(dim, axis)
        dev = x - x.mean(axes, keepdim=True)
        n = x.numel() if axes is None else int(np.prod([x.shape[a] for a in np.atleast_1d(axes)]))
        return (dev * dev).sum(axes, keepdim=keepdim) / max(n - correction, 0)

    def std(self, dim=None, keepdim=False, *, correction=None, unbiased=None, axis=None):
        v = self.var(dim, keepdim, correction=correction, unbiased=unbiased, axis=axis)
        return v.sqrt()

    def cumsum(self, dim=None, *, axis=None):
        return reduce.Cumsum.apply(self, axis=_dim(dim, axis, 0))

    def all(self, dim=None, keepdim=False, *, axis=None, keepdims=None, out=None):
        _no_out("all", out)
        return _derived(_arg(np.all, _dim(dim, axis), _keep(keepdim, keepdims)), self)

    def any(self, dim=None, keepdim=False, *, axis=None, keepdims=None, out=None):
        _no_out("any", out)
        return _derived(_arg(np.any, _dim(dim, axis), _keep(keepdim, keepdims)), self)

    # --- elementwise math -----------------------------------------------------------------------
    def sin(self):
        return elementwise.Sin.apply(_floating(self))

    def cos(self):
        return elementwise.Cos.apply(_floating(self))

    def log1p(self):
        return elementwise.Log1p.apply(_floating(self))

    def expm1(self):
        return elementwise.Expm1.apply(_floating(self))

    def log2(self):
        x = _floating(self)
        return x.log() / np.asarray(np.log(2.0), dtype=x.dtype)

    def rsqrt(self):
        return 1 / _floating(self).sqrt()

    def sign(self):
        """-1, 0 or 1 (a step: outside the graph)."""
        return _derived(_elementwise(np.sign), self)

    def floor(self):
        return _derived(_elementwise(np.floor), self)

    def ceil(self):
        return _derived(_elementwise(np.ceil), self)

    def round(self):
        """To the nearest integer, halves to even (as PyTorch and NumPy)."""
        return _derived(_elementwise(np.round), self)

    def maximum(self, other):
        """The larger of the two at each position; the gradient goes to the larger (to this
        tensor on a tie)."""
        from gradstep.functional import where

        return where(self >= other, self, other)

    def minimum(self, other):
        from gradstep.functional import where

        return where(self <= other, self, other)

    def isclose(self, other, rtol=1e-05, atol=1e-08, equal_nan=False):
        return _derived(_close(rtol, atol, equal_nan), self, other)

    def allclose(self, other, rtol=1e-05, atol=1e-08, equal_nan=False) -> bool:
        return bool(np.all(self.isclose(other, rtol, atol, equal_nan).data))

    # --- indexing -------------------------------------------------------------------------------
    def gather(self, dim: int, index):
        """out[i][j] = self[i][index[i][j]] along ``dim`` (PyTorch's gather); gradients add up
        where an index repeats."""
        idx = np.asarray(getattr(index, "data", index)).astype(np.int64)
        grid = list(np.indices(idx.shape, sparse=True))
        grid[dim % self.ndim] = idx
        return self[tuple(grid)]

    def scatter(self, dim: int, index, src=None, *, value=None, reduce=None):
        """A copy with ``src`` (a tensor or a number; or ``value=``) written at ``index`` along
        ``dim``: ``out[i][index[i][j]] = src[i][j]`` for dim 1. ``reduce="add"`` adds."""
        if reduce not in (None, "add", "sum"):
            raise ValueError(f"scatter: reduce is None or 'add', got {reduce!r}")
        src = value if src is None else src
        if src is None:
            raise TypeError("scatter needs src or value")
        return self._scatter(dim, index, src, reduce is not None)

    def scatter_add(self, dim: int, index, src):
        """A copy with ``src`` added at ``index`` along ``dim`` (repeated indices add up)."""
        return self._scatter(dim, index, src, True)

    def _scatter(self, dim, index, src, add):
        from gradstep.ops.indexing import Scatter

        index = index if isinstance(index, TorchNames) else np.asarray(index)
        if isinstance(src, (TorchNames, np.ndarray, list)):
            src = self._like(src)
        return Scatter.apply(self, index, src, dim=dim, add=add)

    def _like(self, other):
        """``other`` as a tensor of this tensor's dtype (for ops that need one dtype)."""
        if isinstance(other, TorchNames):
            if other.dtype != self.dtype:
                raise TypeError(f"expected dtype {self.dtype}, got a tensor of {other.dtype}")
            return other
        return type(self)(np.asarray(other, dtype=self.dtype))

    def index_select(self, dim: int, index):
        idx = np.asarray(getattr(index, "data", index)).astype(np.int64).reshape(-1)
        return self[(slice(None),) * (dim % self.ndim) + (idx,)]

    def masked_fill(self, mask, value):
        """``value`` where ``mask``; the gradient flows where it does not."""
        from gradstep.functional import where

        return where(mask, np.asarray(value, dtype=self.dtype), self)

    def flip(self, *dims):
        dims = dims[0] if len(dims) == 1 and isinstance(dims[0], (tuple, list)) else dims
        index = [slice(None)] * self.ndim
        for d in dims:
            index[d % self.ndim] = slice(None, None, -1)
        return self[tuple(index)]

    def repeat(self, *sizes):
        """Tile ``sizes`` times along each dimension (PyTorch's repeat, NumPy's tile)."""
        sizes = sizes[0] if len(sizes) == 1 and isinstance(sizes[0], (tuple, list)) else sizes
        x = self.reshape((1,) * (len(sizes) - self.ndim) + self.shape)
        for d, r in enumerate(sizes):
            if r != 1:
                x = x.index_select(d, np.tile(np.arange(x.shape[d]), r))
        return x

    def tril(self, diagonal: int = 0):
        return self._triangle(np.tril, diagonal)

    def triu(self, diagonal: int = 0):
        return self._triangle(np.triu, diagonal)

    def _triangle(self, fn, diagonal):
        from gradstep.functional import where

        keep = fn(np.ones(self.shape[-2:], dtype=bool), diagonal)
        return where(keep, self, np.zeros((), self.dtype))

    def sort(self, dim: int = -1, descending: bool = False):
        """(values, indices), stable, as PyTorch's ``sort(stable=True)``."""
        order = _derived(_argsort(dim, descending), self)
        return ValuesIndices(self.gather(dim, order.data), order)

    def topk(self, k: int, dim: int = -1, largest: bool = True, sorted: bool = True):  # noqa: A002
        values, indices = self.sort(dim, descending=largest)
        take = np.arange(k)
        return ValuesIndices(values.index_select(dim, take), indices.index_select(dim, take))

    # --- shapes ---------------------------------------------------------------------------------
    @property
    def size(self) -> Size:
        return Size(self.data.shape)

    def numel(self) -> int:
        return int(self.data.size)

    def dim(self) -> int:
        return self.data.ndim

    def view(self, *shape):
        """PyTorch's reshape of a contiguous tensor (every gradstep tensor can be viewed)."""
        return self.reshape(*shape)

    def view_as(self, other):
        return self.reshape(other.shape)

    def unsqueeze(self, dim: int):
        nd = self.ndim + 1
        if not -nd <= dim < nd:
            raise IndexError(f"unsqueeze: dim {dim} is out of range for {nd} dimensions")
        shape = list(self.shape)
        shape.insert(dim % nd, 1)
        return shape_ops.Reshape.apply(self, tuple(shape))

    def squeeze(self, dim=None):
        """Drop length-1 axes (all, or ``dim`` if its length is 1: PyTorch leaves others)."""
        if dim is None:
            shape = tuple(s for s in self.shape if s != 1)
        else:
            dims = {d % max(self.ndim, 1) for d in (dim if isinstance(dim, tuple) else (dim,))}
            shape = tuple(s for i, s in enumerate(self.shape) if not (i in dims and s == 1))
        return shape_ops.Reshape.apply(self, shape)

    def flatten(self, start_dim: int = 0, end_dim: int = -1):
        if self.ndim == 0:
            return shape_ops.Reshape.apply(self, (1,))
        a, b = start_dim % self.ndim, end_dim % self.ndim
        if a > b:
            raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim}")
        shape = self.shape[:a] + (-1,) + self.shape[b + 1 :]
        return shape_ops.Reshape.apply(self, shape)

    def expand(self, *sizes):
        """Broadcast to ``sizes`` (-1 keeps a dimension); the gradient sums back."""
        if len(sizes) == 1 and isinstance(sizes[0], (tuple, list)):
            sizes = tuple(sizes[0])
        lead = len(sizes) - self.ndim
        if lead < 0:
            raise ValueError(f"expand: {sizes} has fewer dimensions than {self.shape}")
        target = tuple(
            self.shape[i - lead] if s == -1 and i >= lead else s for i, s in enumerate(sizes)
        )
        return self + np.zeros(target, dtype=self.dtype)

    def expand_as(self, other):
        return self.expand(other.shape)

    def t(self):
        if self.ndim > 2:
            raise ValueError(f"t() takes a tensor of at most 2 dimensions, got {self.shape}")
        return self.transpose() if self.ndim == 2 else self

    # --- arithmetic as methods ------------------------------------------------------------------
    def add(self, other, alpha=1):
        return self + (other if alpha == 1 else other * alpha)

    def sub(self, other, alpha=1):
        return self - (other if alpha == 1 else other * alpha)

    def mul(self, other):
        return self * other

    def div(self, other):
        return self / other

    def pow(self, exponent):
        return self**exponent

    def matmul(self, other):
        return self @ other

    def neg(self):
        return -self

    def __floordiv__(self, other):
        """Rounded down quotient: a step function, outside the graph (no gradient)."""
        return _derived(np.floor_divide, self, other)

    def __rfloordiv__(self, other):
        return _derived(np.floor_divide, other, self)

    def __mod__(self, other):
        """Python's (and PyTorch's) remainder, sign of the divisor: a - b * floor(a / b); its
        gradient is 1 for a and -floor(a / b) for b."""
        return self - other * (self // other)

    def __rmod__(self, other):
        return other - self * (other // self)

    def eq(self, other):
        return self == other

    def ne(self, other):
        return self != other

    def gt(self, other):
        return self > other

    def ge(self, other):
        return self >= other

    def lt(self, other):
        return self < other

    def le(self, other):
        return self <= other

    # & | ^ ~ on boolean masks (and integers, bitwise), outside the graph
    def __and__(self, other):
        return _derived(np.bitwise_and, self, other)

    def __rand__(self, other):
        return _derived(np.bitwise_and, other, self)

    def __or__(self, other):
        return _derived(np.bitwise_or, self, other)

    def __ror__(self, other):
        return _derived(np.bitwise_or, other, self)

    def __xor__(self, other):
        return _derived(np.bitwise_xor, self, other)

    def __invert__(self):
        return _derived(_elementwise(np.invert), self)

    def isnan(self):
        return _derived(_elementwise(np.isnan), self)

    def isfinite(self):
        return _derived(_elementwise(np.isfinite), self)

    # --- dtype and copies -----------------------------------------------------------------------
    def long(self):
        return self.astype(np.int64)

    def int(self):
        return self.astype(np.int32)

    def bool(self):
        return self.astype(np.bool_)

    def to(self, *args, **kwargs):
        """``to(dtype)``, ``to("cpu")``, ``to(device, dtype)``, ``to(other)``: the CPU is the one
        device here (CuPy arrays come through the backend seam, not through ``to``)."""
        from gradstep.compat import device, device_type

        dtype = kwargs.pop("dtype", None)
        if kwargs.get("device") is not None:
            device_type(kwargs["device"])
        for a in args:
            if isinstance(a, (TorchNames, np.ndarray)):
                dtype = a.dtype
            elif isinstance(a, (str, device)):
                device_type(a)
            else:
                dtype = a
        return self if dtype is None else self.astype(dtype)

    def type(self, dtype=None):
        """The dtype's name without an argument; a converted copy with one."""
        return str(self.dtype) if dtype is None else self.astype(dtype)

    def clone(self):
        """A copy that stays in the graph (its gradient flows back to this tensor)."""
        if self.dtype.kind == "f":
            return self * np.ones((), dtype=self.dtype)
        return _derived(_copy, self)
