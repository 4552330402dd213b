"""The fast path of a native compiled step: one generated guard-and-call function."""

from __future__ import annotations

import builtins

import numpy as np

from gradstep import autograd
from gradstep.optim.optimizer import StateMismatchError
from gradstep.tensor import Tensor

MISS = object()


def fast_path(step, key: tuple, p):
    """One generated function that checks, without building the signature, that a call has
    ``key``'s shapes, dtypes and grad mode and ``p``'s module modes, and then runs ``p``'s
    native step and builds its result; it returns ``MISS`` for any other call, which then
    takes the general path. None where the signature has keywords or objects compared by
    identity (the general path serves those). (At the lecture's model the general dispatch
    is a third of a native step's time.)"""
    positional, keywords, grad = key
    ns = {
        "Tensor": Tensor,
        "autograd": autograd,
        "MISS": MISS,
        "step": step,
        "run": p.native._call,
        "build": p.build,
        "StateMismatchError": StateMismatchError,
    }
    lines = [
        f"if kwargs or len(args) != {len(positional)} or autograd._grad_enabled is not {grad}:"
    ]
    lines.append("    return MISS")
    if keywords:
        return None
    for i, sig in enumerate(positional):
        lines.append(f"a = args[{i}]")
        if sig[0] is Tensor:
            _, shape, dtype, requires_grad, data_type = sig
            ns[f"D{i}"], ns[f"T{i}"] = dtype, data_type
            lines.append(f"if type(a) is not Tensor or a.requires_grad is not {requires_grad}:")
            lines.append("    return MISS")
            lines.append("d = a.data")
            lines.append(f"if type(d) is not T{i} or d.shape != {shape!r} or d.dtype != D{i}:")
        elif sig[0] is np.ndarray:
            _, shape, dtype = sig
            ns[f"D{i}"] = dtype
            lines.append(f"if type(a) is not ndarray or a.shape != {shape!r} or a.dtype != D{i}:")
            ns["ndarray"] = np.ndarray
        else:  # a Python value or another object: the general path compares it
            if sig[0] is object:
                return None
            ns[f"C{i}"], ns[f"V{i}"] = sig
            lines.append(f"if type(a) is not C{i} or a != V{i}:")
        lines.append("    return MISS")
    for k, (m, flag) in enumerate(zip(p.modules, p.flags)):
        ns[f"M{k}"] = m
        lines.append(f"if M{k}.training is not {flag}:")
        lines.append("    return MISS")
    lines += [
        "step.replays += 1",
        "try:",
        "    out = run(args, kwargs)",
        "except StateMismatchError as e:  # optimizer states that cannot be flat",
        "    return step._native_failed(e, args, kwargs)",
        "return build(out)",
    ]
    src = "def fast(args, kwargs):\n    " + "\n    ".join(lines) + "\n"
    exec(builtins.compile(src, "<gradstep.compile fast path>", "exec"), ns)
    return ns["fast"]
