"""The batched forward pass behind ``gradstep.lab.landscape``: a block of grid points of a
plane through a network's parameters evaluated as one array computation, for an
``nn.Sequential`` of ``nn.Linear`` layers and elementwise activations with the MSE,
cross-entropy or binary cross-entropy loss. Each activation and loss is written as gradstep's
own op computes it; ``_Batched.ok`` is False (with ``reason``) for anything else, and the
landscape then falls back to the engine, one point at a time."""

from __future__ import annotations

import numpy as np

from gradstep import functional as F
from gradstep import nn
from gradstep.lab.network_hessian import LossFunction
from gradstep.ops.activation import stable_sigmoid
from gradstep.ops.loss import stable_log_softmax

CHUNK = 1_000_000  # floats per block of grid points (activations, 4 arrays): ~8 MB, near cache


# ----------------------------------------------------------------
def _gelu_exact(h, out=None):
    from scipy.special import erfc

    return h * (0.5 * erfc(-h / np.sqrt(2.0)))


def _gelu_tanh(h, out=None):
    c, k = np.sqrt(2 / np.pi), 0.044715
    return h * 0.5 * (1 + np.tanh(c * (h + k * h * h * h)))


def _identity(h, out=None):
    return h


def _softplus(h, out=None):
    tail = np.log1p(np.exp(-np.abs(h)))
    return np.add(np.maximum(h, 0.0), tail, out=out)


def _activation(m: nn.Module):
    """The NumPy form ``fn(h, out=None)`` of an elementwise activation module, computed as
    its op computes it (``out=h`` may overwrite h; use the returned array), or None."""
    t = type(m)
    if t is nn.ReLU:
        return lambda h, out=None: np.maximum(h, 0.0, out=out)
    if t is nn.LeakyReLU:
        slope = float(m.negative_slope)
        return lambda h, out=None: np.multiply(h, np.where(h > 0, 1.0, slope), out=out)
    if t is nn.Sigmoid:
        return stable_sigmoid
    if t is nn.Tanh:
        return lambda h, out=None: np.tanh(h, out=out)
    if t is nn.SiLU:
        return lambda h, out=None: np.multiply(h, stable_sigmoid(h), out=out)
    if t is nn.Softplus and m.beta == 1 and m.threshold >= 20:
        return _softplus
    if t is nn.ELU:
        alpha = float(m.alpha)
        return lambda h, out=None: np.where(h > 0, h, np.expm1(np.minimum(h, 0.0)) * alpha)
    if t is nn.GELU:
        return _gelu_exact if m.approximate == "none" else _gelu_tanh
    if t in (nn.Identity, nn.Flatten) or (t is nn.Dropout and (not m.training or m.p == 0)):
        return _identity
    return None


def _modules(model: nn.Module):
    """The model as a flat list of modules applied in order, or a reason why it is not one."""
    if type(model) is nn.Linear or _activation(model) is not None:
        return [("", model)], None
    if not isinstance(model, nn.Sequential) or type(model).forward is not nn.Sequential.forward:
        return None, f"{type(model).__name__} is not an nn.Sequential (it has its own forward)"
    out = []
    for name, child in model._modules.items():
        inner, why = _modules(child)
        if inner is None:
            nested = (
                isinstance(child, nn.Sequential) and type(child).forward is nn.Sequential.forward
            )
            return (
                None,
                why if nested else f"module {name} ({type(child).__name__}) has no batched form",
            )
        out += [(f"{name}.{n}" if n else name, m) for n, m in inner]
    return out, None


def _mean_or_sum(per_item: np.ndarray, reduction: str) -> np.ndarray:
    total = per_item.reshape(per_item.shape[0], -1).sum(axis=1)
    return total / per_item[0].size if reduction == "mean" else total


def _loss(loss_fn, y: np.ndarray):
    """A function (G, ...) outputs -> (G,) losses that computes ``loss_fn`` as gradstep's op
    does, or a reason why there is none."""
    functions = (
        (F.mse_loss, "mse"),
        (F.cross_entropy, "ce"),
        (F.binary_cross_entropy_with_logits, "bcel"),
        (F.binary_cross_entropy, "bce"),
    )
    modules = {nn.MSELoss: "mse", nn.CrossEntropyLoss: "ce", nn.BCEWithLogitsLoss: "bcel"}
    modules[nn.BCELoss] = "bce"
    kind = next((k for fn, k in functions if loss_fn is fn), None)
    reduction, t = "mean", type(loss_fn)
    if kind is None:
        kind = modules.get(t)
        if kind is None:
            return None, f"the loss {getattr(loss_fn, '__name__', t.__name__)} has no batched form"
        reduction = loss_fn.reduction
        for k in ("weight", "pos_weight"):
            if getattr(loss_fn, k, None) is not None:
                return None, f"{t.__name__} with {k}= has no batched form"
        if getattr(loss_fn, "label_smoothing", 0) != 0:
            return None, f"{t.__name__} with label_smoothing= has no batched form"
    if reduction not in ("mean", "sum"):
        return None, f"reduction {reduction!r} has no batched form"
    if kind == "ce":
        ignore = getattr(loss_fn, "ignore_index", -100)
        if y.dtype.kind not in "iu" or y.ndim != 1 or (y == ignore).any():
            return None, "cross-entropy with targets other than class indices has no batched form"
        rows = np.arange(y.size)

        def ce(out):
            return _mean_or_sum(-stable_log_softmax(out, -1)[:, rows, y], reduction)

        return ce, None
    t = y.astype(np.float64)
    if kind == "mse":
        return lambda out: _mean_or_sum((out - t) * (out - t), reduction), None
    if kind == "bcel":
        return lambda out: _mean_or_sum(
            np.maximum(out, 0) - out * t + np.log1p(np.exp(-np.abs(out))), reduction
        ), None

    def bce(out):
        with np.errstate(divide="ignore"):
            log_p = np.clip(np.log(out), -100, None)
            log_q = np.clip(np.log(1 - out), -100, None)
        return _mean_or_sum(-(log_p * t + log_q * (1 - t)), reduction)

    return bce, None


class _Batched:
    """The loss at theta = base + a d1 + b d2 for many (a, b) at once (see the module's
    docstring); built from the float64 copy of the model held by a LossFunction.

    What moves on the plane is known before any grid point is computed, and most of the work
    does not move. Activations are kept as a shared array S (N, width) with, per grid point,
    new values V (G, N, k) for the k columns that differ (all of them: "dense"). A Linear layer
    whose input is shared is linear in (a, b): z = (S W0^T + b0) + a (S D1^T + e1) + b (S D2^T
    + e2), three products made once for the whole grid, and only the rows that D1, D2 touch
    vary (one unit in a weight landscape). A layer after a few varying columns adds their
    change, (V - S[:, cols]) W[:, cols]^T. Past that the activations are dense and each layer
    is a batched matrix product with the weights of each grid point, shape (G, out, in).
    """

    def __init__(self, f: LossFunction, loss_fn):
        mods, why = _modules(f.model)
        X, y = f.X.data, np.asarray(f.y.data)
        if mods is not None and X.ndim != 2:
            mods, why = None, f"input of shape {X.shape} (the batched form takes (N, features))"
        loss, why_loss = _loss(loss_fn, y) if mods is not None else (None, None)
        self.reason = why or why_loss
        self.ok = self.reason is None
        if not self.ok:
            return
        spans, start = {}, 0
        for p in f.params:
            spans[id(p)] = (start, start + p.size, p.shape)
            start += p.size
        self.layers = []
        for _, m in mods:
            if type(m) is nn.Linear:
                bias = spans[id(m.bias)] if m.bias is not None else None
                self.layers.append(("linear", spans[id(m.weight)], bias))
            else:
                self.layers.append(("act", _activation(m), None))
        self.X, self.loss = X, loss

    def _plan(self, base, d1, d2) -> tuple[list, np.ndarray | None, np.ndarray | None]:
        """The per-grid-point steps, everything shared computed once; returns the steps and
        the final shared output with the columns the grid points replace (None: dense)."""
        S, cols, steps = self.X, np.arange(0), []
        for kind, w_span, b_span in self.layers:
            if kind == "act":
                steps.append(("act", w_span))
                S = w_span(S) if S is not None else None
                continue
            lo, hi, shape = w_span
            W0, D1, D2 = (v[lo:hi].reshape(shape) for v in (base, d1, d2))
            if b_span is None:
                b0 = e1 = e2 = np.zeros(shape[0])
            else:
                b0, e1, e2 = (v[b_span[0] : b_span[1]] for v in (base, d1, d2))
            rows = np.flatnonzero(np.abs(D1).sum(1) + np.abs(D2).sum(1) + np.abs(e1) + np.abs(e2))
            if cols is None:  # dense input
                steps.append(("dense", W0, b0, D1, D2, e1, e2, rows.size > 0))
                continue
            Zs = S @ W0.T
            Zs += b0
            Z1 = (S @ D1[rows].T + e1[rows]) if rows.size else None
            Z2 = (S @ D2[rows].T + e2[rows]) if rows.size else None
            if cols.size:  # a few varying inputs: their change, through all rows
                wc = (W0[:, cols], D1[:, cols], D2[:, cols], rows.size > 0)
                steps.append(("delta", S[:, cols], Zs, wc, rows, Z1, Z2))
                S, cols = None, None
            else:  # shared input: the output varies in ``rows`` only, linearly in (a, b)
                stacked = None if Z1 is None else np.stack([Zs[:, rows], Z1, Z2])
                steps.append(("rows", stacked))
                S, cols = Zs, (None if rows.size == shape[0] else rows)
        return steps, S, cols

    @staticmethod
    def _run(steps, a, b):
        V, ac, bc, peak = None, a[:, None, None], b[:, None, None], 0
        for step in steps:
            kind = step[0]
            if kind == "act":  # V is always this block's own array: overwritten in place
                V = None if V is None else step[1](V, out=V)
            elif kind == "rows":  # [1 a b] @ [Zs; Z1; Z2]: one product writes the block
                stacked = step[1]
                if stacked is not None:
                    coef = np.stack([np.ones_like(a), a, b], axis=1)
                    V = (coef @ stacked.reshape(3, -1)).reshape(a.size, *stacked.shape[1:])
            elif kind == "delta":
                _, S_cols, Zs, (W0c, D1c, D2c, moving), rows, Z1, Z2 = step
                dV = V - S_cols
                g, n, k = dV.shape
                if moving:
                    WcT = (W0c + ac * D1c + bc * D2c).swapaxes(1, 2)  # (G, k, out)
                    V = dV * WcT if k == 1 else np.matmul(dV, WcT)  # k = 1: an outer product
                else:
                    V = (dV.reshape(g * n, k) @ W0c.T).reshape(g, n, -1)
                V += Zs
                if moving:
                    V[:, :, rows] += ac * Z1 + bc * Z2
            else:
                _, W0, b0, D1, D2, e1, e2, moving = step
                if moving:
                    W = W0 + ac * D1 + bc * D2  # (G, out, in)
                    V = np.matmul(V, W.swapaxes(1, 2))
                    V += (b0 + a[:, None] * e1 + b[:, None] * e2)[:, None, :]
                    peak = max(peak, W[0].size)
                else:
                    g, n, i = V.shape
                    V = (V.reshape(g * n, i) @ W0.T).reshape(g, n, -1)
                    V += b0
            peak = max(peak, 0 if V is None else V[0].size)
        return V, peak

    def losses(self, base, d1, d2, a, b) -> np.ndarray:
        steps, S, cols = self._plan(base, d1, d2)

        def block(sl):
            V, peak = self._run(steps, a[sl], b[sl])
            if cols is not None:  # the shared output with the varying columns put in
                out = np.repeat(S[None], a[sl].size, axis=0)
                if V is not None:
                    out[:, :, cols] = V
                V = out
            return self.loss(V), max(peak, V[0].size)

        out = np.empty(a.size)
        out[:1], peak = block(slice(0, 1))  # the first point alone: how large a point is
        size = max(1, CHUNK // (4 * peak))
        for lo in range(1, a.size, size):
            out[lo : lo + size] = block(slice(lo, lo + size))[0]
        return out
