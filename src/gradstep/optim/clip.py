"""Gradient clipping."""

from __future__ import annotations

import numpy as np

from gradstep.autograd import replayable
from gradstep.tensor import Tensor


@replayable
def clip_grad_norm_(parameters, max_norm: float) -> float:
    """Scale all gradients together so their joint L2 norm is at most ``max_norm``.

    Returns the norm before clipping (as PyTorch: coefficient max_norm / (norm + 1e-6)).
    """
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    grads = [p._grad for p in parameters if p._grad is not None]
    if not grads:
        return 0.0
    total = float(np.sqrt(sum(float(np.sum(g.astype(np.float64) ** 2)) for g in grads)))
    coef = max_norm / (total + 1e-6)
    if coef < 1:
        for g in grads:
            g *= coef
    return total
