"""What a compiled step returns and how two runs of it are compared (verify)."""

from __future__ import annotations

import numbers

import numpy as np

from gradstep.tensor import Tensor
from gradstep.tracing.recorder import Tracer


def arrays(result) -> list:
    """The arrays inside a step's result, in order (for comparing two runs)."""
    if isinstance(result, Tensor):
        return [result.data]
    if isinstance(result, (tuple, list)):
        return [a for r in result for a in arrays(r)]
    if isinstance(result, dict):
        return [a for r in result.values() for a in arrays(r)]
    return []


def same_arrays(a: list, b: list, close: bool = False) -> bool:
    """Bit for bit (a replay against eager), or ``close``: equal to rounding (a native step
    against eager). Close means the same shapes, dtypes, infinities and NaNs, and finite
    values whose difference, taken over all the arrays together, is under 1e-3 (float32) or
    1e-8 (float64) of their norm: one array alone may be rounding noise (the gradient of a
    bias on centred targets, ~1e-16, whose last digits differ), while what verify must catch,
    NumPy code on ``.data`` that a trace cannot see, differs by far more."""
    if len(a) != len(b):
        return False
    for x, y in zip(a, b):
        if (x is None) != (y is None):
            return False
        if x is not None and (x.shape != y.shape or x.dtype != y.dtype):
            return False
    pairs = [(x, y) for x, y in zip(a, b) if x is not None]
    if not close:
        return all(x.tobytes() == y.tobytes() for x, y in pairs)
    xs, ys = [], []
    for x, y in pairs:
        x, y = np.asarray(x, np.float64).reshape(-1), np.asarray(y, np.float64).reshape(-1)
        finite = np.isfinite(y)
        if not np.array_equal(np.isfinite(x), finite):
            return False
        # a diverging step: the same infinities and NaNs in both
        if not finite.all() and not np.array_equal(x[~finite], y[~finite], equal_nan=True):
            return False
        xs.append(x[finite])
        ys.append(y[finite])
    x, y = np.concatenate(xs) if xs else np.zeros(0), np.concatenate(ys) if ys else np.zeros(0)
    tol = 1e-3 if any(p[0].dtype == np.float32 for p in pairs) else 1e-8
    scale = float(np.abs(y).max()) if y.size else 0.0
    if scale == 0.0:
        return not np.any(x)
    return bool(np.linalg.norm((x - y) / scale) <= tol * np.linalg.norm(y / scale))


def result_builder(tracer: Tracer, result, returned: list):
    """A function turning the replay's returned arrays back into the step's return value."""
    if isinstance(result, Tensor):
        e = tracer.expr.get(id(result))
        if e is None or e not in tracer.values:
            return lambda arrays, r=result: r  # a tensor the step did not compute
        returned.append((e, result.data))
        j = len(returned) - 1
        return lambda arrays: Tensor._make(arrays[j], False, None)
    if isinstance(result, (tuple, list)):
        parts = [result_builder(tracer, r, returned) for r in result]
        kind = type(result)
        return lambda arrays: kind(p(arrays) for p in parts)
    if isinstance(result, dict):
        parts = {k: result_builder(tracer, v, returned) for k, v in result.items()}
        return lambda arrays: {k: p(arrays) for k, p in parts.items()}
    if isinstance(result, (numbers.Number, np.ndarray)) and not isinstance(result, bool):
        tracer.fail(
            "the step returns a number or array computed from tensors; return the tensor "
            "itself (a replay cannot recompute a Python value)"
        )
    return lambda arrays, r=result: r
