"""``gradstep.nn.functional``: the same functions as :mod:`gradstep.functional`, under the
path PyTorch users import (``import torch.nn.functional as F``)."""

from gradstep.functional import *  # noqa: F403
