"""The floor: a hand-written NumPy training step (manual forward/backward, in-place updates).

No autograd, no graph, no Python objects per op: what any NumPy engine's step can at best cost.
Checked against PyTorch in float64 by tests/test_benchmarks.py.
"""

from __future__ import annotations

import numpy as np


def _sigmoid(z):
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1 / (1 + e), e / (1 + e))


class HandMLP:
    def __init__(self, sizes, act, loss, opt, lr, rng, dtype=np.float32, momentum=0.9):
        self.W, self.b = [], []
        for i, o in zip(sizes[:-1], sizes[1:]):
            bound = 1 / np.sqrt(i)
            self.W.append(rng.uniform(-bound, bound, (o, i)).astype(dtype))
            self.b.append(rng.uniform(-bound, bound, o).astype(dtype))
        self.act, self.loss, self.opt, self.lr, self.momentum = act, loss, opt, lr, momentum
        self.params = self.W + self.b
        self.state = [[np.zeros_like(p), np.zeros_like(p)] for p in self.params]
        self.t = 0

    def load(self, weights, biases):
        for dst, src in zip(self.W + self.b, list(weights) + list(biases)):
            dst[...] = src

    def step(self, x, y) -> float:
        acts, n_layers = [x], len(self.W)
        for k in range(n_layers):
            z = acts[-1] @ self.W[k].T
            z += self.b[k]
            if k < n_layers - 1:
                z = _sigmoid(z) if self.act == "sigmoid" else np.maximum(z, 0, out=z)
            acts.append(z)
        out = acts[-1]
        if self.loss == "mse":
            d = out - y
            loss = float(np.mean(d * d))
            d *= 2 / d.size
        else:  # cross-entropy with integer labels
            m = out.max(axis=1, keepdims=True)
            s = out - m
            lse = np.log(np.exp(s).sum(axis=1, keepdims=True))
            logp = s - lse
            n = len(y)
            loss = float(-logp[np.arange(n), y].mean())
            d = np.exp(logp)
            d[np.arange(n), y] -= 1
            d /= n
        grads_W, grads_b = [None] * n_layers, [None] * n_layers
        for k in range(n_layers - 1, -1, -1):
            grads_W[k] = d.T @ acts[k]
            grads_b[k] = d.sum(axis=0)
            if k:
                d = d @ self.W[k]
                a = acts[k]
                if self.act == "sigmoid":
                    d *= a * (1 - a)
                else:
                    d *= a > 0
        self._update(grads_W + grads_b)
        return loss

    def _update(self, grads):
        lr = self.lr
        if self.opt == "sgd":
            for p, g in zip(self.params, grads):
                p -= lr * g
        elif self.opt == "momentum":
            for p, g, (buf, _) in zip(self.params, grads, self.state):
                if self.t == 0:
                    buf[...] = g
                else:
                    buf *= self.momentum
                    buf += g
                p -= lr * buf
        else:  # adam, PyTorch's defaults
            b1, b2, eps = 0.9, 0.999, 1e-8
            t = self.t + 1
            c1, c2 = 1 - b1**t, (1 - b2**t) ** 0.5
            for p, g, (m, v) in zip(self.params, grads, self.state):
                m += (g - m) * (1 - b1)
                v *= b2
                v += (1 - b2) * g * g
                p -= (lr / c1) * (m / (np.sqrt(v) / c2 + eps))
        self.t += 1
