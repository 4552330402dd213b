"""Matrix products. Each backward is two matrix products (and a sum for the bias)."""

from __future__ import annotations

import numpy as np

from gradstep.autograd import Function, unbroadcast


def _check_matmul(a, b) -> None:
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul needs at least 1-d operands, got shapes {a.shape} and {b.shape}")
    k_b = b.shape[0] if b.ndim == 1 else b.shape[-2]
    if a.shape[-1] != k_b:
        raise ValueError(
            f"matmul shape mismatch: {a.shape} @ {b.shape} (inner dimensions {a.shape[-1]} "
            f"and {k_b} differ)"
        )


class MatMul(Function):
    """y = a @ b (NumPy semantics, 1-d and batched);  da = g @ b^T, db = a^T @ g."""

    def forward(self, a, b):
        _check_matmul(a, b)
        self.a, self.b = a, b
        return a @ b

    def backward(self, g):
        a, b = self.a, self.b
        na, nb = self.needs_input_grad
        # Promote 1-d operands to matrices so one formula covers every case.
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        g2 = g
        if b.ndim == 1:
            g2 = g2[..., None]
        if a.ndim == 1:
            g2 = g2[..., None, :]
        ga = gb = None
        if na:
            ga = unbroadcast(g2 @ np.swapaxes(b2, -1, -2), a2.shape).reshape(a.shape)
        if nb:
            gb = unbroadcast(np.swapaxes(a2, -1, -2) @ g2, b2.shape).reshape(b.shape)
        return ga, gb


class Linear(Function):
    """y = x W^T + b with W of shape (out, in), PyTorch's layout.

    dx = g W,  dW = g^T x,  db = sum of g over the batch. Fused so a layer is one node.
    Results go into a compiled replay's scratch arrays when it has them (``out=``).
    """

    uses_scratch = True

    @staticmethod
    def check(x, weight, bias=None):
        if x.ndim == 0 or x.shape[-1] != weight.shape[1]:
            raise ValueError(
                f"linear: input of shape {x.shape} does not fit a weight of shape "
                f"{weight.shape} (expects {weight.shape[1]} features in the last dimension)"
            )
        if x.dtype is not weight.dtype and x.dtype != weight.dtype:  # `is`: the common case
            raise TypeError(
                f"linear: input dtype {x.dtype} differs from weight dtype {weight.dtype}; "
                "convert the input (.float() / .double()) or the model"
            )

    def forward(self, x, weight, bias=None):
        self.x, self.weight = x, weight
        s = self.scratch
        y = np.matmul(x, weight.T, out=s and s.get("out", x, x.shape[:-1] + weight.shape[:1]))
        if bias is not None:
            y += bias
        return y

    def backward(self, g):
        needs = self.needs_input_grad
        nx, nw, nb = needs if len(needs) == 3 else needs + (False,)
        x, w = self.x, self.weight
        s = self.scratch
        gx = np.matmul(g, w, out=s and s.get("g0", x)) if nx else None
        gw = gb = None
        if nw or nb:
            g2 = g if g.ndim == 2 else g.reshape(-1, g.shape[-1])  # a batch of any rank
            if nw:
                x2 = x if x.ndim == 2 else x.reshape(-1, x.shape[-1])
                gw = np.matmul(g2.T, x2, out=s and s.get("g1", w))
            if nb:
                gb = g2.sum(axis=0, out=s and s.get("g2", w, w.shape[:1]))
        return gx, gw, gb
