"""The training loop and its callbacks."""

from gradstep.train.callbacks import (
    Callback,
    EarlyStopping,
    GradientNorm,
    History,
    ModelCheckpoint,
    ProgressBar,
)
from gradstep.train.loop import Trainer, accuracy, fit

__all__ = [
    "Callback",
    "EarlyStopping",
    "GradientNorm",
    "History",
    "ModelCheckpoint",
    "ProgressBar",
    "Trainer",
    "accuracy",
    "fit",
]
