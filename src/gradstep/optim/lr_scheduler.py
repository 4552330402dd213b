"""``gs.optim.lr_scheduler``: the schedules under PyTorch's module path
(``from torch.optim.lr_scheduler import StepLR`` moves over unchanged)."""

from gradstep.optim.schedulers import (  # noqa: F401
    CosineAnnealingLR,
    ExponentialLR,
    LinearWarmup,
    LRScheduler,
    ReduceLROnPlateau,
    StepLR,
)
