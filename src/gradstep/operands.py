"""How data becomes a tensor's operand, and values computed beside the graph.

Dtype rules for what an op receives (:func:`_to_array`, :func:`_pair`, :func:`_constant`), and
the values made from tensors outside the graph (comparisons, casts, argmax, detach) through
:func:`_derived`, which an active trace (gradstep.compile) records so a replay recomputes them.
"""

from __future__ import annotations

import numbers

import numpy as np

from gradstep import autograd, backend

#: Set by :mod:`gradstep.tensor` on import (it imports this module; this breaks the cycle).
Tensor = None


def _to_array(data, dtype=None):
    """``data`` as an array with gradstep's dtype rules (floating -> the default dtype)."""
    if isinstance(data, Tensor):
        data = data.data
    xp = backend.get_array_module(data)
    arr = xp.asarray(data)
    if dtype is not None:
        return arr.astype(dtype, copy=False)
    kind = arr.dtype.kind
    if kind == "f":
        return arr.astype(backend.get_default_dtype(), copy=False)
    if kind in "iub":
        return arr
    raise TypeError(f"cannot make a tensor from data of dtype {arr.dtype}")


def _check_float_for_grad(arr) -> None:
    if arr.dtype.kind != "f":
        raise TypeError(
            f"only floating-point tensors can require gradients, got dtype {arr.dtype} "
            "(integer tensors hold labels or indices)"
        )


def _raw(x):
    return x.data if isinstance(x, Tensor) else x


def _raw_index(index):
    if isinstance(index, tuple):
        return tuple(_raw(i) for i in index)
    if isinstance(index, list):
        return np.asarray(index)
    return _raw(index)


def _pair(a, b):
    """Make two operands agree in dtype without ever upcasting a float32 tensor.

    Python scalars stay as they are (NumPy treats them as weakly typed). Arrays and lists become
    the tensor's floating dtype. Two floating tensors of different precision are an error: the
    silent float64 upcast that NumPy would do doubles memory and halves speed.
    """
    ta, tb = isinstance(a, Tensor), isinstance(b, Tensor)
    if ta and tb:
        da, db = a.data.dtype, b.data.dtype
        if da == db:
            return a, b
        ka, kb = da.kind, db.kind
        if ka == "f" and kb == "f":
            raise TypeError(
                f"dtype mismatch: {da} and {db}; convert one explicitly (.float() or .double())"
            )
        if ka == "f":
            return a, b.astype(da)
        if kb == "f":
            return a.astype(db), b
        return a, b
    if ta:
        if a.data.dtype.kind != "f" and _is_float(b):  # int tensor + 0.5: PyTorch's float32
            a = _floating(a)
        return a, _constant(b, a.data.dtype)
    if b.data.dtype.kind != "f" and _is_float(a):
        b = _floating(b)
    return _constant(a, b.data.dtype), b


def _true_div(a, b):
    """``_pair`` for ``/``: integer by integer is a floating quotient of the default dtype
    (PyTorch's ``tensor([1, 2]) / 2`` is float32; NumPy's would be float64)."""
    a, b = _pair(a, b)
    da = a.data.dtype if isinstance(a, Tensor) else np.asarray(a).dtype
    db = b.data.dtype if isinstance(b, Tensor) else np.asarray(b).dtype
    if da.kind != "f" and db.kind != "f":
        a = _floating(a) if isinstance(a, Tensor) else a
        b = _floating(b) if isinstance(b, Tensor) else b
        if not isinstance(a, Tensor):
            a = _constant(a, b.data.dtype)
        if not isinstance(b, Tensor):
            b = _constant(b, a.data.dtype)
    return a, b


def _floating(t):
    """An integer or boolean tensor as the default floating dtype, as PyTorch promotes one in a
    floating operation (``exp``, ``sigmoid``, ``/``, ``+ 0.5``); a floating tensor as it is."""
    return t if t.data.dtype.kind == "f" else t.astype(backend.get_default_dtype())


def _is_float(x) -> bool:
    if isinstance(x, float):
        return True
    kind = getattr(getattr(x, "dtype", None), "kind", None)
    if kind is None and isinstance(x, (list, tuple)):
        kind = np.asarray(x).dtype.kind
    return kind == "f"


def _constant(x, like):
    if isinstance(x, np.generic):  # before the scalar check: np.float64 subclasses float
        arr = x
    elif isinstance(x, numbers.Number):
        return x  # weakly typed in NumPy: never changes the tensor's dtype
    else:
        arr = x if hasattr(x, "dtype") else np.asarray(x)
    if like.kind == "f" and arr.dtype != like and arr.dtype.kind in "fiub":
        out = arr.astype(like)
        tracer = autograd._tracer  # read once: another thread's trace may end
        if tracer is not None:
            tracer.record_derived(_astype(like), arr, out)
        return out
    return arr


# --- values computed outside the graph ---------------------------------------------------------
# Conversions, comparisons, argmax and detach make tensors without a node. Under a trace
# (gradstep.compile) each is recorded with the function that made it, so a replay recomputes it
# from the new inputs instead of reusing the traced value.


def _derived(f, *operands) -> Tensor:
    """``f`` of the operands' arrays as a tensor outside the graph (no gradient)."""
    out = f(*[_raw(a) for a in operands])
    if isinstance(out, np.generic):
        out = np.asarray(out)
    t = Tensor._make(out, False, None)
    tracer = autograd._tracer  # read once: another thread's trace may end
    if tracer is not None:
        tracer.record_derived(f, *operands, t)
    return t


def _same(a):
    return a


def _astype(dtype):
    def astype(a):
        return a.astype(dtype)

    return astype


def _argmax(axis):
    def argmax(a):
        return np.asarray(a.argmax(axis=axis))

    return argmax


def _converter(dtype):
    def convert(data):
        return _to_array(data, dtype)

    return convert


def _host_read(t: Tensor, what: str) -> None:
    """Tell an active trace that Python looked at a tensor's value (data-dependent step)."""
    tracer = autograd._tracer  # read once: another thread's trace may end
    if tracer is not None:
        tracer.record_host_read(t, what)
