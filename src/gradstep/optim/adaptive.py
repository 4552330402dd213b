"""Adam, AdamW, RMSprop and Adagrad, each following PyTorch's single-tensor code step by step,
so a model trained from the same weights on the same batches follows the same trajectory."""

from __future__ import annotations

import numpy as np

from gradstep.optim.optimizer import Optimizer, _check


def _check_betas(betas):
    for i, b in enumerate(betas):
        if not 0.0 <= b < 1.0:
            raise ValueError(f"invalid beta parameter at index {i}: {b} (must be in [0, 1))")


class Adam(Optimizer):
    """Adam: m <- lerp(m, g, 1 - beta1), v <- beta2 v + (1 - beta2) g^2,
    theta <- theta - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)."""

    decoupled = False

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        betas=(0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
    ):
        super().__init__(
            params,
            dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, amsgrad=amsgrad),
        )

    nonnegative = ("eps", "weight_decay")

    def _validate(self, group):
        super()._validate(group)
        _check_betas(group["betas"])

    def _update(self, p, g, state, group):
        """One step of Adam on ``p`` through one work array (scalars as 0-d arrays)."""
        if not state:
            state["step"] = 0
            state["exp_avg"] = np.zeros_like(p)
            state["exp_avg_sq"] = np.zeros_like(p)
            if group["amsgrad"]:
                state["max_exp_avg_sq"] = np.zeros_like(p)
        state["step"] += 1
        lr, weight_decay = group["lr"], group["weight_decay"]
        omb1, beta2, omb2, bc2, eps, step_size = self._consts(
            p, *self._scalars(group, state["step"])
        )
        if weight_decay:
            if self.decoupled:
                p *= 1 - lr * weight_decay
            else:
                g = g + weight_decay * p
        w = self._work_like(p)
        m, v = state["exp_avg"], state["exp_avg_sq"]
        m += np.multiply(np.subtract(g, m, out=w), omb1, out=w)
        v *= beta2
        v += np.multiply(np.multiply(g, omb2, out=w), g, out=w)
        if "max_exp_avg_sq" in state:
            mx = state["max_exp_avg_sq"]
            np.maximum(mx, v, out=mx)
            v = mx
        denom = np.sqrt(v, out=w)
        denom /= bc2
        denom += eps
        p -= np.multiply(np.divide(m, denom, out=w), step_size, out=w)

    @staticmethod
    def _scalars(group, t: int) -> tuple:
        """Step ``t``'s scalars: 1 - beta1, beta2, 1 - beta2, sqrt(1 - beta2^t), eps, and the
        step size lr / (1 - beta1^t)."""
        lr, (beta1, beta2) = group["lr"], group["betas"]
        bc2 = (1 - beta2**t) ** 0.5
        return 1 - beta1, beta2, 1 - beta2, bc2, group["eps"], lr / (1 - beta1**t)

    def native_update(self, group, flat):
        keys = ["exp_avg", "exp_avg_sq", "max_exp_avg_sq" if group["amsgrad"] else "exp_avg_sq"]

        def scalars(dry=False):
            if not dry:
                self._native_count_step(flat, dict.fromkeys(keys, 0))
            t = flat.state.get("step", 1)
            lr, wd = group["lr"], group["weight_decay"]
            decay = 1 - lr * wd if (self.decoupled and wd) else 1.0
            coupled = 0.0 if self.decoupled else wd
            return (*self._scalars(group, t), coupled, decay, float(group["amsgrad"]))

        return "adam", tuple(keys), scalars  # without amsgrad, v stands in for its max


class AdamW(Adam):
    """Adam with decoupled weight decay: theta <- theta (1 - lr * weight_decay) before Adam."""

    decoupled = True

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        betas=(0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
    ):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad)


class RMSprop(Optimizer):
    """v <- alpha v + (1 - alpha) g^2;  theta <- theta - lr g / (sqrt(v) + eps)."""

    def __init__(
        self,
        params,
        lr: float = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum: float = 0.0,
        centered: bool = False,
    ):
        super().__init__(
            params,
            dict(
                lr=lr,
                alpha=alpha,
                eps=eps,
                weight_decay=weight_decay,
                momentum=momentum,
                centered=centered,
            ),
        )

    nonnegative = ("eps", "momentum", "weight_decay")

    def _validate(self, group):
        super()._validate(group)
        _check("alpha", group["alpha"], 0.0, 1.0, open_high=False)

    def native_update(self, group, flat):
        momentum, centered = group["momentum"], group["centered"]
        keys = [
            "square_avg",
            "grad_avg" if centered else "square_avg",  # stand-ins where unused
            "momentum_buffer" if momentum > 0 else "square_avg",
        ]

        def scalars(dry=False):
            if not dry:
                self._native_count_step(flat, dict.fromkeys(keys, 0))
            alpha = group["alpha"]
            return (
                float(group["lr"]),
                float(alpha),
                1.0 - alpha,
                float(group["eps"]),
                float(group["weight_decay"]),
                float(momentum),
                float(centered),
            )

        return "rmsprop", tuple(keys), scalars

    def _update(self, p, g, state, group):
        lr, alpha, eps = group["lr"], group["alpha"], group["eps"]
        weight_decay, momentum, centered = (
            group["weight_decay"],
            group["momentum"],
            group["centered"],
        )
        if not state:
            state["step"] = 0
            state["square_avg"] = np.zeros_like(p)
            if momentum > 0:
                state["momentum_buffer"] = np.zeros_like(p)
            if centered:
                state["grad_avg"] = np.zeros_like(p)
        state["step"] += 1
        if weight_decay:
            g = g + weight_decay * p
        sq = state["square_avg"]
        sq *= alpha
        sq += (1 - alpha) * g * g
        if centered:
            ga = state["grad_avg"]
            ga += (g - ga) * (1 - alpha)
            avg = np.sqrt(sq - ga * ga)
        else:
            avg = np.sqrt(sq)
        avg += eps
        if momentum > 0:
            buf = state["momentum_buffer"]
            buf *= momentum
            buf += g / avg
            p -= lr * buf
        else:
            p -= lr * (g / avg)


class Adagrad(Optimizer):
    """s <- s + g^2;  theta <- theta - lr / (1 + (t - 1) lr_decay) * g / (sqrt(s) + eps)."""

    def __init__(
        self,
        params,
        lr: float = 1e-2,
        lr_decay: float = 0.0,
        weight_decay: float = 0.0,
        initial_accumulator_value: float = 0.0,
        eps: float = 1e-10,
    ):
        super().__init__(
            params,
            dict(
                lr=lr,
                lr_decay=lr_decay,
                weight_decay=weight_decay,
                initial_accumulator_value=initial_accumulator_value,
                eps=eps,
            ),
        )

    nonnegative = ("lr_decay", "weight_decay", "initial_accumulator_value", "eps")

    def native_update(self, group, flat):
        def scalars(dry=False):
            if not dry:
                self._native_count_step(flat, {"sum": group["initial_accumulator_value"]})
            t = flat.state.get("step", 1)
            clr = group["lr"] / (1 + (t - 1) * group["lr_decay"])
            return (float(clr), float(group["eps"]), float(group["weight_decay"]))

        return "adagrad", ("sum",), scalars

    def _update(self, p, g, state, group):
        lr, lr_decay, weight_decay = group["lr"], group["lr_decay"], group["weight_decay"]
        initial_accumulator_value, eps = group["initial_accumulator_value"], group["eps"]
        if not state:
            state["step"] = 0
            state["sum"] = np.full_like(p, initial_accumulator_value)
        state["step"] += 1
        if weight_decay:
            g = g + weight_decay * p
        clr = lr / (1 + (state["step"] - 1) * lr_decay)
        state["sum"] += g * g
        std = np.sqrt(state["sum"]) + eps
        p -= clr * (g / std)
