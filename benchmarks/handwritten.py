"""The floor: a hand-written NumPy training step, as tight as NumPy allows.

Manual forward and backward; parameters, gradients and optimizer state in flat preallocated
buffers (so each optimizer update is a few whole-buffer calls, not a loop over parameters);
activations and gradients in buffers allocated once per batch size; ``out=`` everywhere;
scalars as 0-d arrays made once (NumPy converts a Python number on every call). No autograd,
no graph, no Python object per op: what any NumPy engine's step can at best cost.

It computes the same function as gradstep, operation for operation (the sign-split sigmoid,
the pairwise sum of the loss, Adam in PyTorch's order), so in float32 it gives gradstep's
bits exactly and the ratio between the two is overhead only. tests/test_benchmarks.py checks
that, and that it equals PyTorch in float64.
"""

from __future__ import annotations

import numpy as np


def _views(flat, shapes) -> list:
    """Consecutive views of ``flat`` with the given shapes."""
    out, offset = [], 0
    for shape in shapes:
        n = int(np.prod(shape))
        out.append(flat[offset : offset + n].reshape(shape))
        offset += n
    return out


def _sigmoid(z, e, mask, zero, one):
    """e <- sigmoid(z), the way gradstep computes it (split by sign, so no overflow
    and full relative precision in both tails: the same function, not a cheaper one)."""
    np.greater_equal(z, zero, out=mask)
    np.abs(z, out=e)
    np.negative(e, out=e)
    np.exp(e, out=e)  # e = exp(-|z|)
    np.add(e, one, out=z)  # d = 1 + e
    np.divide(e, z, out=e)  # e / d where z < 0
    np.divide(one, z, out=e, where=mask)  # 1 / d where z >= 0: e holds sigmoid(z), z is free


def _plain_sigmoid(z, e, mask, zero, one):
    """e <- 1 / (1 + exp(-z)) in four calls: the cheapest sigmoid NumPy has, and not
    gradstep's function (it overflows to inf inside for z < -88 in float32 and flushes the
    negative tail to 0). Only for measuring how fast any sigmoid could make the floor."""
    np.negative(z, out=e)
    np.exp(e, out=e)
    e += one
    np.divide(one, e, out=e)


class HandMLP:
    def __init__(self, sizes, act, loss, opt, lr, rng, dtype=np.float32, momentum=0.9, plain=False):
        shapes = [(o, i) for i, o in zip(sizes[:-1], sizes[1:])] + [(o,) for o in sizes[1:]]
        n = sum(int(np.prod(s)) for s in shapes)
        self.flat = np.empty(n, dtype)
        self.grad = np.empty(n, dtype)
        views, grads = _views(self.flat, shapes), _views(self.grad, shapes)
        k = len(sizes) - 1
        self.W, self.b, self.gW, self.gb = views[:k], views[k:], grads[:k], grads[k:]
        for i, (w, b) in enumerate(zip(self.W, self.b)):  # PyTorch's Linear initialisation
            bound = 1 / np.sqrt(sizes[i])
            w[...] = rng.uniform(-bound, bound, w.shape)
            b[...] = rng.uniform(-bound, bound, b.shape)
        self.act, self.loss, self.opt, self.lr, self.momentum = act, loss, opt, lr, momentum
        self.sigmoid = _plain_sigmoid if plain else _sigmoid
        self.m = np.zeros(n, dtype)  # momentum buffer / Adam's first moment
        self.v = np.zeros(n, dtype)  # Adam's second moment
        self.tmp = np.empty(n, dtype)
        self.t = 0
        self.sizes, self.dtype = sizes, dtype
        self._batch: dict = {}
        c = dict(zero=0, one=1, two=2, lr=lr, momentum=momentum, eps=1e-8)
        c.update(b1c=1 - 0.9, b2=0.999, b2c=1 - 0.999)  # computed as gradstep's Adam does
        self.c = {k: np.asarray(v, dtype) for k, v in c.items()}  # scalars as 0-d arrays

    def load(self, weights, biases):
        for dst, src in zip(self.W + self.b, list(weights) + list(biases)):
            dst[...] = src

    def _buffers(self, n: int) -> dict:
        """Activations, deltas and scratch for batch size ``n``, allocated once."""
        buf = self._batch.get(n)
        if buf is None:
            sizes, dt = self.sizes, self.dtype
            buf = {
                "z": [np.empty((n, o), dt) for o in sizes[1:]],
                "d": [np.empty((n, o), dt) for o in sizes[1:]],
                "s": [np.empty((n, o), dt) for o in sizes[1:]],  # sigmoid output / relu mask
                "mask": [np.empty((n, o), bool) for o in sizes[1:]],
                "col": np.empty((n, 1), dt),
                "finite": np.empty((n, 1), bool),
                "rows": np.arange(n),
                "n": np.asarray(n, dt),  # what cross-entropy's mean divides by
                "size": np.asarray(n * sizes[-1], dt),  # and MSE's
            }
            self._batch[n] = buf
        return buf

    def step(self, x, y) -> float:
        n = len(x)
        buf = self._buffers(n)
        z, d, s, c = buf["z"], buf["d"], buf["s"], self.c
        zero, one = c["zero"], c["one"]
        last = len(self.W) - 1
        acts = [x]  # the input of each layer
        for k, (w, b) in enumerate(zip(self.W, self.b)):
            np.matmul(acts[k], w.T, out=z[k])
            z[k] += b
            if k < last:
                if self.act == "sigmoid":
                    self.sigmoid(z[k], s[k], buf["mask"][k], zero, one)
                    acts.append(s[k])
                else:
                    np.maximum(z[k], zero, out=z[k])
                    acts.append(z[k])
        out, dl, tmp = z[last], d[last], s[last]
        inv_n = np.divide(one, buf["n"] if self.loss == "ce" else buf["size"])
        if self.loss == "mse":  # as gradstep: pairwise sum of squares; 2 d, then times 1/n
            np.subtract(out, y, out=dl)
            loss = float(np.multiply(dl, dl, out=tmp).sum() / dl.size)
            np.multiply(c["two"], dl, out=dl)
            dl *= inv_n
        else:  # cross-entropy with integer labels, as gradstep's stable log-softmax
            col, rows, finite = buf["col"], buf["rows"], buf["finite"]
            np.max(out, axis=1, keepdims=True, out=col)
            np.isfinite(col, out=finite)
            np.logical_not(finite, out=finite)
            np.copyto(col, zero, where=finite)  # a row of -inf or nan shifts by 0
            np.subtract(out, col, out=dl)
            np.exp(dl, out=tmp)
            np.sum(tmp, axis=1, keepdims=True, out=col)
            np.log(col, out=col)
            dl -= col  # log-probabilities
            picked = dl[rows, y]
            loss = float(np.negative(picked, out=picked).sum() / n)
            np.exp(dl, out=dl)
            dl[rows, y] -= one
            dl *= inv_n
        for k in range(last, -1, -1):
            np.matmul(d[k].T, acts[k], out=self.gW[k])
            np.sum(d[k], axis=0, out=self.gb[k])
            if k:
                dk = np.matmul(d[k], self.W[k], out=d[k - 1])
                ak = acts[k]
                if self.act == "sigmoid":  # g a, then times (1 - a), in z's free buffer
                    dk *= ak
                    dk *= np.subtract(one, ak, out=z[k - 1])
                else:
                    dk *= np.greater(ak, zero, out=s[k - 1])
        self._update()
        return loss

    def _update(self):
        p, g, tmp, c = self.flat, self.grad, self.tmp, self.c
        if self.opt == "sgd":
            p -= np.multiply(g, c["lr"], out=tmp)
        elif self.opt == "momentum":
            if self.t == 0:
                self.m[...] = g
            else:
                self.m *= c["momentum"]
                self.m += g
            p -= np.multiply(self.m, c["lr"], out=tmp)
        else:  # adam, PyTorch's defaults and order of operations
            t = self.t + 1
            bc2 = np.asarray((1 - 0.999**t) ** 0.5, self.dtype)
            step_size = np.asarray(self.lr / (1 - 0.9**t), self.dtype)
            m, v = self.m, self.v
            m += np.multiply(np.subtract(g, m, out=tmp), c["b1c"], out=tmp)
            v *= c["b2"]
            v += np.multiply(np.multiply(g, c["b2c"], out=tmp), g, out=tmp)
            np.sqrt(v, out=tmp)
            tmp /= bc2
            tmp += c["eps"]
            p -= np.multiply(np.divide(m, tmp, out=tmp), step_size, out=tmp)
        self.t += 1
