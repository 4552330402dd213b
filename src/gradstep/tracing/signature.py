"""A call's signature as a compiled step sees it: what must equal a trace's for a replay.

A tensor argument counts by shape, dtype, ``requires_grad`` and array type, an array by shape
and dtype, a Python number or string by value, any other object by identity; grad mode counts
too. :func:`_change` says in one line what differs from a trace (the retrace notice).
"""

from __future__ import annotations

import numbers

import numpy as np

from gradstep import autograd
from gradstep.tensor import Tensor


def _signature(args, kwargs) -> tuple:
    return (  # runs every call: list comprehensions, not generators (twice as fast)
        tuple([_sig(a) for a in args]),
        tuple([(k, _sig(kwargs[k])) for k in sorted(kwargs)]) if kwargs else (),
        autograd._grad_enabled,
    )


def _change(traced: tuple, new: tuple) -> str:
    """What differs between the first traced signature and ``new``, for a one-line notice."""
    if traced[2] != new[2]:
        return "grad mode differs from the trace (no_grad)"
    old_items = list(enumerate(traced[0])) + list(traced[1])
    new_items = list(enumerate(new[0])) + list(new[1])
    if [k for k, _ in old_items] != [k for k, _ in new_items]:
        return "different arguments from the trace"
    for (k, a), (_, b) in zip(old_items, new_items):
        if a != b:
            what = f"argument {k}" if isinstance(k, int) else f"argument {k}="
            return f"{what} is {_describe(b)}, traced with {_describe(a)}"
    return "different arguments from the trace"


def _describe(sig) -> str:
    if sig[0] in (Tensor, np.ndarray):
        kind = "a tensor" if sig[0] is Tensor else "an array"
        return f"{kind} of shape {sig[1]} and dtype {sig[2]}"
    if sig[0] is object:
        return "another object"
    return repr(sig[1])


def _sig(a):
    if type(a) is Tensor or isinstance(a, Tensor):
        d = a.data
        return (Tensor, d.shape, d.dtype, a.requires_grad, type(d))
    if isinstance(a, np.ndarray):
        return (np.ndarray, a.shape, a.dtype)
    if isinstance(a, (numbers.Number, str, bytes, type(None))):
        return (type(a), a)
    return (object, id(a))
