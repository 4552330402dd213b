"""``gs.nn.utils``: gradient clipping under PyTorch's path (``nn.utils.clip_grad_norm_``)."""

from gradstep.optim.clip import clip_grad_norm_, clip_grad_value_  # noqa: F401
