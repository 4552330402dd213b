"""Loss modules (step 2 of the lecture): each wraps the functional loss of the same name."""

from __future__ import annotations

from gradstep import functional as F
from gradstep.nn.module import Module
from gradstep.ops.loss import REDUCTIONS


class _Loss(Module):
    fn = None

    def __init__(self, reduction: str = "mean"):
        super().__init__()
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
        self.reduction = reduction

    def forward(self, input, target):
        return type(self).fn(input, target, reduction=self.reduction)

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"


class MSELoss(_Loss):
    """Mean squared error."""

    fn = staticmethod(F.mse_loss)


class L1Loss(_Loss):
    """Mean absolute error (the lecture's MAE)."""

    fn = staticmethod(F.l1_loss)


class CrossEntropyLoss(_Loss):
    """Cross-entropy of logits (N, C) against integer labels (N,)."""

    fn = staticmethod(F.cross_entropy)


class BCEWithLogitsLoss(_Loss):
    """Binary cross-entropy on logits, computed stably."""

    fn = staticmethod(F.binary_cross_entropy_with_logits)


class HuberLoss(_Loss):
    """Squared error near zero, absolute error beyond ``delta``."""

    def __init__(self, reduction: str = "mean", delta: float = 1.0):
        super().__init__(reduction)
        self.delta = delta

    def forward(self, input, target):
        return F.huber_loss(input, target, reduction=self.reduction, delta=self.delta)
