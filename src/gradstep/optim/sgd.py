"""SGD with momentum, dampening, Nesterov and weight decay: PyTorch's update rule exactly."""

from __future__ import annotations

import numpy as np

from gradstep.optim.optimizer import Optimizer, as_dtype


class SGD(Optimizer):
    """Stochastic gradient descent.

    theta <- theta - lr * g, where g is the gradient (plus weight_decay * theta), or with
    momentum the running buffer b <- momentum * b + (1 - dampening) * g (b starts as g).
    Plain *gradient descent* as the lecture writes it is SGD on the full batch: one update per
    epoch with every example in the batch.
    """

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        nesterov: bool = False,
        weight_decay: float = 0.0,
    ):
        super().__init__(
            params,
            dict(
                lr=lr,
                momentum=momentum,
                dampening=dampening,
                nesterov=nesterov,
                weight_decay=weight_decay,
            ),
        )

    nonnegative = ("momentum", "weight_decay", "dampening")

    def _validate(self, group):
        super()._validate(group)
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")

    def _step_group(self, group):
        if group["momentum"] or group["weight_decay"]:
            return super()._step_group(group)
        ctx = self._context(group)  # gradient descent: no state, nothing to keep
        for param in group["params"]:
            g = param._grad
            if g is not None:
                self._step_one(param.data, g, None, ctx)

    def _context(self, group):
        return group

    def _step_one(self, p, g, state, group):
        lr, momentum, dampening = group["lr"], group["momentum"], group["dampening"]
        key = (p.dtype, type(p), lr, momentum, dampening)
        c = self._consts.get(key)  # the scalars as 0-d arrays, kept while they stay the same
        if c is None:
            if len(self._consts) > 64:  # a scheduler changes lr every step
                self._consts.clear()
            c = self._consts[key] = as_dtype(p, lr, momentum, 1 - dampening)
        if not (momentum or group["weight_decay"]):
            p -= g * c[0]
            return
        self._update(p, g, state, *c, group["nesterov"], group["weight_decay"])

    def native_update(self, group, flat):
        if not (group["momentum"] or group["weight_decay"]):
            return "sgd", (), lambda dry=False: (float(group["lr"]),)
        keys = ("momentum_buffer",) if group["momentum"] else ()

        def scalars(dry=False):
            first = group["momentum"] and "momentum_buffer" not in flat.state
            if first and not dry:
                self._native_states(flat)
                flat.state["momentum_buffer"] = np.empty_like(flat.data)  # filled with g
                flat.publish([self.state.setdefault(id(p), {}) for p in flat.params])
            return (
                float(group["lr"]),
                float(group["momentum"]),
                1.0 - group["dampening"],
                float(group["weight_decay"]),
                float(group["nesterov"]),
                float(first),
            )

        return ("sgd_momentum" if keys else "sgd_decay"), keys, scalars

    def _update(self, p, g, state, lr, momentum, undamped, nesterov, weight_decay):
        """p -= lr * g (or the momentum buffer); ``lr``, ``momentum`` and ``undamped``
        (1 - dampening) are 0-d arrays of p's dtype."""
        work = self._work_like(p)
        if weight_decay:
            g = g + weight_decay * p
        if momentum:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = g.copy()
            else:
                buf *= momentum
                buf += np.multiply(g, undamped, out=work)
            g = np.add(g, np.multiply(buf, momentum, out=work), out=work) if nesterov else buf
        p -= np.multiply(g, lr, out=work)
