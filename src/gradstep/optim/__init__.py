"""Optimizers (step 3 of the lecture: gradient descent and its refinements) and schedules."""

from gradstep.optim.adaptive import Adagrad, Adam, AdamW, RMSprop
from gradstep.optim.clip import clip_grad_norm_
from gradstep.optim.optimizer import Optimizer
from gradstep.optim.schedulers import (
    CosineAnnealingLR,
    ExponentialLR,
    LinearWarmup,
    LRScheduler,
    StepLR,
)
from gradstep.optim.sgd import SGD

__all__ = [
    "SGD",
    "Adagrad",
    "Adam",
    "AdamW",
    "CosineAnnealingLR",
    "ExponentialLR",
    "LRScheduler",
    "LinearWarmup",
    "Optimizer",
    "RMSprop",
    "StepLR",
    "clip_grad_norm_",
]
