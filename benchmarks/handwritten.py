"""The floor: a hand-written NumPy training step, as tight as NumPy allows.

Manual forward and backward; parameters, gradients and optimizer state in flat preallocated
buffers (so each optimizer update is a few whole-buffer calls, not a loop over parameters);
activations and gradients in buffers allocated once per batch size; ``out=`` everywhere. No
autograd, no graph, no Python object per op: what any NumPy engine's step can at best cost.
Checked equal to PyTorch in float64 by tests/test_benchmarks.py.
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


def _sigmoid(z, e, mask):
    """e <- sigmoid(z), the way gradstep computes it (split by sign, so no overflow
    and full relative precision in both tails: the same function, not a cheaper one)."""
    np.greater_equal(z, 0, out=mask)
    np.abs(z, out=e)
    np.negative(e, out=e)
    np.exp(e, out=e)  # e = exp(-|z|)
    np.add(e, 1, out=z)  # d = 1 + e
    np.divide(e, z, out=e)  # e / d where z < 0
    np.divide(1, z, out=e, where=mask)  # 1 / d where z >= 0: e holds sigmoid(z), z is free


class HandMLP:
    def __init__(self, sizes, act, loss, opt, lr, rng, dtype=np.float32, momentum=0.9):
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
        self.m = np.zeros(n, dtype)  # momentum buffer / Adam's first moment
        self.v = np.zeros(n, dtype)  # Adam's second moment
        self.tmp = np.empty(n, dtype)
        self.t = 0
        self.sizes, self.dtype = sizes, dtype
        self._batch: dict = {}

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
                "rows": np.arange(n),
            }
            self._batch[n] = buf
        return buf

    def step(self, x, y) -> float:
        n = len(x)
        buf = self._buffers(n)
        z, d, s = buf["z"], buf["d"], buf["s"]
        last = len(self.W) - 1
        acts = [x]  # the input of each layer
        for k, (w, b) in enumerate(zip(self.W, self.b)):
            np.matmul(acts[k], w.T, out=z[k])
            z[k] += b
            if k < last:
                if self.act == "sigmoid":
                    _sigmoid(z[k], s[k], buf["mask"][k])
                    acts.append(s[k])
                else:
                    np.maximum(z[k], 0, out=z[k])
                    acts.append(z[k])
        out, dl = z[last], d[last]
        if self.loss == "mse":
            np.subtract(out, y, out=dl)
            loss = float(np.vdot(dl, dl)) / dl.size
            dl *= 2 / dl.size
        else:  # cross-entropy with integer labels
            col, rows = buf["col"], buf["rows"]
            np.max(out, axis=1, keepdims=True, out=col)
            np.subtract(out, col, out=dl)
            picked = dl[rows, y]
            np.exp(dl, out=dl)
            np.sum(dl, axis=1, keepdims=True, out=col)
            loss = float(np.log(col).sum() - picked.sum()) / n
            dl /= col
            dl[rows, y] -= 1
            dl /= n
        for k in range(last, -1, -1):
            np.matmul(d[k].T, acts[k], out=self.gW[k])
            np.sum(d[k], axis=0, out=self.gb[k])
            if k:
                np.matmul(d[k], self.W[k], out=d[k - 1])
                ak = acts[k]
                if self.act == "sigmoid":  # a (1 - a), in z's buffer (free after the forward)
                    sk = z[k - 1]
                    np.subtract(1, ak, out=sk)
                    sk *= ak
                else:
                    sk = s[k - 1]
                    np.greater(ak, 0, out=sk)
                d[k - 1] *= sk
        self._update()
        return loss

    def _update(self):
        p, g, tmp, lr = self.flat, self.grad, self.tmp, self.lr
        if self.opt == "sgd":
            np.multiply(g, lr, out=tmp)
            p -= tmp
        elif self.opt == "momentum":
            if self.t == 0:
                self.m[...] = g
            else:
                self.m *= self.momentum
                self.m += g
            np.multiply(self.m, lr, out=tmp)
            p -= tmp
        else:  # adam, PyTorch's defaults
            b1, b2, eps = 0.9, 0.999, 1e-8
            t = self.t + 1
            c1, c2 = 1 - b1**t, (1 - b2**t) ** 0.5
            m, v = self.m, self.v
            np.subtract(g, m, out=tmp)
            tmp *= 1 - b1
            m += tmp
            v *= b2
            np.multiply(g, g, out=tmp)
            tmp *= 1 - b2
            v += tmp
            np.sqrt(v, out=tmp)
            tmp /= c2
            tmp += eps
            np.divide(m, tmp, out=tmp)
            tmp *= lr / c1
            p -= tmp
        self.t += 1
