"""The benchmark's training step in JAX, under ``jax.jit``: the same model, loss and optimizer
as the hand-written NumPy step (PyTorch's Adam and SGD-with-momentum formulas), the parameters
and optimizer state carried from call to call, every call waited for.

JAX is an optional benchmark dependency (``pip install jax``); bench.py adds its column only
when it imports. tests/test_benchmarks.py checks this step against PyTorch's in float64.
"""

from __future__ import annotations

import numpy as np


def jax_step(case: dict, W: list, b: list, x, y, dtype=np.float32):
    """A callable doing one jitted training step; ``step.params()`` gives the current
    ``(W, b)`` as NumPy arrays."""
    import jax

    if dtype == np.float64:
        jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    act, loss_kind, opt, lr = case["act"], case["loss"], case["opt"], case["lr"]
    params = [jnp.asarray(w, dtype) for w in W] + [jnp.asarray(c, dtype) for c in b]
    k = len(W)

    def forward(p, xb):
        h = xb
        for i in range(k):
            h = h @ p[i].T + p[k + i]
            if i < k - 1:
                h = jax.nn.sigmoid(h) if act == "sigmoid" else jax.nn.relu(h)
        return h

    def loss_fn(p, xb, yb):
        out = forward(p, xb)
        if loss_kind == "mse":
            return jnp.mean((out - yb) ** 2)
        logp = jax.nn.log_softmax(out, axis=1)
        return -jnp.mean(jnp.take_along_axis(logp, yb[:, None], axis=1))

    def update(p, state, g):
        if opt == "sgd":
            return [pi - lr * gi for pi, gi in zip(p, g)], state
        if opt == "momentum":  # PyTorch: buf = 0.9 buf + g (buf = g on the first step)
            t, bufs = state
            bufs = [jnp.where(t == 0, gi, 0.9 * bi + gi) for bi, gi in zip(bufs, g)]
            return [pi - lr * bi for pi, bi in zip(p, bufs)], (t + 1, bufs)
        t, m, v = state  # Adam as PyTorch computes it
        t = t + 1
        b1, b2, eps = 0.9, 0.999, 1e-8
        m = [b1 * mi + (1 - b1) * gi for mi, gi in zip(m, g)]
        v = [b2 * vi + (1 - b2) * gi * gi for vi, gi in zip(v, g)]
        c1, c2 = 1 - b1**t, 1 - b2**t
        new = [
            pi - (lr / c1) * mi / (jnp.sqrt(vi) / jnp.sqrt(c2) + eps) for pi, mi, vi in zip(p, m, v)
        ]
        return new, (t, m, v)

    zeros = [jnp.zeros_like(pi) for pi in params]
    state = {
        "sgd": (),
        "momentum": (jnp.asarray(0), zeros),
        "adam": (jnp.asarray(0, dtype), zeros, [jnp.zeros_like(pi) for pi in params]),
    }[opt]

    @jax.jit
    def step(p, s, xb, yb):
        loss, g = jax.value_and_grad(loss_fn)(p, xb, yb)
        p, s = update(p, s, g)
        return p, s, loss

    xj = jnp.asarray(x, dtype)
    yj = jnp.asarray(y, dtype) if loss_kind == "mse" else jnp.asarray(y)
    carry = {"p": params, "s": state}

    def run():
        carry["p"], carry["s"], loss = step(carry["p"], carry["s"], xj, yj)
        loss.block_until_ready()
        return loss

    def current():
        p = [np.asarray(a) for a in carry["p"]]
        return p[:k], p[k:]

    run.params = current
    return run
