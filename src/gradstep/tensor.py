"""The Tensor: an array, its gradient, and the node that made it."""

from __future__ import annotations

import numpy as np

from gradstep import autograd, backend, operands
from gradstep.operands import (
    _astype,
    _check_float_for_grad,
    _converter,
    _derived,
    _floating,
    _host_read,
    _pair,
    _raw_index,
    _same,
    _to_array,
    _true_div,
)
from gradstep.ops import activation, elementwise, linalg
from gradstep.ops import shape as shape_ops
from gradstep.tensor_inplace import InPlace
from gradstep.tensor_layout import Layout
from gradstep.tensor_torch import TorchNames

_new = object.__new__


def _ints_first(index):
    """(the integers of ``index`` alone, the rest) when it mixes integers and index arrays (and
    holds no ``...`` or ``None``, where the axes' positions would need more care), else None."""
    if not isinstance(index, tuple):
        return None
    ints = [isinstance(i, (int, np.integer)) and not isinstance(i, bool) for i in index]
    arrays = [isinstance(i, (np.ndarray, list)) and np.ndim(i) > 0 for i in index]
    if not any(ints) or not any(arrays) or any(i is None or i is Ellipsis for i in index):
        return None
    first = tuple(i if k else slice(None) for i, k in zip(index, ints))
    return first, tuple(i for i, k in zip(index, ints) if not k)


class Tensor(TorchNames, InPlace, Layout):
    """An n-dimensional array with reverse-mode automatic differentiation.

    Parameters
    ----------
    data : array_like
        Floating data becomes the default dtype (float32 unless changed) unless ``dtype`` is
        given; integer and boolean data keep their dtype.
    requires_grad : bool
        Record the operations on this tensor so ``backward()`` can fill its ``.grad``.
    dtype : dtype, optional

    Attributes
    ----------
    data : numpy.ndarray
    grad : Tensor or None
        Same shape and dtype as ``data``; filled (accumulated) by ``backward()``; a view of the
        gradient array (``grad.data``), so in-place changes (``grad.zero_()``) reach it.
    """

    __slots__ = ("data", "_grad", "requires_grad", "_node", "__weakref__")
    __hash__ = object.__hash__  # == is elementwise, identity stays the hash

    def __init__(self, data, requires_grad: bool = False, dtype=None):
        arr = _to_array(data, dtype)
        if requires_grad:
            _check_float_for_grad(arr)
        self.data = arr
        self._grad = None
        self.requires_grad = bool(requires_grad)
        self._node = None
        tracer = autograd._tracer  # read once: another thread's trace may end
        if tracer is not None:
            tracer.record_derived(_converter(dtype), data, self)

    @staticmethod
    def _make(data, requires_grad: bool, node) -> Tensor:
        """Wrap an op's output without any conversion (the hot path)."""
        t = object.__new__(Tensor)
        t.data = data
        t._grad = None
        t.requires_grad = requires_grad
        t._node = node
        return t

    @property
    def grad(self):
        """The gradient filled by ``backward()``, as a Tensor (None before the first one).

        It is a view of the gradient array itself, made on each read (no copy): as in PyTorch,
        ``w.grad.zero_()`` zeroes the gradient, ``w.grad.data`` / ``w.grad.numpy()`` are that
        array, and the next ``backward()`` adds into it. The engine and the optimizers use the
        array directly and never make this view, so it costs nothing in a training step.
        """
        g = self._grad
        if g is None:
            return None
        tracer = autograd._tracer  # read once: another thread's trace may end
        if tracer is not None:
            tracer.record_grad_read(self)
        view = _new(Tensor)
        view.data = g
        view._grad = None
        view.requires_grad = False
        view._node = None
        return view

    @grad.setter
    def grad(self, value) -> None:
        if isinstance(value, Tensor):
            value = value.data
        elif value is not None:
            value = _to_array(value, self.data.dtype)
        if value is not None and value.shape != self.data.shape:
            raise ValueError(
                f"assigned grad has shape {value.shape}, the tensor has shape {self.data.shape}"
            )
        self._grad = value
        tracer = autograd._tracer  # read once: another thread's trace may end
        if tracer is not None:  # `w.grad = None` inside a compiled step is replayed
            tracer.record_set_grad(self, value)

    # --- array facts -------------------------------------------------------------------------
    @property
    def shape(self) -> tuple:
        return self.data.shape

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def is_leaf(self) -> bool:
        return self._node is None

    @property
    def grad_fn(self):
        """The op that produced this tensor (None for a leaf)."""
        return self._node

    def __len__(self) -> int:
        if self.data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return len(self.data)

    def item(self):
        """The single element as a Python number."""
        if self.data.size != 1:
            raise ValueError(f"item() needs a tensor with one element, got shape {self.shape}")
        _host_read(self, "item()")
        return self.data.item()

    def numpy(self) -> np.ndarray:
        """The data as a NumPy array (shared, not copied, on the CPU)."""
        _host_read(self, "numpy()")
        return self.data if isinstance(self.data, np.ndarray) else self.data.get()

    def tolist(self):
        return self.numpy().tolist()

    def __array__(self, dtype=None, copy=None):
        arr = self.numpy()
        return arr if dtype is None else arr.astype(dtype)

    def detach(self) -> Tensor:
        """The same data, cut from the graph."""
        return _derived(_same, self)

    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        if requires_grad:
            _check_float_for_grad(self.data)
        self.requires_grad = requires_grad
        return self

    def astype(self, dtype) -> Tensor:
        """A copy in another dtype; differentiable between floating dtypes."""
        dt = np.dtype(dtype)
        if dt == self.dtype:
            return self
        if dt.kind == "f" and self.dtype.kind == "f":
            return elementwise.Cast.apply(self, dt)
        return _derived(_astype(dt), self)

    def float(self) -> Tensor:
        return self.astype(np.float32)

    def double(self) -> Tensor:
        return self.astype(np.float64)

    def __repr__(self) -> str:
        body = np.array2string(self.numpy(), separator=", ", prefix="tensor(")
        extra = ""
        if self.dtype != backend.get_default_dtype():
            extra += f", dtype={self.dtype}"
        if self._node is not None:
            extra += f", grad_fn={type(self._node).__name__}"
        elif self.requires_grad:
            extra += ", requires_grad=True"
        return f"tensor({body}{extra})"

    # --- autograd ------------------------------------------------------------------------------
    def backward(self, grad=None, retain_graph: bool = False) -> None:
        """Backpropagate from this tensor: fill ``.grad`` of every leaf it depends on.

        Without ``grad`` the tensor must hold one element (a loss). Gradients accumulate across
        calls until zeroed (``optimizer.zero_grad()``), as in PyTorch.
        """
        autograd.backward(self, grad, retain_graph)

    # --- arithmetic ----------------------------------------------------------------------------
    def __add__(self, other):
        return elementwise.Add.apply(*_pair(self, other))

    def __radd__(self, other):
        return elementwise.Add.apply(*_pair(other, self))

    def __sub__(self, other):
        return elementwise.Sub.apply(*_pair(self, other))

    def __rsub__(self, other):
        return elementwise.Sub.apply(*_pair(other, self))

    def __mul__(self, other):
        return elementwise.Mul.apply(*_pair(self, other))

    def __rmul__(self, other):
        return elementwise.Mul.apply(*_pair(other, self))

    def __truediv__(self, other):
        return elementwise.Div.apply(*_true_div(self, other))

    def __rtruediv__(self, other):
        return elementwise.Div.apply(*_true_div(other, self))

    def __pow__(self, other):
        return elementwise.Pow.apply(*_pair(self, other))

    def __rpow__(self, other):
        return elementwise.Pow.apply(*_pair(other, self))

    def __matmul__(self, other):
        return linalg.MatMul.apply(*_pair(self, other))

    def __rmatmul__(self, other):
        return linalg.MatMul.apply(*_pair(other, self))

    def __neg__(self):
        return elementwise.Neg.apply(self)

    def __pos__(self):
        return self

    def __abs__(self):
        return elementwise.Abs.apply(self)

    # Comparisons give boolean tensors outside the graph (masks, accuracy).
    def __lt__(self, other):
        return _derived(np.less, self, other)

    def __le__(self, other):
        return _derived(np.less_equal, self, other)

    def __gt__(self, other):
        return _derived(np.greater, self, other)

    def __ge__(self, other):
        return _derived(np.greater_equal, self, other)

    def __eq__(self, other):
        return _derived(np.equal, self, other)

    def __ne__(self, other):
        return _derived(np.not_equal, self, other)

    def __bool__(self) -> bool:
        _host_read(self, "bool()")
        return bool(self.data)

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __getitem__(self, index):
        """NumPy's indexing, except one rule where PyTorch's differs and users' code expects
        PyTorch's: an integer beside an index array is applied first, as plain indexing, so
        ``t[0, :, [0, 1]]`` of a (2, 3, 4) tensor is (3, 2), not NumPy's (2, 3)."""
        raw = _raw_index(index)
        split = _ints_first(raw)
        if split is not None:
            return shape_ops.GetItem.apply(shape_ops.GetItem.apply(self, split[0]), split[1])
        return shape_ops.GetItem.apply(self, raw)

    # --- elementwise functions -----------------------------------------------------------------
    def exp(self):
        return elementwise.Exp.apply(_floating(self))

    def log(self):
        return elementwise.Log.apply(_floating(self))

    def sqrt(self):
        return elementwise.Sqrt.apply(_floating(self))

    def abs(self):
        return elementwise.Abs.apply(self)

    def clip(self, min=None, max=None):
        """Limit values to [min, max]; either bound may be None."""
        if min is None and max is None:
            raise ValueError("clip needs min, max or both")
        return elementwise.Clip.apply(self, min, max)

    clamp = clip

    def sigmoid(self):
        return activation.Sigmoid.apply(_floating(self))

    def relu(self):
        return activation.ReLU.apply(self)

    def tanh(self):
        return activation.Tanh.apply(_floating(self))

    # --- shape ---------------------------------------------------------------------------------
    def reshape(self, *shape):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return shape_ops.Reshape.apply(self, shape)

    def transpose(self, *axes):
        """Permute axes.

        ``transpose()`` reverses them (NumPy); ``transpose(a, b)`` swaps two axes (PyTorch; on a
        matrix this is NumPy's ``transpose(1, 0)`` too); a full permutation of 3 or more axes is
        NumPy's ``transpose(*axes)``.
        """
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        nd = self.ndim
        if not axes:
            perm = None
        elif len(axes) == 2:
            perm = list(range(nd))
            a, b = (int(x) % max(nd, 1) for x in axes)
            perm[a], perm[b] = perm[b], perm[a]
            perm = tuple(perm)
        elif len(axes) == nd:
            perm = tuple(int(x) % nd for x in axes)
        else:
            raise ValueError(f"transpose: axes {axes} do not fit a tensor of shape {self.shape}")
        return shape_ops.Transpose.apply(self, perm)

    def permute(self, *axes):
        """NumPy's ``transpose(*axes)`` under PyTorch's name."""
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        return shape_ops.Transpose.apply(self, tuple(axes))

    @property
    def T(self):
        return shape_ops.Transpose.apply(self, None)


autograd.Tensor = operands.Tensor = Tensor
