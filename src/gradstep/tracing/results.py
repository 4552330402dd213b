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
    against eager; what verify must catch, NumPy code on ``.data`` that a trace cannot see,
    differs by far more than a norm-relative 1e-3 in float32 or 1e-8 in float64)."""

    def equal(x, y) -> bool:
        if not close:
            return x.tobytes() == y.tobytes()
        tol = 1e-3 if x.dtype == np.float32 else 1e-8
        return bool(
            np.linalg.norm(np.asarray(x, np.float64) - y) <= tol * np.linalg.norm(y) + 1e-30
        )

    return len(a) == len(b) and all(
        (x is None and y is None)
        or (
            x is not None
            and y is not None
            and x.shape == y.shape
            and x.dtype == y.dtype
            and equal(x, y)
        )
        for x, y in zip(a, b)
    )


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
