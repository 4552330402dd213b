"""Learning-rate schedules, stepped once per epoch (or per batch, as you call them)."""

from __future__ import annotations

import abc
import math

from gradstep.autograd import replayable
from gradstep.optim.optimizer import Optimizer


class LRScheduler(abc.ABC):
    """Sets each group's lr to ``lr_at(base_lr, last_epoch)``; ``step()`` advances."""

    def __init__(self, optimizer: Optimizer):
        self.optimizer = optimizer
        self.base_lrs = [g.setdefault("initial_lr", g["lr"]) for g in optimizer.param_groups]
        self.last_epoch = 0
        self._apply()

    def get_last_lr(self) -> list[float]:
        return [g["lr"] for g in self.optimizer.param_groups]

    def _apply(self) -> None:
        for g, base in zip(self.optimizer.param_groups, self.base_lrs):
            g["lr"] = self.lr_at(base, self.last_epoch)

    @abc.abstractmethod
    def lr_at(self, base: float, epoch: int) -> float:
        """The learning rate at ``epoch`` for a group whose initial rate is ``base``."""

    @replayable
    def step(self) -> None:
        self.last_epoch += 1
        self._apply()

    def state_dict(self) -> dict:
        return {"last_epoch": self.last_epoch, "base_lrs": list(self.base_lrs)}

    def load_state_dict(self, state: dict) -> None:
        self.last_epoch = int(state["last_epoch"])
        self.base_lrs = list(state["base_lrs"])
        self._apply()


class StepLR(LRScheduler):
    """lr = base * gamma ** (epoch // step_size)."""

    def __init__(self, optimizer, step_size: int, gamma: float = 0.1):
        if step_size < 1:
            raise ValueError(f"StepLR: step_size must be >= 1, got {step_size}")
        self.step_size, self.gamma = step_size, gamma
        super().__init__(optimizer)

    def lr_at(self, base, epoch):
        return base * self.gamma ** (epoch // self.step_size)


class ExponentialLR(LRScheduler):
    """lr = base * gamma ** epoch."""

    def __init__(self, optimizer, gamma: float):
        self.gamma = gamma
        super().__init__(optimizer)

    def lr_at(self, base, epoch):
        return base * self.gamma**epoch


class CosineAnnealingLR(LRScheduler):
    """lr = eta_min + (base - eta_min) (1 + cos(pi epoch / T_max)) / 2 (PyTorch's closed form)."""

    def __init__(self, optimizer, T_max: int, eta_min: float = 0.0):
        if T_max < 1:
            raise ValueError(f"CosineAnnealingLR: T_max must be >= 1, got {T_max}")
        self.T_max, self.eta_min = T_max, eta_min
        super().__init__(optimizer)

    def lr_at(self, base, epoch):
        return (
            self.eta_min + (base - self.eta_min) * (1 + math.cos(math.pi * epoch / self.T_max)) / 2
        )


class LinearWarmup(LRScheduler):
    """lr rises linearly from ``start_factor * base`` to base over ``warmup_epochs``, then stays
    (PyTorch's LinearLR with end_factor=1)."""

    def __init__(self, optimizer, warmup_epochs: int, start_factor: float = 0.1):
        if warmup_epochs < 1 or not 0 < start_factor <= 1:
            raise ValueError("LinearWarmup: warmup_epochs >= 1 and 0 < start_factor <= 1")
        self.warmup_epochs, self.start_factor = warmup_epochs, start_factor
        super().__init__(optimizer)

    def lr_at(self, base, epoch):
        t = min(epoch, self.warmup_epochs) / self.warmup_epochs
        return base * (self.start_factor + (1 - self.start_factor) * t)
