"""SGD with momentum, dampening, Nesterov and weight decay: PyTorch's update rule exactly."""

from __future__ import annotations

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

    def _step_group(self, group):
        if group["momentum"] or group["weight_decay"]:
            return super()._step_group(group)
        lr = group["lr"]  # plain gradient descent: one in-place update per parameter
        for p in group["params"]:
            if p._grad is not None:
                p.data -= lr * p._grad

    def _update(self, p, g, state, lr, momentum, dampening, nesterov, weight_decay):
        if weight_decay:
            g = g + weight_decay * p
        if momentum:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = g.copy()
            else:
                buf *= momentum
                buf += (1 - dampening) * g
            g = g + momentum * buf if nesterov else buf
        p -= lr * g
