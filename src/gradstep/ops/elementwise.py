"""Elementwise arithmetic. Broadcasting is NumPy's; the engine un-broadcasts the gradients."""

from __future__ import annotations

import numpy as np

from gradstep.autograd import Function


# Ops whose results can be infinite or NaN by definition (log 0, x / 0, e^1000, sqrt's slope at
# 0) compute under this: PyTorch returns those values silently, and a warning from inside the
# engine would only confuse. Not on the hot path of the course's models (their losses and
# activations are fused ops), so the ~2 us it costs per call stays off the step.
def _quiet():
    return np.errstate(divide="ignore", invalid="ignore", over="ignore")


def select(g, mask, out=None):
    """``g`` where ``mask``, else 0 -- a selection, not a product: ``inf * 0`` is NaN, and an
    infinite upstream gradient must give 0 where the mask is off (as PyTorch's ``relu``,
    ``clamp`` give). The float's bits times the 0/1 mask, as unsigned integers of the same
    width: one pass, as fast as the multiply it replaces (``np.where`` is 4-15x slower).
    """
    bits = _UINT[g.dtype.itemsize]
    got = np.multiply(g.view(bits), mask, out=None if out is None else out.view(bits))
    return got.view(g.dtype)


_UINT = {2: np.uint16, 4: np.uint32, 8: np.uint64}  # same width as float16/32/64


class Add(Function):
    """y = a + b;  dy/da = dy/db = 1."""

    def forward(self, a, b):
        return a + b

    def backward(self, g):
        return g, g


class Sub(Function):
    """y = a - b;  dy/da = 1, dy/db = -1."""

    def forward(self, a, b):
        return a - b

    def backward(self, g):
        return g, (-g if self.needs_input_grad[1] else None)


class Mul(Function):
    """y = a * b;  dy/da = b, dy/db = a."""

    def forward(self, a, b):
        self.a, self.b = a, b
        return a * b

    def backward(self, g):
        na, nb = self.needs_input_grad
        return (g * self.b if na else None), (g * self.a if nb else None)


class Div(Function):
    """y = a / b;  dy/da = 1/b, dy/db = -a/b^2 = -y/b (the output is kept for that)."""

    def forward(self, a, b):
        self.b = b
        with _quiet():  # x / 0 is inf, 0 / 0 NaN: results, as in PyTorch, not warnings
            self.y = a / b
        return self.y

    def backward(self, g):
        na, nb = self.needs_input_grad
        with _quiet():
            ga = g / self.b if na else None
            gb = -g * self.y / self.b if nb else None
        return ga, gb


class Pow(Function):
    """y = a ** p;  dy/da = p a^(p-1), dy/dp = y log(a) (only when p is a tensor)."""

    def forward(self, a, p):
        self.a, self.p = a, p
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # 0 ** -1 is inf
            self.y = a**p
        return self.y

    def backward(self, g):
        na, np_ = self.needs_input_grad
        a, p = self.a, self.p
        ga = gp = None
        # As PyTorch: d/da is 0 wherever p == 0 (a^0 is constant, even at a == 0 where
        # p a^(p-1) would be 0 * inf); d/dp is 0 where a == 0 and p >= 0, and a^p log a
        # elsewhere (-inf at a == 0 for p < 0). Infinities are results here, not warnings.
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            if na:
                ga = g * p * a ** (p - 1)
                if np.ndim(p) == 0:
                    if p == 0:
                        ga = np.zeros_like(ga)
                else:
                    ga = np.where(p == 0, np.zeros((), ga.dtype), ga)
            if np_:
                log_a = np.log(np.where(a > 0, a, 1)) + np.where(a == 0, -np.inf, 0)
                log_a = np.where(a < 0, np.nan, log_a)
                gp = g * self.y * log_a
                gp = np.where((a == 0) & (p >= 0), np.zeros((), gp.dtype), gp)
        return ga, gp


class Neg(Function):
    """y = -a;  dy/da = -1."""

    def forward(self, a):
        return -a

    def backward(self, g):
        return -g


class Abs(Function):
    """y = |a|;  dy/da = sign(a) (0 at 0, as PyTorch)."""

    def forward(self, a):
        self.a = a
        return np.abs(a)

    def backward(self, g):
        return g * np.sign(self.a)


class Exp(Function):
    """y = e^a;  dy/da = y, so the output is kept instead of the input."""

    def forward(self, a):
        with _quiet():  # e^1000 is inf
            self.y = np.exp(a)
        return self.y

    def backward(self, g):
        with _quiet():
            return g * self.y


class Sin(Function):
    """y = sin a;  dy/da = cos a."""

    def forward(self, a):
        self.a = a
        return np.sin(a)

    def backward(self, g):
        return g * np.cos(self.a)


class Cos(Function):
    """y = cos a;  dy/da = -sin a."""

    def forward(self, a):
        self.a = a
        return np.cos(a)

    def backward(self, g):
        return -g * np.sin(self.a)


class Log1p(Function):
    """y = ln(1 + a), exact for tiny a (where 1 + a rounds);  dy/da = 1 / (1 + a)."""

    def forward(self, a):
        self.a = a
        with np.errstate(divide="ignore", invalid="ignore"):  # -inf at -1, as PyTorch
            return np.log1p(a)

    def backward(self, g):
        with np.errstate(divide="ignore"):
            return g / (1 + self.a)


class Expm1(Function):
    """y = e^a - 1, exact for tiny a;  dy/da = y + 1 (the output is kept)."""

    def forward(self, a):
        with np.errstate(over="ignore"):
            self.y = np.expm1(a)
        return self.y

    def backward(self, g):
        return g * (self.y + 1)


class Log(Function):
    """y = ln a;  dy/da = 1/a."""

    def forward(self, a):
        self.a = a
        with _quiet():  # log 0 is -inf, log of a negative NaN
            return np.log(a)

    def backward(self, g):
        with _quiet():
            return g / self.a


class Sqrt(Function):
    """y = sqrt(a);  dy/da = 1/(2y), from the kept output."""

    def forward(self, a):
        with _quiet():
            self.y = np.sqrt(a)
        return self.y

    def backward(self, g):
        with _quiet():  # the slope at 0 is inf
            return g / (2 * self.y)


class Clip(Function):
    """y = min(max(a, lo), hi);  dy/da = 1 where lo <= a <= hi, else 0 (PyTorch's clamp)."""

    def forward(self, a, lo, hi):
        self.a, self.lo, self.hi = a, lo, hi
        return np.clip(a, lo, hi)

    def backward(self, g):
        a, lo, hi = self.a, self.lo, self.hi
        keep = np.ones(a.shape, dtype=bool)
        if lo is not None:
            keep &= a >= lo
        if hi is not None:
            keep &= a <= hi
        return select(*np.broadcast_arrays(g, keep))


class Where(Function):
    """y = a where cond else b;  the gradient goes to the side that was chosen."""

    def forward(self, cond, a, b):
        self.cond = cond
        return np.where(cond, a, b)

    def backward(self, g):
        _, na, nb = self.needs_input_grad
        zero = np.zeros((), dtype=g.dtype)
        ga = np.where(self.cond, g, zero) if na else None
        gb = np.where(self.cond, zero, g) if nb else None
        return None, ga, gb


class Cast(Function):
    """y = a as another floating dtype;  the gradient is cast back."""

    def forward(self, a, dtype):
        self.dtype = a.dtype
        return a.astype(dtype)

    def backward(self, g):
        return g.astype(self.dtype)
