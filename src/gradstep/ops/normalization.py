"""Batch normalisation in training mode: one op, because it also updates running statistics."""

from __future__ import annotations

import numpy as np

from gradstep.autograd import Function


class BatchNorm(Function):
    """y = (x - mean) / sqrt(var + eps) * weight + bias, with the mean and the (biased)
    variance of this batch over ``axes`` (all but the channel axis 1).

    With x^ the normalised input, inv = 1 / sqrt(var + eps) and n the count per channel:
    dx = inv / n * (n dx^ - sum dx^ - x^ sum(dx^ x^)), dx^ = g * weight, dweight = sum(g x^),
    dbias = sum(g).

    ``stats`` (None, or the module, whose running_mean, running_var and num_batches_tracked)
    are updated in place in ``forward``: the update is part of the op, so a compiled step, which
    re-runs every op's forward on replay, updates them on every step as eager execution does.
    """

    def forward(self, x, weight, bias, axes=(0,), eps=1e-5, stats=None, momentum=0.1):
        n = int(np.prod([x.shape[a] for a in axes]))
        if n <= 1:
            raise ValueError(
                f"BatchNorm: training needs more than 1 value per channel, got input of shape "
                f"{x.shape} (use eval() for single samples)"
            )
        shape = [1] * x.ndim
        shape[1] = x.shape[1]
        mean = x.mean(axis=axes, keepdims=True)
        centred = x - mean
        var = (centred * centred).mean(axis=axes, keepdims=True)
        self.inv = 1 / np.sqrt(var + np.asarray(eps, dtype=x.dtype))
        self.xhat = centred * self.inv
        self.axes, self.n, self.shape = axes, n, shape
        self.weight = None if weight is None else weight.reshape(shape)
        if stats is not None:  # read at each call: a buffer the user reassigned is followed
            running_mean, running_var = stats.running_mean.data, stats.running_var.data
            count = stats.num_batches_tracked.data
            count[...] += 1
            m = 1.0 / float(count) if momentum is None else momentum
            running_mean *= 1 - m
            running_mean += m * mean.reshape(-1)
            running_var *= 1 - m
            running_var += (m * n / (n - 1)) * var.reshape(-1)  # the unbiased variance, as PyTorch
        y = self.xhat if weight is None else self.xhat * self.weight
        return y if bias is None else y + bias.reshape(shape)

    def backward(self, g):
        axes, xhat = self.axes, self.xhat
        need_x, need_w, need_b = self.needs_input_grad
        gx = gw = gb = None
        if need_w:
            gw = (g * xhat).sum(axis=axes)
        if need_b:
            gb = g.sum(axis=axes)
        if need_x:
            dxhat = g if self.weight is None else g * self.weight
            s1 = dxhat.sum(axis=axes, keepdims=True)
            s2 = (dxhat * xhat).sum(axis=axes, keepdims=True)
            gx = (self.inv / self.n) * (self.n * dxhat - s1 - xhat * s2)
        return gx, gw, gb
