"""PyTorch's classification and robust losses with their full arguments, built from the fused
ops and indexing (so their gradients are those ops'). The common case of ``cross_entropy``
(integer labels of shape (N,), no weight, no smoothing, nothing ignored) stays on the fused
``CrossEntropy`` op: the speed of the course's models does not change.
"""

from __future__ import annotations

import numpy as np

from gradstep.operands import _raw
from gradstep.ops import loss
from gradstep.ops.loss import REDUCTIONS
from gradstep.tensor import Tensor


def _t(x) -> Tensor:
    return x if isinstance(x, Tensor) else Tensor(x)


def _reduce(per_item: Tensor, reduction: str, denominator=None) -> Tensor:
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    if reduction == "none":
        return per_item
    total = per_item.sum()
    if reduction == "sum":
        return total
    return total / (denominator if denominator is not None else max(per_item.numel(), 1))


def _class_last(logits: Tensor, target):
    """(N, C, d1, ...) logits and (N, d1, ...) targets as (M, C) and (M,): PyTorch's layout for
    images and sequences, flattened so each position is a row."""
    if logits.ndim <= 2:
        return logits, target
    c = logits.shape[1]
    perm = (0, *range(2, logits.ndim), 1)
    rows = logits.permute(*perm).reshape(-1, c)
    if isinstance(target, Tensor) and target.dtype.kind == "f":  # probabilities, same layout
        return rows, target.permute(*perm).reshape(-1, c)
    t = np.asarray(_raw(target))
    return rows, (t.reshape(-1) if t.dtype.kind in "iu" else np.moveaxis(t, 1, -1).reshape(-1, c))


def nll_loss(input, target, weight=None, ignore_index: int = -100, reduction: str = "mean"):
    """-input[n, target[n]] * weight[target[n]], averaged over the weights of the rows not
    ignored (PyTorch's definition): ``input`` holds log-probabilities of shape (N, C)."""
    logp, labels = _class_last(_t(input), target)
    labels = np.asarray(_raw(labels)).astype(np.int64).reshape(-1)
    n, c = logp.shape
    keep = labels != ignore_index
    safe = np.where(keep, labels, 0)
    if ((safe < 0) | (safe >= c)).any():
        bad = int(safe[(safe < 0) | (safe >= c)][0])
        raise ValueError(f"nll_loss: label {bad} is outside [0, {c})")
    w = np.ones(c) if weight is None else np.asarray(_raw(weight), dtype=np.float64)
    row_w = np.where(keep, w[safe], 0.0).astype(logp.dtype)
    picked = logp[np.arange(n), safe]
    return _reduce(-picked * row_w, reduction, float(row_w.sum()) if reduction == "mean" else None)


def cross_entropy(
    input,
    target,
    weight=None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    **legacy,
) -> Tensor:
    """PyTorch's ``cross_entropy``: logits of shape (N, C) or (N, C, d...), targets as class
    indices (N,) / (N, d...) or as probabilities of the logits' shape; per-class ``weight``,
    ``ignore_index`` and ``label_smoothing`` as PyTorch defines them."""
    from gradstep.functional import log_softmax

    if legacy:  # the old keyword: cross_entropy(logits, labels=...)
        target = legacy.pop("labels", target)
    logits = _t(input)
    raw = _raw(target)
    kind = np.asarray(raw).dtype.kind
    if kind == "f" and np.shape(raw) != logits.shape:
        raise TypeError(
            f"cross_entropy: labels must be integer class indices, got dtype "
            f"{np.asarray(raw).dtype} (probability targets have the logits' shape "
            f"{logits.shape})"
        )
    plain = (
        weight is None
        and label_smoothing == 0
        and logits.ndim == 2
        and np.asarray(raw).dtype.kind in "iu"
        and not (np.asarray(raw) == ignore_index).any()
    )
    if plain:
        return loss.CrossEntropy.apply(logits, raw, reduction=reduction)
    if not 0 <= label_smoothing <= 1:
        raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing}")
    rows, t = _class_last(logits, target)
    logp = log_softmax(rows, dim=1)
    c = rows.shape[1]
    w = None if weight is None else np.asarray(_raw(weight), dtype=logp.dtype)
    if np.asarray(_raw(t)).dtype.kind == "f":  # probabilities
        probs = np.asarray(_raw(t), dtype=logp.dtype)
        if label_smoothing:
            probs = probs * (1 - label_smoothing) + label_smoothing / c
        per_class = -logp * probs if w is None else -logp * (probs * w)
        return _reduce(per_class.sum(1), reduction, rows.shape[0] if reduction == "mean" else None)
    labels = np.asarray(_raw(t)).astype(np.int64).reshape(-1)
    keep = labels != ignore_index
    row_w = (np.ones(c, logp.dtype) if w is None else w)[np.where(keep, labels, 0)]
    row_w = np.where(keep, row_w, 0).astype(logp.dtype)
    denominator = float(row_w.sum()) if reduction == "mean" else None
    hard = nll_loss(logp, labels, weight, ignore_index, reduction="none")
    if not label_smoothing:
        return _reduce(hard, reduction, denominator)
    spread = -(logp if w is None else logp * w).sum(1) / c  # PyTorch: the weights apply here too
    smooth = spread * keep.astype(logp.dtype)
    per_row = hard * (1 - label_smoothing) + smooth * label_smoothing
    return _reduce(per_row, reduction, denominator)


def binary_cross_entropy(input, target, weight=None, reduction: str = "mean") -> Tensor:
    """-(t log p + (1 - t) log(1 - p)) on probabilities; each log is clamped at -100 as
    PyTorch does, so p = 0 or 1 stays finite."""
    p = _t(input)
    t = np.asarray(_raw(target), dtype=p.dtype)
    if t.shape != p.shape:
        raise ValueError(f"binary_cross_entropy: target {t.shape} and input {p.shape} differ")
    with np.errstate(divide="ignore"):
        log_p = p.log().clip(min=-100)
        log_q = (1 - p).log().clip(min=-100)
    per_item = -(log_p * t + log_q * (1 - t))
    if weight is not None:
        per_item = per_item * np.asarray(_raw(weight), dtype=p.dtype)
    return _reduce(per_item, reduction)


def smooth_l1_loss(input, target, reduction: str = "mean", beta: float = 1.0) -> Tensor:
    """0.5 d^2 / beta for |d| < beta, |d| - 0.5 beta beyond: the Huber loss divided by beta."""
    from gradstep.functional import huber_loss, l1_loss

    if beta == 0:
        return l1_loss(input, target, reduction=reduction)
    return huber_loss(input, target, reduction=reduction, delta=beta) / beta
