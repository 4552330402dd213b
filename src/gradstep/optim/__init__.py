"""Optimizers (step 3 of the lecture: gradient descent and its refinements) and schedules."""

from gradstep.optim import lr_scheduler
from gradstep.optim.adaptive import Adagrad, Adam, AdamW, RMSprop
from gradstep.optim.clip import clip_grad_norm_, clip_grad_value_
from gradstep.optim.optimizer import Optimizer
from gradstep.optim.schedulers import (
    CosineAnnealingLR,
    ExponentialLR,
    LinearWarmup,
    LRScheduler,
    ReduceLROnPlateau,
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
    "ReduceLROnPlateau",
    "clip_grad_norm_",
    "clip_grad_value_",
    "lr_scheduler",
]
