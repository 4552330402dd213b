"""The training loop and its callbacks."""

from gradstep.train.callbacks import (
    Callback,
    EarlyStopping,
    History,
    ModelCheckpoint,
    ProgressBar,
)
from gradstep.train.loop import Trainer, accuracy, fit

__all__ = [
    "Callback",
    "EarlyStopping",
    "History",
    "ModelCheckpoint",
    "ProgressBar",
    "Trainer",
    "accuracy",
    "fit",
]
