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
    """

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
        y = np.matmul(x, weight.T)
        if bias is not None:
            y += bias
        return y

    def backward(self, g):
        needs = self.needs_input_grad
        nx, nw, nb = needs if len(needs) == 3 else needs + (False,)
        x, w = self.x, self.weight
        gx = np.matmul(g, w) if nx else None
        gw = gb = None
        if nw or nb:
            g2 = g if g.ndim == 2 else g.reshape(-1, g.shape[-1])  # a batch of any rank
            if nw:
                x2 = x if x.ndim == 2 else x.reshape(-1, x.shape[-1])
                gw = np.matmul(g2.T, x2)
            if nb:
                gb = g2.sum(axis=0)
        return gx, gw, gb

    # the native kernels (gradstep.compile(backend="native"); see docs/compile.md)
    def lower(self, L, x, weight, bias=None):
        if x.ndim != 2:
            raise L.unsupported(f"linear on a batch of shape {x.shape} (native: 2-d only)")
        y = L.buffer((x.shape[0], weight.shape[0]), "linear")
        L.matmul(x.shape[0] * x.shape[1] * weight.shape[0])
        L.emit(f"matmul_nt({x}, {weight}, {y})")
        if bias is not None:
            L.emit(f"add_rows({y}, {bias})")
        L.keep(self, x=x, weight=weight)
        return y

    def lower_backward(self, L, g, grads):
        gx, gw, gb = (list(grads) + [None])[:3]
        k = L.kept_by(self)
        if gx is not None:
            L.emit(f"matmul_nn({g}, {k['weight']}, {gx})")
        if gw is not None:
            L.emit(f"matmul_tn({g}, {k['x']}, {gw})")
        if gb is not None:
            L.emit(f"sum_rows({g}, {gb})")


_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def parse_einsum(subscripts: str, shapes: list) -> tuple[list, str]:
    """Explicit subscripts for each operand and the output: ``...`` spelled out in unused
    letters (right-aligned, as broadcasting), and NumPy's implicit output (the letters seen
    once, in order) made explicit."""
    spec = subscripts.replace(" ", "")
    ins, arrow, out = spec.partition("->")
    parts = ins.split(",")
    if len(parts) != len(shapes):
        raise ValueError(f"einsum: {subscripts!r} names {len(parts)} operands, got {len(shapes)}")
    for part in parts + [out]:
        if any(c not in _LETTERS and c != "." for c in part):
            raise ValueError(f"einsum: {subscripts!r}: subscripts are letters and '...'")
    free = [c for c in _LETTERS if c not in spec]
    widths = [len(s) - len(p.replace("...", "")) for s, p in zip(shapes, parts)]
    n_ell = max([n for n, p in zip(widths, parts) if "..." in p] or [0])
    ell = "".join(free[:n_ell])
    explicit = []
    for p, shape, n in zip(parts, shapes, widths):
        if "..." in p:
            p = p.replace("...", ell[n_ell - n :] if n else "")
        if len(p) != len(shape):
            raise ValueError(f"einsum: {p!r} has {len(p)} letters for an operand of shape {shape}")
        explicit.append(p)
    if arrow:
        out = out.replace("...", ell)
    else:
        letters = "".join(explicit)
        out = ell + "".join(
            sorted(c for c in set(letters) if letters.count(c) == 1 and c not in ell)
        )
    return explicit, out


class Einsum(Function):
    """y = einsum(subscripts, *operands);  the gradient of operand i is the einsum of the
    upstream gradient with the other operands onto operand i's letters (broadcast along the
    letters only it has; written into the diagonal for a repeated letter, as in "ii->i")."""

    def forward(self, *arrays, subscripts):
        self.ins, self.out = parse_einsum(subscripts, [a.shape for a in arrays])
        self.arrays = arrays
        spec = ",".join(self.ins) + "->" + self.out
        return np.asarray(np.einsum(spec, *arrays, optimize=len(arrays) > 2))

    def backward(self, g):
        sizes: dict = {}
        for s, a in zip(self.ins, self.arrays):
            for c, n in zip(s, a.shape):
                if sizes.get(c, 1) == 1:  # a letter of size 1 in one operand may broadcast
                    sizes[c] = n
        grads = []
        for i, s in enumerate(self.ins):
            if not self.needs_input_grad[i]:
                grads.append(None)
                continue
            subs = [t for j, t in enumerate(self.ins) if j != i] + [self.out]
            ops = [x for j, x in enumerate(self.arrays) if j != i] + [g]
            seen = set("".join(subs))
            uniq = "".join(dict.fromkeys(s))
            part = np.einsum(",".join(subs) + "->" + "".join(c for c in uniq if c in seen), *ops)
            for k, c in enumerate(uniq):
                if c not in seen:  # only this operand has it: the gradient is the same along it
                    part = np.expand_dims(part, k)
            part = np.broadcast_to(part, [sizes[c] for c in uniq])
            if len(uniq) < len(s):
                full = np.zeros([sizes[c] for c in s], dtype=g.dtype)
                np.einsum(f"{s}->{uniq}", full)[...] = part  # a writable view of the diagonal
                part = full
            grads.append(part.astype(g.dtype, copy=False))
        return tuple(grads)
