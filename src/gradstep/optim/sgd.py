"""SGD with momentum, dampening, Nesterov and weight decay: PyTorch's update rule exactly."""

from __future__ import annotations

import numpy as np

from gradstep.optim.optimizer import Optimizer


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

    def native_update(self, group, flat):
        if not (group["momentum"] or group["weight_decay"]):
            return "sgd", (), lambda dry=False: (float(group["lr"]),)
        keys = ("momentum_buffer",) if group["momentum"] else ()

        def scalars(dry=False):
            # a loaded state is synced first (weight decay alone keeps none, as eager)
            states = self._native_states(flat) if keys and not dry else None
            first = group["momentum"] and "momentum_buffer" not in flat.state
            if first and not dry:
                flat.state["momentum_buffer"] = np.empty_like(flat.data)  # filled with g
                flat.publish(states)
            return (
                float(group["lr"]),
                float(group["momentum"]),
                1.0 - group["dampening"],
                float(group["weight_decay"]),
                float(group["nesterov"]),
                float(first),
            )

        return ("sgd_momentum" if keys else "sgd_decay"), keys, scalars

    def _update(self, p, g, state, group):
        """p -= lr * g (or the momentum buffer), PyTorch's order of operations, with lr,
        momentum and 1 - dampening as 0-d arrays of p's dtype."""
        lr, momentum, undamped = self._consts(
            p, group["lr"], group["momentum"], 1 - group["dampening"]
        )
        weight_decay = group["weight_decay"]
        if not (group["momentum"] or weight_decay):  # gradient descent: no state, no work
            p -= g * lr
            return
        work = self._work_like(p)
        if weight_decay:
            g = g + weight_decay * p
        if group["momentum"]:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = g.copy()
            else:
                buf *= momentum
                buf += np.multiply(g, undamped, out=work)
            g = (
                np.add(g, np.multiply(buf, momentum, out=work), out=work)
                if group["nesterov"]
                else buf
            )
        p -= np.multiply(g, lr, out=work)
