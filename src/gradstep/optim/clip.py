"""Gradient clipping."""

from __future__ import annotations

import numpy as np

from gradstep.autograd import replayable
from gradstep.tensor import Tensor


@replayable
def clip_grad_norm_(parameters, max_norm: float, norm_type: float = 2.0):
    """Scale all gradients together so their joint norm is at most ``max_norm``.

    Returns the norm before clipping as a NumPy float64 scalar (``.item()``, ``float()`` and
    formatting work, as on PyTorch's 0-d tensor). Coefficient max_norm / (norm + 1e-6), as
    PyTorch; ``norm_type`` 2 or inf.
    """
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    grads = [p._grad for p in parameters if p._grad is not None]
    if not grads:
        return np.float64(0.0)
    norm_type = float(norm_type)
    if norm_type == 2:
        total = np.sqrt(sum(float(np.sum(g.astype(np.float64) ** 2)) for g in grads))
    elif np.isinf(norm_type):
        total = max(float(np.max(np.abs(g))) if g.size else 0.0 for g in grads)
    else:
        raise ValueError(f"clip_grad_norm_: norm_type is 2 or inf, got {norm_type}")
    coef = max_norm / (total + 1e-6)
    if coef < 1:
        for g in grads:
            g *= coef
    return np.float64(total)


@replayable
def clip_grad_value_(parameters, clip_value: float) -> None:
    """Clip every gradient element to [-clip_value, clip_value], in place."""
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    for p in parameters:
        if p._grad is not None:
            np.clip(p._grad, -clip_value, clip_value, out=p._grad)
