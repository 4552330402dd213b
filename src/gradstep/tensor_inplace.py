"""In-place updates, as PyTorch spells them: ``zero_``, ``fill_``, ``add_``/``sub_``/``mul_``/
``div_``, ``clamp_``, ``copy_`` and the augmented operators ``+=``, ``-=``, ``*=``, ``/=``.

They exist for the homework's hand-written update and for gradients::

    with gs.no_grad():
        w -= lr * w.grad
        w.grad.zero_()

The rules are PyTorch's where it has one:

- A leaf that requires grad can be changed in place only under ``no_grad()`` (PyTorch raises
  the same error); its ``.data`` stays the same array, so an optimizer that holds it (and a
  flat optimizer buffer it is a view of) sees the change.
- A result is cast to the tensor's dtype only within its kind: ``long_tensor += 0.5`` is an
  error (PyTorch: "result type Float can't be cast to Long").
- An augmented operator on a tensor in the graph (``loss += term`` while recording) makes a new
  tensor, so the gradient stays right; PyTorch records such an update in the graph instead, and
  the only difference is that another name for the old tensor keeps the old value.

NumPy meets a tensor through ``__array_ufunc__``: ``array + tensor`` (and the other arithmetic
and comparison ufuncs) is the tensor's reflected operator, in the graph; anything else, and
every ufunc given ``out=`` (``p.data -= lr * p.grad``, ``np.isfinite(w.grad)``), runs on the
arrays, outside the graph, as NumPy code on ``.data`` would.

gradstep keeps no version counters: changing in place a tensor that a graph saved for its
backward pass (an input of ``x * y``, say) gives that backward pass the new values. PyTorch
detects this; here it is the caller's care, as with ``.data`` in PyTorch.
"""

from __future__ import annotations

import numpy as np

from gradstep import autograd
from gradstep.operands import _host_read

#: ufunc -> (the tensor's operator when it is the first operand, when it is the second)
_OPERATORS = {
    np.add: ("__add__", "__radd__"),
    np.subtract: ("__sub__", "__rsub__"),
    np.multiply: ("__mul__", "__rmul__"),
    np.true_divide: ("__truediv__", "__rtruediv__"),
    np.power: ("__pow__", "__rpow__"),
    np.matmul: ("__matmul__", "__rmatmul__"),
    np.less: ("__lt__", "__gt__"),
    np.less_equal: ("__le__", "__ge__"),
    np.greater: ("__gt__", "__lt__"),
    np.greater_equal: ("__ge__", "__le__"),
    np.equal: ("__eq__", "__eq__"),
    np.not_equal: ("__ne__", "__ne__"),
}


def _operand(other, like):
    if isinstance(other, (int, float, bool)):
        return other
    data = getattr(other, "data", other)
    return np.asarray(data, dtype=like.dtype) if isinstance(data, (list, tuple)) else data


class InPlace:
    """Mixed into Tensor (no state of its own)."""

    __slots__ = ()

    def _writable(self, what: str):
        """The array to write into, after PyTorch's check on leaves that require grad."""
        if self.requires_grad and autograd._grad_enabled:
            kind = "a leaf" if self._node is None else "a tensor in the graph"
            raise RuntimeError(
                f"{what}: {kind} that requires grad cannot be changed in place while gradients "
                "are recorded; do it under `with gs.no_grad():` (or on .data)"
            )
        tracer = autograd._tracer  # read once: another thread's trace may end
        if tracer is not None:
            tracer.record_inplace(what)
        return self.data

    def _ufunc_(self, ufunc, other, what: str):
        data = self._writable(what)
        try:
            ufunc(data, _operand(other, data), out=data, casting="same_kind")
        except TypeError as e:  # NumPy's casting error: float into an integer tensor
            raise TypeError(f"{what}: {e}") from None
        except ValueError as e:
            raise ValueError(f"{what}: {e} (tensor of shape {data.shape})") from None
        return self

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        out = kwargs.get("out")
        if method == "__call__" and out is None and len(inputs) == 2 and not kwargs:
            names = _OPERATORS.get(ufunc)
            if names is not None:
                a, b = inputs
                if a is self:
                    return getattr(a, names[0])(b)
                return getattr(b, names[1])(a)
        for x in inputs:
            if isinstance(x, InPlace):
                _host_read(x, f"numpy.{ufunc.__name__}")
        raw = [x.data if isinstance(x, InPlace) else x for x in inputs]
        if out is not None:
            kwargs["out"] = tuple(
                o._writable(f"numpy.{ufunc.__name__}(out=)") if isinstance(o, InPlace) else o
                for o in out
            )
        result = getattr(ufunc, method)(*raw, **kwargs)
        if out is not None and len(out) == 1 and isinstance(out[0], InPlace):
            return out[0]
        return result

    def __setitem__(self, index, value):
        """``t[mask] = 0``, ``t[0] = 5``, ``t[:, 1] = other``: NumPy's assignment into the
        tensor's array, under the in-place rules above (a tensor in a recorded graph cannot
        be written: make the new values with ``gs.where`` or ``masked_fill`` instead)."""
        from gradstep.operands import _raw_index

        data = self._writable("item assignment")
        try:
            data[_raw_index(index)] = getattr(value, "data", value)
        except (ValueError, TypeError) as e:
            raise type(e)(f"item assignment into a tensor of shape {data.shape}: {e}") from None

    def uniform_(self, a=0.0, b=1.0, generator=None):
        from gradstep.nn import init

        self._writable("uniform_()")
        return init.uniform_(self, a, b, generator)

    def normal_(self, mean=0.0, std=1.0, generator=None):
        from gradstep.nn import init

        self._writable("normal_()")
        return init.normal_(self, mean, std, generator)

    def scatter_(self, dim, index, src=None, *, value=None, reduce=None):
        """In-place :meth:`scatter` (outside a recorded graph)."""
        data = self._writable("scatter_()")
        data[...] = self.detach().scatter(dim, index, src, value=value, reduce=reduce).data
        return self

    def zero_(self):
        self._writable("zero_()")[...] = 0
        return self

    def fill_(self, value):
        self._writable("fill_()")[...] = getattr(value, "data", value)
        return self

    def copy_(self, src):
        data = self._writable("copy_()")
        src = np.asarray(getattr(src, "data", src))
        try:
            fits = np.broadcast_shapes(src.shape, data.shape) == data.shape
        except ValueError:
            fits = False
        if not fits:
            raise ValueError(f"copy_(): a source of shape {src.shape} does not fit {data.shape}")
        np.copyto(data, src, casting="unsafe")  # PyTorch's copy_ converts any dtype
        return self

    def add_(self, other, alpha=1):
        scaled = other if alpha == 1 else _operand(other, self.data) * alpha
        return self._ufunc_(np.add, scaled, "add_()")

    def sub_(self, other, alpha=1):
        scaled = other if alpha == 1 else _operand(other, self.data) * alpha
        return self._ufunc_(np.subtract, scaled, "sub_()")

    def mul_(self, other):
        return self._ufunc_(np.multiply, other, "mul_()")

    def div_(self, other):
        return self._ufunc_(np.true_divide, other, "div_()")

    def clamp_(self, min=None, max=None):
        data = self._writable("clamp_()")
        if min is None and max is None:
            raise ValueError("clamp_ needs min, max or both")
        np.clip(data, min, max, out=data)
        return self

    clip_ = clamp_

    def _augmented(self, other, ufunc, out_of_place, what):
        recording = autograd._grad_enabled
        if recording and (self.requires_grad or getattr(other, "requires_grad", False)):
            if self._node is None and self.requires_grad:
                self._writable(what)  # raises: PyTorch refuses this on a leaf too
            return out_of_place(self, other)  # in the graph: a new node keeps gradients right
        return self._ufunc_(ufunc, other, what)

    def __iadd__(self, other):
        return self._augmented(other, np.add, type(self).__add__, "+=")

    def __isub__(self, other):
        return self._augmented(other, np.subtract, type(self).__sub__, "-=")

    def __imul__(self, other):
        return self._augmented(other, np.multiply, type(self).__mul__, "*=")

    def __itruediv__(self, other):
        return self._augmented(other, np.true_divide, type(self).__truediv__, "/=")
