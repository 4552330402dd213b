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
