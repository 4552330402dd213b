"""The array-module seam and the default floating dtype.

Every op receives raw arrays. Most NumPy calls dispatch to CuPy on their own (CuPy implements
``__array_ufunc__`` and ``__array_function__``); code that *creates* arrays asks
:func:`get_array_module` which module to create them with, so a CuPy backend needs no change in
the ops. CuPy is never imported here: it is only used if the caller already imported it.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

import numpy as np

_default_dtype = np.dtype(np.float32)


def get_array_module(*arrays: object):
    """Return the module (``numpy`` or ``cupy``) that owns ``arrays``.

    CuPy is consulted only when it is already imported, so NumPy-only programs never pay for it.
    """
    cupy = sys.modules.get("cupy")
    if cupy is not None:
        return cupy.get_array_module(*arrays)
    return np


_consts: dict = {}


def const(value, like, dtype=None):
    """``value`` as a 0-d array of ``dtype`` (default ``like``'s) in ``like``'s array module,
    made once and kept read-only.

    NumPy rounds a Python number into the other operand's dtype in every call, and that is
    the slow part of a small op (``np.multiply(2, a)`` takes twice as long as with a 0-d
    array); the 0-d array gives the same bits.
    """
    key = (value, like.dtype if dtype is None else dtype, type(like))
    try:
        return _consts[key]
    except KeyError:
        pass
    if len(_consts) > 1024:  # e.g. a new batch size each call: keep it bounded
        _consts.clear()
    c = get_array_module(like).asarray(value, dtype=key[1])
    c.flags.writeable = False
    _consts[key] = c
    return c


def get_default_dtype() -> np.dtype:
    """The dtype that floating input becomes when no ``dtype=`` is given (float32 at start)."""
    return _default_dtype


def set_default_dtype(dtype) -> None:
    """Set the default floating dtype (``np.float32`` or ``np.float64``; float16 is allowed)."""
    global _default_dtype
    dt = np.dtype(dtype)
    if dt.kind != "f":
        raise TypeError(f"the default dtype must be a floating dtype, got {dt}")
    _default_dtype = dt


@contextlib.contextmanager
def default_dtype(dtype) -> Iterator[None]:
    """Context manager: ``with gradstep.default_dtype(np.float64): ...``."""
    previous = _default_dtype
    set_default_dtype(dtype)
    try:
        yield
    finally:
        set_default_dtype(previous)
